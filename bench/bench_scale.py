"""Hundreds of repositories over SSH through a slow CONNECT proxy, against raw git on the same link.

Run: ``uv run python -m bench.bench_scale [--repos 300] [--delay-ms 50] [--raw-sample 30]``.
Starts the test rig's sshd on 127.0.0.1 and its CONNECT proxy in a process of its own, delaying
every chunk by ``--delay-ms`` in each direction (a far-away upstream on loopback), builds
``--repos`` small upstreams (a few refs each) and one config declaring all of them with the
same identity, known_hosts and proxy. Then, in one run, side by side:

1. no-op ``sync --confirm`` of every repository (in process, ``--jobs``; and through the CLI)
   against a raw loop of ``git fetch`` over a fresh SSH connection per repository, and a raw
   loop over one reused connection (a ControlMaster opened with ``ssh -N -f``, the faster of
   the two ways measured). The raw loops run on ``--raw-sample``
   repositories and are scaled to ``--repos`` (printed as such): a fresh-connection loop over
   300 repositories alone would take minutes. Target: at most 0.15x the fresh loop.
2. an incremental sync of one repository (one new commit) against a raw ``git fetch`` of the
   same refs over a reused connection. Target: at most 1.1x.
3. ``status --json`` of every repository against the CLI floor (``validate --json`` of the
   same config: start, load the config, no git). Target: floor + 1 s.
4. ``serve`` with every repository: webhooks for different repositories at ``--rate`` per
   second for ``--seconds`` seconds, each after a new upstream commit; the latency from the
   webhook to the snapshot ref of that commit in the mirror, p50 and p99. Target: p99 < 2 s.

Not a test: the numbers of a shared 2-core machine are noisy; it never fails on a number.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.support.sshd import free_port, start_sshd

from bench.common import ENV, git
from git_mirror.config import load_config
from git_mirror.mirror.sync import sync
from git_mirror.transport import ssh, tunnel

SECRET = "bench-webhook-secret"
GIT_MIRROR = str(Path(sys.executable).parent / "git-mirror")
REPO = """\
  app{i:03d}:
    upstream: {url}
    transport: {{mode: ssh, identity: {{file: {key}}}, knownHosts: {{file: {kh}}}, proxy: corp}}
    sources: [{{branch: main}}, {{branch: release/*}}]
    tags: true
    lanes: {{v03: {{ref: gitops/v03}}}}
"""


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def pct(samples: list[float], p: float) -> float:
    """The nearest-rank percentile."""
    s = sorted(samples)
    return s[min(len(s), max(1, math.ceil(p / 100 * len(s)))) - 1]


def build_template(path: Path) -> None:
    """A small upstream: main (3 commits), two release branches, a tag, a lane."""
    git("init", "--bare", "--quiet", str(path))
    data = ("commit refs/heads/main\nmark :1\ncommitter b <b@x> 1700000000 +0000\ndata 2\nc1\n"
            "M 644 inline a.txt\ndata 2\na\n\n"
            "commit refs/heads/main\nmark :2\ncommitter b <b@x> 1700000001 +0000\n"
            "data 2\nc2\nfrom :1\n"
            "M 644 inline b.txt\ndata 2\nb\n\n"
            "commit refs/heads/main\nmark :3\ncommitter b <b@x> 1700000002 +0000\n"
            "data 2\nc3\nfrom :2\n"
            "M 644 inline c.txt\ndata 2\nc\n\n"
            "reset refs/heads/release/1\nfrom :1\n\nreset refs/heads/release/2\nfrom :2\n\n"
            "reset refs/tags/v1\nfrom :1\n\n"
            "commit refs/heads/gitops/v03\ncommitter b <b@x> 1700000000 +0000\ndata 4\nlane\n"
            "M 644 inline deploy.yaml\ndata 6\nimage\n\n")
    git(f"--git-dir={path}", "fast-import", "--quiet", input=data.encode())
    git(f"--git-dir={path}", "pack-refs", "--all")


def new_commit(path: Path) -> str:
    """A new commit on main (made and written before the clock starts where it matters)."""
    parent = git(f"--git-dir={path}", "rev-parse", "refs/heads/main")
    tree = git(f"--git-dir={path}", "rev-parse", f"{parent}^{{tree}}")
    oid = git(f"--git-dir={path}", "commit-tree", tree, "-p", parent,
              "-m", f"bench {time.time_ns()}")
    git(f"--git-dir={path}", "update-ref", "refs/heads/main", oid)
    return oid


class Rig:
    def __init__(self, base: Path, repos: int, delay: float, jobs: int) -> None:
        self.base = base
        self.n = repos
        self.proxy = subprocess.Popen(
            [sys.executable, "-c", "import sys\n"
             "from tests.support.proxy import ConnectProxy\n"
             f"p = ConnectProxy(delay_up={delay}, delay_down={delay}).start()\n"
             "print(p.url, flush=True)\nsys.stdin.read()\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proxy.stdout is not None
        self.proxy_url = self.proxy.stdout.readline().strip()
        self.sshd = start_sshd(base / "sshd", base / "up")
        self.kh = base / "known_hosts"
        self.kh.write_text(self.sshd.known_hosts_line)
        template = base / "template.git"
        build_template(template)
        (base / "up").mkdir()
        for i in range(repos):
            shutil.copytree(template, self.upstream(i), symlinks=True)
        self.port = free_port()
        (base / "webhook-secret").write_text(SECRET + "\n")
        self.config = base / "git-mirror.yaml"
        self.config.write_text(
            f"version: 1\ncache: {base / 'c'}\njobs: {jobs}\n"
            f"proxies:\n  corp: {{mode: http-connect, url: \"{self.proxy_url}\"}}\n"
            f"server:\n  listen: 127.0.0.1:{self.port}\n  webhookSecret: {{file: webhook-secret}}\n"
            "  syncIntervalSeconds: 0\n  maintenanceIntervalSeconds: 0\n"
            "repositories:\n" + "".join(
                REPO.format(i=i, url=self.sshd.url(f"up-{i:03d}.git"), key=self.sshd.client_key,
                            kh=self.kh) for i in range(repos)))
        self.tunnel_conf = base / "tunnel.json"
        self.tunnel_conf.write_text(json.dumps({"name": "corp", "url": self.proxy_url}))

    def upstream(self, i: int) -> Path:
        return self.base / "up" / f"up-{i:03d}.git"

    def raw_ssh(self, control: Path | None) -> str:
        proxy = (f"{sys.executable} -I {tunnel.__file__} --fdpass "
                 f"--config {self.tunnel_conf} %h %p")
        opts = (f"ssh -F none -i {self.sshd.client_key} -o IdentitiesOnly=yes -o BatchMode=yes "
                f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={self.kh} "
                f"-o 'ProxyCommand={proxy}' -o ProxyUseFdpass=yes ")
        if control is None:
            return opts + "-o ControlMaster=no -o ControlPath=none"
        return opts + f"-o ControlMaster=auto -o ControlPath={control} -o ControlPersist=120"

    def raw_master(self, control: Path) -> None:
        """Open the raw loop's reused connection as ``ssh -N -f`` (unless it runs): measured
        here, a master that git's first fetch opens (ControlMaster=auto) costs every later
        fetch about two more round trips than one opened this way, so raw gets the faster."""
        cmd = [*shlex.split(self.raw_ssh(control)), "-p", str(self.sshd.port),
               f"{self.sshd.user}@127.0.0.1"]
        if subprocess.run([*cmd, "-O", "check"], capture_output=True).returncode != 0:
            subprocess.run([*cmd, "-N", "-f"], stdin=subprocess.DEVNULL, capture_output=True,
                           check=True, timeout=60)

    def raw_fetch(self, i: int, clone: Path, ssh_cmd: str) -> None:
        subprocess.run(["git", f"--git-dir={clone}", "-c", "protocol.version=2", "fetch", "--quiet",
                        "--no-tags", self.sshd.url(f"up-{i:03d}.git"), "+refs/heads/*:refs/heads/*",
                        "+refs/tags/*:refs/tags/*"],
                       env={**ENV, "GIT_SSH_COMMAND": ssh_cmd}, check=True, capture_output=True)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GIT_MIRROR, "--config", str(self.config), *args],
                              capture_output=True, text=True,
                              env={**ENV, "GIT_MIRROR_LOG_LEVEL": "error"})

    def close(self) -> None:
        cfg = load_config(self.config)
        ssh.close_shared(cfg, "app000")
        assert self.proxy.stdin is not None
        self.proxy.stdin.close()
        self.proxy.wait(timeout=30)
        self.sshd.stop()


def noop_phase(rig: Rig, args: argparse.Namespace, out: dict[str, float]) -> None:
    cfg = load_config(rig.config)
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        res = sync(cfg, confirm=True, jobs=args.jobs)
        times.append(time.perf_counter() - t)
        assert res.ok, res.to_json()["repositories"][0]
        assert not any(r.updated for r in res.repositories), res.to_json()["repositories"][0]
    out["noop"] = median(times)
    t = time.perf_counter()
    res_cli = rig.cli("--json", "sync", "--confirm")
    out["noop_cli"] = time.perf_counter() - t
    assert res_cli.returncode == 0, res_cli.stdout[-2000:]
    # Cold: no connection kept from an earlier run (ControlPersist ran out).
    ssh.close_shared(cfg, "app000")
    t = time.perf_counter()
    res = sync(cfg, confirm=True, jobs=args.jobs)
    out["noop_cold"] = time.perf_counter() - t
    assert res.ok

    sample = min(args.raw_sample, rig.n)
    clones = []
    for i in range(sample):
        clone = rig.base / "raw" / f"r{i:03d}.git"
        git("init", "--bare", "--quiet", str(clone))
        clones.append(clone)
    fresh = rig.raw_ssh(None)
    control = rig.base / "raw" / "cm"
    reuse = rig.raw_ssh(control)
    rig.raw_master(control)
    for i, clone in enumerate(clones):
        rig.raw_fetch(i, clone, reuse)  # the first fetch fills the clones (not timed)
    t = time.perf_counter()
    for i, clone in enumerate(clones):
        rig.raw_fetch(i, clone, fresh)
    out["raw_fresh"] = (time.perf_counter() - t) * rig.n / sample
    t = time.perf_counter()
    for i, clone in enumerate(clones):
        rig.raw_fetch(i, clone, reuse)
    out["raw_reuse"] = (time.perf_counter() - t) * rig.n / sample
    out["sample"] = sample


def incremental_phase(rig: Rig, args: argparse.Namespace, out: dict[str, float]) -> None:
    cfg = load_config(rig.config)
    clone = rig.base / "raw" / "r000.git"
    reuse = rig.raw_ssh(rig.base / "raw" / "cm")
    rig.raw_master(rig.base / "raw" / "cm")
    product, raw = [], []
    for _ in range(args.runs * 2 + 1):
        new_commit(rig.upstream(0))
        t = time.perf_counter()
        res = sync(cfg, repo="app000", confirm=True)
        product.append(time.perf_counter() - t)
        assert res.ok, res.to_json()
        assert res.repositories[0].snapshots, res.to_json()
        new_commit(rig.upstream(0))
        t = time.perf_counter()
        rig.raw_fetch(0, clone, reuse)
        raw.append(time.perf_counter() - t)
    out["incr"] = median(product[1:])
    out["incr_raw"] = median(raw[1:])


def status_phase(rig: Rig, args: argparse.Namespace, out: dict[str, float]) -> None:
    status, floor = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        res = rig.cli("--json", "validate")
        floor.append(time.perf_counter() - t)
        assert res.returncode == 0, res.stdout
        t = time.perf_counter()
        res = rig.cli("--json", "status")
        status.append(time.perf_counter() - t)
        assert res.returncode == 0
        assert len(json.loads(res.stdout)["repositories"]) == rig.n
    out["status"] = median(status)
    out["floor"] = median(floor)


def serve_phase(rig: Rig, args: argparse.Namespace, out: dict[str, float]) -> None:
    proc = subprocess.Popen([GIT_MIRROR, "--config", str(rig.config), "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**ENV, "GIT_MIRROR_LOG_LEVEL": "error"})
    base = f"http://127.0.0.1:{rig.port}"
    try:
        deadline = time.monotonic() + 600
        t0 = time.perf_counter()
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        out["serve_ready"] = time.perf_counter() - t0
        count = int(args.rate * args.seconds)
        targets = [(i * 7919) % rig.n for i in range(count)]  # different repositories, spread
        sent: dict[int, tuple[float, Path]] = {}
        seen: dict[int, float] = {}
        cfg = load_config(rig.config)
        ns = cfg.model.snapshots.namespace
        done = threading.Event()

        def poll() -> None:
            while not done.is_set() or len(seen) < len(sent):
                now = time.perf_counter()
                for k, (_, ref_file) in list(sent.items()):
                    if k not in seen and ref_file.exists():
                        seen[k] = now
                if done.is_set() and time.perf_counter() - last_sent > 30:
                    return
                time.sleep(0.01)

        last_sent = time.perf_counter()
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        start = time.perf_counter()
        for k, i in enumerate(targets):
            due = start + k / args.rate
            time.sleep(max(0.0, due - time.perf_counter()))
            oid = new_commit(rig.upstream(i))
            rid = f"app{i:03d}"
            ref_file = (rig.base / "c" / "repos" / f"{rid}.git" / "refs" / ns / "snapshots"
                        / rid / "main" / oid)
            body = json.dumps({"ref": "refs/heads/main",
                               "repository": {"full_name": f"bench/{rid}", "name": rid}}).encode()
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            req = urllib.request.Request(base + "/hooks/github", data=body, method="POST", headers={
                "Content-Type": "application/json", "X-GitHub-Event": "push",
                "X-Hub-Signature-256": sig})
            sent[k] = (time.perf_counter(), ref_file)
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 202, r.status
            last_sent = time.perf_counter()
        out["send_seconds"] = time.perf_counter() - start
        done.set()
        poller.join(timeout=60)
        latencies = [seen[k] - sent[k][0] for k in sent if k in seen]
        out["webhooks"] = len(sent)
        out["snapshots_seen"] = len(latencies)
        out["p50"] = pct(latencies, 50) if latencies else float("nan")
        out["p99"] = pct(latencies, 99) if latencies else float("nan")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repos", type=int, default=300)
    ap.add_argument("--delay-ms", type=float, default=50.0, help="added in each direction")
    ap.add_argument("--raw-sample", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--rate", type=float, default=20.0, help="webhooks per second")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long webhooks are sent")
    ap.add_argument("--skip-serve", action="store_true")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gm-scale-"))
    out: dict[str, float] = {}
    rig = None
    try:
        t = time.perf_counter()
        rig = Rig(base, args.repos, args.delay_ms / 1000, args.jobs)
        setup = time.perf_counter() - t
        apply = rig.cli("--json", "apply", "--confirm")
        assert apply.returncode == 0, apply.stdout[-2000:]
        t = time.perf_counter()
        first = sync(load_config(rig.config), confirm=True, jobs=args.jobs)
        out["first"] = time.perf_counter() - t
        assert first.ok, [r.to_json() for r in first.repositories if not r.ok][:1]
        noop_phase(rig, args, out)
        incremental_phase(rig, args, out)
        status_phase(rig, args, out)
        if not args.skip_serve:
            serve_phase(rig, args, out)
    finally:
        if rig is not None:
            rig.close()
        shutil.rmtree(base, ignore_errors=True)

    n = args.repos
    d = args.delay_ms
    print(f"{n} repositories over SSH through a CONNECT proxy adding {d:g} ms each way "
          f"(round trip {2 * d:g} ms); jobs {args.jobs}; medians of {args.runs} runs; "
          f"cpus {os.cpu_count()}; setup {setup:.1f} s")
    print(f"  first sync of all (cold)                    {out['first']:8.2f} s")
    print("no-op sync of all:")
    rows = [("product, in process, connection kept warm", out["noop"]),
            ("product, CLI process, connection kept warm", out["noop_cli"]),
            ("product, in process, no connection kept", out["noop_cold"]),
            (f"raw git fetch loop, fresh SSH each (x{n}/{int(out['sample'])})", out["raw_fresh"]),
            (f"raw git fetch loop, reused SSH (x{n}/{int(out['sample'])})", out["raw_reuse"])]
    for label, value in rows:
        print(f"  {label:52s} {value:8.2f} s  {value / out['raw_fresh']:6.3f}x fresh"
              f"  {value / out['raw_reuse']:6.3f}x reuse")
    print("incremental sync of one repository (one new commit):")
    print(f"  product (in process)                        {out['incr'] * 1000:8.0f} ms")
    print(f"  raw git fetch over a reused SSH connection  {out['incr_raw'] * 1000:8.0f} ms"
          f"   ratio {out['incr'] / out['incr_raw']:.2f}x")
    print(f"status --json of {n} repositories:")
    print(f"  status                                      {out['status']:8.2f} s")
    print(f"  CLI floor (validate --json)                 {out['floor']:8.2f} s"
          f"   status - floor {out['status'] - out['floor']:+.2f} s")
    if not args.skip_serve:
        print(f"serve with {n} repositories: {int(out['webhooks'])} webhooks at {args.rate:g}/s "
              f"(sent in {out['send_seconds']:.1f} s) for different repositories; ready after "
              f"{out['serve_ready']:.1f} s")
        print(f"  webhook -> snapshot ref: p50 {out['p50']:.2f} s, p99 {out['p99']:.2f} s "
              f"({int(out['snapshots_seen'])}/{int(out['webhooks'])} seen)")
    print()
    print("Closing note: no-op sync of all "
          f"{out['noop'] / out['raw_fresh']:.3f}x the fresh-connection loop (target <= 0.15x), "
          f"{out['noop'] / out['raw_reuse']:.3f}x the reused-connection loop; "
          f"cold {out['noop_cold'] / out['raw_fresh']:.3f}x fresh; "
          f"CLI {out['noop_cli'] / out['raw_fresh']:.3f}x fresh; "
          f"incremental {out['incr'] / out['incr_raw']:.2f}x raw reused fetch (target <= 1.1x); "
          f"status floor {out['status'] - out['floor']:+.2f} s (target <= +1 s)"
          + ("" if args.skip_serve else
             f"; serve webhook->snapshot p50 {out['p50']:.2f} s, p99 {out['p99']:.2f} s "
             "(target p99 < 2 s)") + ".")


if __name__ == "__main__":
    main()
