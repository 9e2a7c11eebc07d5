"""Two syncs of one repository at once: both end well, refs stay consistent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import mirror_repo
from tests.support.gitutil import Repo


def _spawn(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.Popen([sys.executable, "-m", "git_mirror.cli.main", "--config", str(config),
                             "--json", "sync", "--confirm", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _check_consistent(mirror: Repo, upstream: Repo) -> None:
    refs = mirror.refs()
    for ref, oid in upstream.refs("refs/heads/").items():
        if ref == "refs/heads/feature/undeclared":
            continue
        assert refs[ref] == oid
        assert refs["refs/mirror-stage/" + ref.removeprefix("refs/")] == oid
    snaps = [r for r in refs if r.startswith("refs/unidesk/snapshots/")]
    assert all(refs[r] == r.rsplit("/", 1)[1] for r in snaps)


def test_two_concurrent_syncs_with_wait_both_succeed(config: Path, upstream: Repo) -> None:
    for i in range(30):
        upstream.commit(f"release/r{i}", f"r{i}", parent=upstream.rev("refs/heads/main"))
    procs = [_spawn(config, "--wait") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out + err
        assert json.loads(out)["ok"] is True
    _check_consistent(mirror_repo(config), upstream)
    # Each snapshot was created exactly once across the two runs.
    created = [s["ref"] for out, _ in outs for s in json.loads(out)["snapshots"]]
    assert len(created) == len(set(created)) == 33


def test_concurrent_sync_without_wait_is_busy_or_ok(config: Path, upstream: Repo) -> None:
    for i in range(30):
        upstream.commit(f"release/r{i}", f"r{i}", parent=upstream.rev("refs/heads/main"))
    procs = [_spawn(config) for _ in range(2)]
    results = []
    for p in procs:
        out, _err = p.communicate(timeout=120)
        data = json.loads(out)
        results.append((p.returncode, data))
        if p.returncode != 0:
            assert p.returncode == 1
            assert data["error"]["code"] == "busy"
            assert "--wait" in data["error"]["hint"]
    assert any(code == 0 for code, _ in results)
    _check_consistent(mirror_repo(config), upstream)


def test_lock_is_released_when_a_holder_dies(config: Path, upstream: Repo) -> None:
    """flock is released by the kernel: a killed sync never leaves a stale lock."""
    state = config.parent / ".git-mirror" / "state" / "hwlab"
    state.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl,os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT);"
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
                               str(state / "lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        busy = _spawn(config)
        out, _ = busy.communicate(timeout=60)
        assert busy.returncode == 1 and json.loads(out)["error"]["code"] == "busy"
    finally:
        holder.kill()
        holder.wait(timeout=10)
    ok = _spawn(config)
    out, err = ok.communicate(timeout=60)
    assert ok.returncode == 0, out + err
