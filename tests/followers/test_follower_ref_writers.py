"""A local follower's command pushes lane commits into the mirror itself (file://): while it
runs it holds the ref-writers flock shared, so no sync or flush sweeps a lock file its
receive-pack may own."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CliResult
from tests.support.follower import FOLLOWER, Build

Cli = Callable[..., CliResult]



def _exclusive_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_the_exec_command_holds_the_ref_writers_lock_while_it_runs(
        cli: Cli, build: Build, config: Path) -> None:
    build.mode("hang")
    res = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm")
    assert res.code == 0, res.stdout
    name = res.json["run"]["name"]
    pid = build.started(name)
    writers = config.parent / ".git-mirror" / "state" / "hwlab" / "ref-writers"
    try:
        assert not _exclusive_free(writers)
    finally:
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not _exclusive_free(writers):
        assert time.monotonic() < deadline, "the lock outlived the command"
        time.sleep(0.05)
