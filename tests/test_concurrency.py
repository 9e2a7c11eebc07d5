"""Two syncs of one repository at once: the second waits (or, without --wait, is busy), refs
stay consistent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import mirror_repo
from tests.support.gitutil import Repo

# A git that logs every call with its parent (the git-mirror process) and holds every fetch
# until the test opens the gate: the first sync then holds the repository's lock for as long
# as the test needs, and the overlap with the second is certain, not a matter of timing.
GATED_GIT = """#!/bin/sh
d='{dir}'
echo "$PPID $*" >> "$d/calls.log"
for a in "$@"; do
  if [ "$a" = fetch ]; then
    touch "$d/fetching"
    i=0
    while [ ! -e "$d/gate" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
    break
  fi
done
exec '{git}' "$@"
"""


@dataclass
class Gate:
    """The gated git of a test: where it logs, and the files that say and open the gate."""

    dir: Path

    @property
    def binary(self) -> Path:
        return self.dir / "git"

    def fetching(self) -> bool:
        return (self.dir / "fetching").exists()

    def open(self) -> None:
        (self.dir / "gate").touch()

    def callers(self) -> list[int]:
        """The pid of the git-mirror process behind each git call, in call order."""
        lines = (self.dir / "calls.log").read_text(encoding="utf-8").splitlines()
        return [int(line.split(" ", 1)[0]) for line in lines]


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    d = tmp_path / "gated-git"
    d.mkdir()
    real = shutil.which("git")
    assert real is not None
    (d / "git").write_text(GATED_GIT.format(dir=d, git=real), encoding="utf-8")
    (d / "git").chmod(0o755)
    return Gate(d)


def _spawn(config: Path, *args: str, git: Path | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    if git is not None:
        env["GIT_MIRROR_GIT_BINARY"] = str(git)
    return subprocess.Popen([sys.executable, "-m", "git_mirror.cli.main", "--config", str(config),
                             "--json", "sync", "--confirm", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(what: str, done: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    """Wait until ``done()``; fail at once when ``proc`` ended first, or after 60 s."""
    deadline = time.monotonic() + 60
    while not done():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the sync ended before {what}: {out}{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


def _has_open(pid: int, path: Path) -> bool:
    """Process ``pid`` holds ``path`` open (a sync waiting for the repository's lock does)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        links = [os.readlink(fd) for fd in fds.iterdir()]
    except OSError:  # fds come and go while they are read
        return False
    return os.path.realpath(path) in links


def _check_consistent(mirror: Repo, upstream: Repo) -> None:
    refs = mirror.refs()
    for ref, oid in upstream.refs("refs/heads/").items():
        if ref == "refs/heads/feature/undeclared":
            continue
        assert refs[ref] == oid
        assert refs["refs/mirror-stage/" + ref.removeprefix("refs/")] == oid
    snaps = [r for r in refs if r.startswith("refs/unidesk/snapshots/")]
    assert all(refs[r] == r.rsplit("/", 1)[1] for r in snaps)


def test_two_concurrent_syncs_with_wait_both_succeed(config: Path, upstream: Repo,
                                                     gate: Gate) -> None:
    """The second sync starts while the first holds the lock (in its fetch): it waits, then
    finds everything done; each snapshot is created once."""
    for i in range(30):
        upstream.commit(f"release/r{i}", f"r{i}", parent=upstream.rev("refs/heads/main"))
    first = _spawn(config, "--wait", git=gate.binary)
    _wait_for("the first sync fetches, holding the lock", gate.fetching, first)
    second = _spawn(config, "--wait", git=gate.binary)
    lock = config.parent / ".git-mirror" / "state" / "hwlab" / "lock"
    _wait_for("the second sync waits for the lock", lambda: _has_open(second.pid, lock), second)
    assert not gate.callers().count(second.pid)  # it has run no git: it is at the lock
    gate.open()
    outs = [p.communicate(timeout=120) for p in (first, second)]
    for p, (out, err) in zip((first, second), outs, strict=True):
        assert p.returncode == 0, out + err
        assert json.loads(out)["ok"] is True
    _check_consistent(mirror_repo(config), upstream)
    # The second waited: every git call of the first came before any of its own.
    callers = gate.callers()
    assert callers.index(second.pid) > max(i for i, pid in enumerate(callers) if pid == first.pid)
    # Each snapshot was created exactly once: all by the first run, none by the second.
    created = [[s["ref"] for s in json.loads(out)["snapshots"]] for out, _ in outs]
    assert len(created[0]) == len(set(created[0])) == 33
    assert created[1] == []


def test_concurrent_sync_without_wait_is_busy(config: Path, upstream: Repo, gate: Gate) -> None:
    """A sync that finds another holding the lock, without --wait, is busy and says --wait."""
    for i in range(30):
        upstream.commit(f"release/r{i}", f"r{i}", parent=upstream.rev("refs/heads/main"))
    first = _spawn(config, git=gate.binary)
    _wait_for("the first sync fetches, holding the lock", gate.fetching, first)
    second = _spawn(config, git=gate.binary)
    out, _err = second.communicate(timeout=120)
    data = json.loads(out)
    assert second.returncode == 1
    assert data["error"]["code"] == "busy"
    assert "--wait" in data["error"]["hint"]
    assert second.pid not in gate.callers()  # refused before any git ran
    gate.open()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert json.loads(out)["ok"] is True
    _check_consistent(mirror_repo(config), upstream)


def test_lock_is_released_when_a_holder_dies(config: Path, upstream: Repo) -> None:
    """flock is released by the kernel: a killed sync never leaves a stale lock."""
    state = config.parent / ".git-mirror" / "state" / "hwlab"
    state.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl,os,sys,time; "
                               "fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); "
                               "time.sleep(60)",
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
