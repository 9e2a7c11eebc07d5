"""Recovery after a kill, with no hand repair: stale git lock files, and a journal that cannot
hide a result.

Git writes a ref by creating ``<ref>.lock`` beside it and renaming it into place; a git killed
between the two (``git update-ref --stdin``, ``git pack-refs``, ``git config``...) leaves the
lock file behind, and every later write of that ref fails with "File exists". Such a file is
removed here, but only when no live process can hold it. Every process that writes in a
mirror holds one of two flocks, and every git it starts inherits that flock (the descriptor
is passed on, :func:`git_mirror.git.run.children_inherit`), so a flock is free only when the
writer *and every child of it* are gone:

* ``<cache>/state/<id>/lock`` (:mod:`git_mirror.mirror.lock`): sync, flush, snapshots prune,
  maintenance and apply;
* ``<cache>/state/<id>/ref-writers``: shared by every client push ``serve`` runs
  (``git receive-pack`` and its hooks) and by a running follower ``exec`` command (it pushes
  through ``file://``), taken exclusively here for the moment of the sweep.

:func:`clear_stale_locks` runs with the first held, and takes the second exclusively: then no
git of ours is alive in the mirror, and a lock file found is stale by proof, not by age (an
age cannot tell a lock a slow live git holds from one a git killed a second ago left, and a
re-run right after a kill must work). Readers take no lock files (``upload-pack``, ``status``;
``GIT_OPTIONAL_LOCKS=0``). When pushes keep the second busy, nothing is removed and the files
are reported as kept.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from git_mirror.mirror.lock import flock_within

log = logging.getLogger("git_mirror.recovery")
WRITERS = "ref-writers"
SWEEP_WAIT = 5.0  # seconds to wait for client pushes in flight before leaving locks be
# Where git keeps lock files that can block a later operation: the repository's top level
# (packed-refs.lock, HEAD.lock, config.lock, shallow.lock, index.lock...), every ref, and the
# files maintenance writes (commit-graph, multi-pack-index).
_FLAT_DIRS = (".", "objects/info", "objects/info/commit-graphs", "objects/pack")


def find_lock_files(git_dir: Path) -> list[str]:
    """Every ``*.lock`` file git may have left in the mirror, relative to ``git_dir``."""
    found: list[str] = []
    for rel in _FLAT_DIRS:
        try:
            with os.scandir(git_dir / rel) as it:
                for entry in it:
                    if entry.name.endswith(".lock") and entry.is_file(follow_symlinks=False):
                        found.append(os.path.normpath(os.path.join(rel, entry.name)))
        except (FileNotFoundError, NotADirectoryError):
            continue
    refs = git_dir / "refs"
    for top, _dirs, files in os.walk(refs):
        for name in files:
            if name.endswith(".lock"):
                found.append(os.path.relpath(os.path.join(top, name), git_dir))
    return sorted(found)


def writers_path(state_dir: Path) -> Path:
    """The ``ref-writers`` file: the flock client pushes share and the sweep takes alone."""
    return state_dir / WRITERS


def open_writers(state_dir: Path) -> int:
    """An open descriptor of the ``ref-writers`` file (created when missing)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return os.open(writers_path(state_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def try_shared(fd: int) -> bool:
    """Take the shared (client push) flock on ``fd`` now, or say it is not free."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def clear_stale_locks(git_dir: Path, state_dir: Path, *,
                      wait: float | None = None) -> tuple[list[str], list[str]]:
    """Remove stale git lock files; returns (removed, kept), paths relative to ``git_dir``.

    The caller holds the repository lock. Kept files are those seen while client pushes
    stayed in flight for ``wait`` seconds: a live ``receive-pack`` may own them.
    """
    if not find_lock_files(git_dir):
        return [], []  # the usual case: one directory walk, no flock
    try:
        fd = open_writers(state_dir)
    except OSError as exc:
        log.warning("cannot open %s: %s; git lock files left as they are",
                    writers_path(state_dir), exc.strerror)
        return [], find_lock_files(git_dir)
    try:
        wait = SWEEP_WAIT if wait is None else wait
        if not flock_within(fd, wait=True, timeout=wait):
            kept = find_lock_files(git_dir)
            log.warning("client pushes stayed in flight for %gs: git lock files left as they "
                        "are: %s", wait, ", ".join(kept))
            return [], kept
        removed: list[str] = []
        kept = []
        for rel in find_lock_files(git_dir):
            try:
                (git_dir / rel).unlink()
                removed.append(rel)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot remove stale lock file %s: %s", rel, exc.strerror)
                kept.append(rel)
        if removed:
            log.warning("removed stale git lock file(s) left by a killed git: %s",
                        ", ".join(removed), extra={"recovered": removed})
        return removed, kept
    finally:
        os.close(fd)  # releases the flock


def record_safely(state_dir: Path, kind: str, entry: dict[str, Any]) -> str | None:
    """Journal ``entry``; a journal that cannot be written (a full disk) never hides the
    operation's result: the failure comes back as a warning to add to it."""
    from git_mirror.mirror import journal

    try:
        journal.record(state_dir, kind, entry)
    except OSError as exc:
        from git_mirror.errors import from_os_error

        err = from_os_error(exc, doing=f"the {kind} run could not be journaled")
        log.warning("%s", err.message)
        return f"[{err.code}] {err.message}"
    return None


def kept_locks_notes(kept: list[str]) -> list[str]:
    """The warning for lock files that could not be proven stale (pushes in flight)."""
    if not kept:
        return []
    return [f"git lock file(s) {', '.join(kept)} were left in place: client pushes were in "
            "flight; the next run removes them if they are stale"]
