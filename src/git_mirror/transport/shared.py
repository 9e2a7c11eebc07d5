"""One SSH connection per set of trust inputs, opened once even when many repositories start at once.

The ssh wrapper (:mod:`git_mirror.transport.ssh`) names its ``ControlPath`` after a hash of
the trust inputs (host, port, user, identity, known_hosts, proxy), in one 0700 directory of
the cache, so every repository with the same inputs rides the same connection. Left alone,
OpenSSH's ``ControlMaster=auto`` has a race: when several repositories start together (a
parallel sync), each finds no master yet and opens a connection of its own, each paying a
full handshake through the proxy.

:func:`ensure_master` closes that race: the first caller for a trust key opens the master
(``ssh -N -f``, which backgrounds once authenticated and lives for ``ControlPersist`` after
its last use); callers with the same key wait for it, callers with other keys do not. When
the socket is already there (a previous run within ``ControlPersist``), it costs nothing.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from git_mirror.errors import GitError, GitMirrorError

if TYPE_CHECKING:
    from git_mirror.transport.ssh import SshSetup

_guard = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}


def _lock_for(key: str) -> threading.Lock:
    with _guard:
        return _key_locks.setdefault(key, threading.Lock())


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
    with _lock_for(f"{control}"):
        if control.exists():
            # A live master (or a stale socket, which ControlMaster=auto replaces by itself).
            return False
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
                           stderr=f"connection timed out after {timeout:g}s\n")
            raise explain(err) from exc
        if proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", "replace")
            err = GitError(f"ssh exited {proc.returncode}: {stderr.strip()[:200]}",
                           argv=["git", *operation], returncode=proc.returncode, stderr=stderr)
            raise explain(err)
        return True
