"""The per-repository lock: sync and flush of one repository never interleave.

An ``flock`` on ``<cache>/state/<id>/lock``: released by the kernel when the process dies, so
a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from git_mirror.errors import BusyError
from git_mirror.git.run import children_inherit

DEFAULT_WAIT = 900.0


def flock_within(fd: int, *, wait: bool, timeout: float) -> bool:
    """Take an exclusive flock on ``fd``: at once, or (``wait``) within ``timeout`` seconds.

    False when it stays held by another process; the caller says why in its own words.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if not wait or time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


@contextmanager
def repo_lock(state_dir: Path, rid: str, *, wait: bool, timeout: float = DEFAULT_WAIT,
              command: str = "sync") -> Iterator[None]:
    """Hold the repository's lock; without ``wait`` a busy repository is a BusyError."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not flock_within(fd, wait=wait, timeout=timeout):
            if not wait:
                raise BusyError(
                    f"repository {rid} is busy: another sync or flush holds its lock",
                    hint=f"git-mirror {command} --repo {rid} --confirm --wait",
                )
            raise BusyError(f"repository {rid} stayed busy for {timeout:g}s",
                            hint=f"git-mirror status --repo {rid}")
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {command}\n".encode())
        except OSError:
            pass  # who holds it is for people; a full disk must not stop the operation
        # Every git process of the operation shares the flock: a git left running by a
        # killed parent keeps the repository locked until it ends (see mirror.recovery).
        with children_inherit(fd):
            yield
    finally:
        os.close(fd)  # closing releases the flock
