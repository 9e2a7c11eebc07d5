"""One SSH connection per set of trust inputs, opened once when many repositories start at once.

The ssh wrapper (:mod:`git_mirror.transport.ssh`) names its ``ControlPath`` after a hash of
the trust inputs (host, port, user, identity, known_hosts, proxy), in one 0700 directory of
the cache, so every repository with the same inputs rides the same connection. Left alone,
OpenSSH's ``ControlMaster=auto`` has a race: when several repositories start together (a
parallel sync), each finds no master yet and opens a connection of its own, each paying a
full handshake through the proxy.

:func:`ensure_master` closes that race: the first caller for a trust key opens the master
(``ssh -N -f``, which backgrounds once authenticated and lives for ``ControlPersist`` after
its last use); callers with the same key wait for it, callers with other keys do not. When
the socket is already there (a previous run within ``ControlPersist``), it costs nothing. When
the opening fails, the callers that waited for it get the same error at once (a dead proxy
costs its timeout once, not once per repository); later callers try again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from git_mirror.errors import GitError, GitMirrorError

if TYPE_CHECKING:
    from git_mirror.transport.ssh import SshSetup

@dataclass
class _Opening:
    """The shared connection of one trust key, as this process tried to open it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: int = 0  # attempts to open it that have ended, either way
    failure: GitError | None = None


_guard = threading.Lock()
_openings: dict[str, _Opening] = {}


def _opening(key: str) -> _Opening:
    with _guard:
        return _openings.setdefault(key, _Opening())


def ensure_master(setup: SshSetup, *, timeout: float,
                  explain: Callable[[GitError], GitMirrorError],
                  operation: Sequence[str] = ()) -> bool:
    """Make sure the shared connection of ``setup`` runs; True if this call opened it.

    A failure is raised as the transport error git itself would have met (``explain``),
    so a repository behind a dead proxy fails once, with the reason, not twice. The error
    names ``operation`` (the git arguments that needed the connection) as its command, so
    that its hint retries that operation.
    """
    control = setup.control_path
    if control is None:
        return False
    opening = _opening(str(control))
    seen = opening.finished
    with opening.lock:
        if control.exists():
            # A live master (or a stale socket, which ControlMaster=auto replaces by itself).
            return False
        if opening.finished != seen and opening.failure is not None:
            # It failed while this caller waited for it: the same error, at once.
            failed = opening.failure
            raise explain(GitError(str(failed), argv=["git", *operation],
                                   returncode=failed.returncode, stderr=failed.stderr))
        try:
            # Across processes too (serve and a CLI run): a second ``ssh -N -f`` that lost
            # the race for the socket would stay on as a connection of its own.
            with _file_lock(control.with_name(control.name + ".lock"), timeout):
                if control.exists():
                    return False
                return _open(setup, timeout=timeout, explain=explain, operation=operation,
                             opening=opening)
        finally:
            opening.finished += 1


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """An flock on ``path`` for at most ``timeout`` seconds of waiting (then without it)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    break  # a stuck holder: go on without the lock rather than hang
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _open(setup: SshSetup, *, timeout: float, explain: Callable[[GitError], GitMirrorError],
          operation: Sequence[str], opening: _Opening) -> bool:
    """One ``ssh -N -f``: it returns once authenticated, the master living on."""
    dest = f"{setup.target.user}@{setup.target.host}" if setup.target.user else setup.target.host
    argv = [str(setup.wrapper), "-N", "-f", "-p", str(setup.target.port), "--", dest]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    except subprocess.TimeoutExpired as exc:
        err = GitError(f"the SSH connection to {setup.target.host}:{setup.target.port} "
                       f"did not open within {timeout:g}s (timed out)",
                       argv=["git", *operation], returncode=None,
                       stderr=setup.tunnel_reason() + f"connection timed out after {timeout:g}s\n")
        explained = explain(err)
        opening.failure = err
        raise explained from exc
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        err = GitError(f"ssh exited {proc.returncode}: {stderr.strip()[:200]}",
                       argv=["git", *operation], returncode=proc.returncode,
                       stderr=setup.tunnel_reason() + stderr)
        explained = explain(err)
        opening.failure = err
        raise explained
    opening.failure = None
    return True
