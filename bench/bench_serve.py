"""Clone and no-op fetch through ``git-mirror serve`` against ``git http-backend``.

Run: ``uv run python -m bench.bench_serve [--sizes 5000,20000] [--reps 3]``

For each repository size (files of 2.5 KB of random bytes, so the pack is about as large as
the files, plus a few commits of history) the same bare mirror is served twice, side by side:

* ``serve``: ``git-mirror serve`` (uvicorn, this package), as a real process;
* ``http-backend``: git's own ``git http-backend`` as CGI behind nginx + fcgiwrap, the
  conventional deployment (Debian packages ``nginx`` and ``fcgiwrap``).

Each case runs 1 and 4 concurrent clients (``git clone --bare`` and a no-op ``git fetch``),
takes the median wall time of ``--reps`` rounds after one warm-up, and prints throughput
(client operations per second) and the ratio serve / http-backend (target: at least 0.9).
It also prints the peak RSS (VmHWM) of the serve process per size: flat as the repository
grows, because packs are streamed, never held.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

FILE_BYTES = 2560
HISTORY_COMMITS = 4
HISTORY_FILES = 300
CLIENT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C",
              "GIT_TERMINAL_PROMPT": "0"}


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    env = {**os.environ, **CLIENT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True,
                          env=env, timeout=900).stdout.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_upstream(path: Path, files: int, seed: int) -> None:
    """A bare repository with ``files`` files and a little history, via one fast-import."""
    git("init", "--bare", "-q", str(path))
    rng = random.Random(seed)
    proc = subprocess.Popen(["git", f"--git-dir={path}", "fast-import", "--quiet"],
                            stdin=subprocess.PIPE, env={**os.environ, **CLIENT_ENV})
    assert proc.stdin is not None
    w = proc.stdin.write
    mark = 0
    when = 1_700_000_000
    for c in range(1 + HISTORY_COMMITS):
        names = range(files) if c == 0 else rng.sample(range(files), min(HISTORY_FILES, files))
        marks = []
        for i in names:
            mark += 1
            data = rng.randbytes(FILE_BYTES)
            w(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
            marks.append((i, mark))
        msg = f"commit {c}".encode()
        w(b"commit refs/heads/main\n")
        w(b"committer Bench <bench@example.invalid> %d +0000\n" % (when + c))
        w(b"data %d\n%s\n" % (len(msg), msg))
        for i, m in marks:
            w(b"M 100644 :%d dir%03d/file%05d.bin\n" % (m, i % 200, i))
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    git(f"--git-dir={path}", "update-ref", "refs/heads/gitops/v03", "refs/heads/main")


def write_config(root: Path, upstream: Path, port: int) -> Path:
    cfg = root / "git-mirror.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        version: 1
        server:
          listen: 127.0.0.1:{port}
          syncIntervalSeconds: 0
          maintenanceIntervalSeconds: 0
        repositories:
          bench:
            upstream: file://{upstream}
            transport: {{mode: file}}
            sources:
              - branch: main
            lanes:
              v03: {{ref: gitops/v03}}
        """))
    return cfg


def cli(cfg: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "git_mirror.cli.main", "--config", str(cfg), *args],
                   check=True, capture_output=True, timeout=900)


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                if res.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout}s")


class Backend:
    """nginx + fcgiwrap + git http-backend over the mirror's repos directory."""

    def __init__(self, root: Path, repos: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.procs: list[subprocess.Popen[bytes]] = []
        backend = subprocess.run(["git", "--exec-path"], capture_output=True, check=True,
                                 text=True).stdout.strip() + "/git-http-backend"
        sock = root / "fcgi.sock"
        for d in ("body", "fastcgi", "proxy", "uwsgi", "scgi"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "nginx.conf").write_text(textwrap.dedent(f"""\
            user root;
            worker_processes 1;
            daemon off;
            pid {root}/nginx.pid;
            error_log {root}/error.log;
            events {{ worker_connections 512; }}
            http {{
              access_log off;
              client_body_temp_path {root}/body;
              fastcgi_temp_path {root}/fastcgi;
              proxy_temp_path {root}/proxy;
              uwsgi_temp_path {root}/uwsgi;
              scgi_temp_path {root}/scgi;
              server {{
                listen 127.0.0.1:{port};
                client_max_body_size 0;
                location = /ping {{ return 200 "ok"; }}
                location / {{
                  include /etc/nginx/fastcgi_params;
                  fastcgi_param SCRIPT_FILENAME {backend};
                  fastcgi_param GIT_PROJECT_ROOT {repos};
                  fastcgi_param GIT_HTTP_EXPORT_ALL "";
                  fastcgi_param PATH_INFO $uri;
                  fastcgi_buffering off;
                  fastcgi_request_buffering off;
                  fastcgi_read_timeout 600;
                  fastcgi_pass unix:{sock};
                }}
              }}
            }}
            """))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}
        # Own sessions, so that stop() ends fcgiwrap's and nginx's children too.
        quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
                 "stderr": subprocess.DEVNULL, "start_new_session": True}
        self.procs.append(subprocess.Popen(["fcgiwrap", "-c", "8", "-s", f"unix:{sock}"],
                                           env=env, **quiet))  # type: ignore[call-overload]
        self.procs.append(subprocess.Popen(["nginx", "-c", str(root / "nginx.conf")],
                                           **quiet))  # type: ignore[call-overload]
        wait_http(f"http://127.0.0.1:{port}/ping")

    def stop(self) -> None:
        for p in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def rss_kb(pid: int, field: str = "VmHWM") -> int:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def timed_round(op: str, url: str, work: Path, clients: int, fetch_dirs: list[Path]) -> float:
    """Wall time for ``clients`` concurrent operations."""
    def one(i: int) -> None:
        if op == "clone":
            dest = work / f"c{i}-{time.monotonic_ns()}"
            git("clone", "--bare", "-q", url, str(dest))
            shutil.rmtree(dest)
        else:
            git("fetch", "-q", "origin", cwd=fetch_dirs[i])

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, range(clients)))
    return time.perf_counter() - started


