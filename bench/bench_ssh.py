"""No-op sync over SSH (shared connection) against raw ``git fetch`` with a fresh SSH connection.

Run: ``uv run python -m bench.bench_ssh [--runs N] [--refs N]``. Starts a private sshd on
127.0.0.1 (the test rig's), mirrors an upstream with ``--refs`` branches once, then times:

- ``sync``: ``git_mirror.mirror.sync.sync(confirm=True)`` with nothing new upstream, over the
  declared ssh transport (ControlMaster reuse), directly and through the CONNECT proxy;
- ``raw``: ``git fetch`` of the same refs in a plain clone, OpenSSH with a fresh connection
  each time (no ControlMaster), the same sshd and forced command.

Prints medians and the ratio sync/raw (target: at most 0.2x). Not a test: numbers on a
shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.gitutil import Repo, run_git
from tests.support.sshd import start_sshd

from git_mirror.config import load_config
from git_mirror.mirror.sync import sync
from git_mirror.transport.ssh import close_shared

CONFIG = """\
version: 1
proxies:
  corp: {{mode: http-connect, url: "{proxy}"}}
repositories:
  app:
    upstream: {url}
    transport:
      mode: ssh
      identity: {{file: {key}}}
      knownHosts: {{file: {kh}}}
{proxy_line}    sources:
      - branch: main
      - branch: release/*
    tags: true
"""


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_sync(config: Path, runs: int) -> list[float]:
    cfg = load_config(config)
    res = sync(cfg, confirm=True)
    assert res.ok, res.to_json()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        res = sync(cfg, confirm=True)
        out.append(time.perf_counter() - t)
        assert res.ok, res.to_json()
        assert not res.repositories[0].updated, res.to_json()
    close_shared(cfg, "app")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--refs", type=int, default=200)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gm-bench-"))
    sshd = None
    # The proxy runs in a process of its own, as a real one would: a relay thread in this
    # process would compete with the code being measured.
    proxy_proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from tests.support.proxy import ConnectProxy\n"
         "p = ConnectProxy().start(); print(p.url, flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proxy_proc.stdout is not None
    proxy_url = proxy_proc.stdout.readline().strip()
    try:
        up = Repo(base / "upstream.git")
        tip = up.commit("main", "initial", parent=None)
        lines = "".join(f"create refs/heads/release/{i} {tip}\n" for i in range(args.refs))
        up.git("update-ref", "--stdin", input=lines.encode())
        sshd = start_sshd(base / "sshd", base)
        kh = base / "known_hosts"
        kh.write_text(sshd.known_hosts_line)
        url = sshd.url("upstream.git")

        results: dict[str, list[float]] = {}
        for label, line in (("sync (direct, shared connection)", ""),
                            ("sync (via CONNECT proxy, shared connection)", "      proxy: corp\n")):
            d = base / label.split()[1].strip("(,")
            d.mkdir()
            config = d / "git-mirror.yaml"
            config.write_text(CONFIG.format(url=url, key=sshd.client_key, kh=kh, proxy=proxy_url,
                                            proxy_line=line))
            results[label] = time_sync(config, args.runs)

        clone = base / "raw.git"
        run_git("init", "-q", "--bare", str(clone))
        ssh_cmd = (f"ssh -F none -i {sshd.client_key} -o IdentitiesOnly=yes -o BatchMode=yes "
                   f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={kh} "
                   "-o ControlMaster=no -o ControlPath=none")
        env = {"GIT_SSH_COMMAND": ssh_cmd}
        fetch = ["--git-dir", str(clone), "-c", "protocol.version=2", "fetch", "--quiet",
                 url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        run_git(*fetch, env=env)
        raw = []
        for _ in range(args.runs):
            t = time.perf_counter()
            run_git(*fetch, env=env)
            raw.append(time.perf_counter() - t)
        results["raw git fetch (fresh SSH connection)"] = raw

        raw_ms = median_ms(raw)
        print(f"no-op, {args.refs + 1} branches, {args.runs} runs, medians "
              f"(cpus: {os.cpu_count()})")
        for label, samples in results.items():
            ms = median_ms(samples)
            print(f"  {label:48s} {ms:8.1f} ms   {ms / raw_ms:5.2f}x raw")
    finally:
        assert proxy_proc.stdin is not None
        proxy_proc.stdin.close()
        proxy_proc.wait(timeout=10)
        if sshd is not None:
            sshd.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