def measure(name: str, url: str, work: Path, reps: int) -> dict[tuple[str, int], float]:
    fetch_dirs = []
    for i in range(4):
        d = work / f"{name}-fetch{i}.git"
        git("clone", "--bare", "-q", url, str(d))
        git("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*", cwd=d)
        fetch_dirs.append(d)
    out = {}
    for op in ("clone", "fetch"):
        for clients in (1, 4):
            timed_round(op, url, work, clients, fetch_dirs)   # warm-up
            walls = [timed_round(op, url, work, clients, fetch_dirs) for _ in range(reps)]
            out[(op, clients)] = clients / statistics.median(walls)
    for d in fetch_dirs:
        shutil.rmtree(d)
    return out


def bench_size(files: int, reps: int, base: Path
               ) -> tuple[dict[tuple[str, int], tuple[float, float]], tuple[int, int], float]:
    root = base / f"size-{files}"
    root.mkdir(parents=True)
    upstream = root / "upstream.git"
    t0 = time.monotonic()
    build_upstream(upstream, files, seed=files)
    port = free_port()
    cfg = write_config(root, upstream, port)
    cli(cfg, "apply", "--confirm")
    cli(cfg, "sync", "--confirm", "--wait")
    from git_mirror.config import load_config
    from git_mirror.mirror.maintenance import maintain

    maintain(load_config(cfg), "bench", full=True)   # bitmaps, as serve's maintenance leaves it
    repos = root / ".git-mirror" / "repos"
    packs = (repos / "bench.git" / "objects" / "pack").glob("*.pack")
    pack_mb = sum(p.stat().st_size for p in packs) / 1e6
    print(f"# {files} files, pack {pack_mb:.1f} MB (built in {time.monotonic() - t0:.1f}s)",
          flush=True)
    work = root / "work"
    work.mkdir()
    serve = subprocess.Popen([sys.executable, "-m", "git_mirror.cli.main", "--config", str(cfg),
                              "serve"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    backend = None
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        idle = rss_kb(serve.pid, "VmRSS")
        serve_rates = measure("serve", f"http://127.0.0.1:{port}/bench.git", work, reps)
        rss = rss_kb(serve.pid)
        bport = free_port()
        backend = Backend(root / "nginx", repos, bport)
        backend_rates = measure("backend", f"http://127.0.0.1:{bport}/bench.git", work, reps)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        if backend is not None:
            backend.stop()
    return {k: (serve_rates[k], backend_rates[k]) for k in serve_rates}, (idle, rss), pack_mb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,20000", help="file counts, comma separated")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    for tool in ("nginx", "fcgiwrap"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install nginx fcgiwrap (scripts/install.sh)",
                  file=sys.stderr)
            return 2
    base = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        print(f"{'files':>6} {'pack MB':>8} {'op':<6} {'clients':>7} {'serve/s':>9} "
              f"{'backend/s':>10} {'ratio':>6}")
        rss_by_size = []
        for files in (int(s) for s in args.sizes.split(",")):
            rates, rss, pack_mb = bench_size(files, args.reps, base)
            for (op, clients), (s, b) in rates.items():
                print(f"{files:>6} {pack_mb:>8.1f} {op:<6} {clients:>7} {s:>9.2f} {b:>10.2f} "
                      f"{s / b:>6.2f}", flush=True)
            rss_by_size.append((files, pack_mb, rss))
        for files, pack_mb, (idle, peak) in rss_by_size:
            print(f"serve RSS with {files} files ({pack_mb:.1f} MB pack): peak {peak / 1024:.1f} MB"
                  f" (idle after start {idle / 1024:.1f} MB)")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
