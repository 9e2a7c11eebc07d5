"""Reading reflogs: who last wrote a ref, and how.

Every mirror keeps a reflog for every ref (``core.logAllRefUpdates=always``); git appends a
line to ``<git-dir>/logs/<ref>`` in the same step as it moves the ref::

    <old> <new> <name> <<email>> <time> <tz><TAB><message>

git-mirror's own transactions carry a message beginning ``git-mirror`` (``git-mirror sync``,
``git-mirror flush recheck``, ...); ``git receive-pack`` writes ``push``; a bare
``git update-ref`` by hand writes no message. The files are read directly (no process per
ref): the format is git's documented on-disk one, and reading a few thousand small files
costs less than one git process per hundred of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from git_mirror.git.oid import RefMove

_TAIL = 64 << 10


@dataclass(frozen=True)
class ReflogEntry(RefMove):
    """One reflog line: the ref moved from ``old`` to ``new``, with ``message``."""

    message: str


def parse_reflog(text: str) -> list[ReflogEntry]:
    """The entries of a reflog file's text, oldest first; unparsable lines are skipped."""
    out: list[ReflogEntry] = []
    for line in text.splitlines():
        head, _, message = line.partition("\t")
        parts = head.split(" ", 2)
        if len(parts) < 3 or len(parts[0]) not in (40, 64) or len(parts[1]) not in (40, 64):
            continue
        out.append(ReflogEntry(parts[0], parts[1], message))
    return out


def reflog_path(git_dir: Path, ref: str) -> Path:
    """Where git keeps the reflog of ``ref``."""
    return git_dir / "logs" / ref


def read_reflog(git_dir: Path | str, ref: str, *, tail: bool = False) -> list[ReflogEntry] | None:
    """The reflog of ``ref`` (None when it has none). ``tail``: only the last 64 KiB."""
    # Plain strings and os calls: this runs once per ref of a mirror (status, verify).
    path = f"{git_dir}/logs/{ref}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        size = os.fstat(fd).st_size
        start = size - _TAIL if tail and size > _TAIL else 0
        data = os.pread(fd, size - start, start)
    except IsADirectoryError:
        return None
    finally:
        os.close(fd)
    if start:
        data = data[data.find(b"\n") + 1:]  # a partial first line
    return parse_reflog(data.decode("utf-8", "replace"))


def first_and_last(git_dir: Path, ref: str) -> tuple[ReflogEntry, ReflogEntry] | None:
    """The oldest and the newest entry of ``ref``'s reflog (None when it has none)."""
    entries = read_reflog(git_dir, ref)
    if not entries:
        return None
    return entries[0], entries[-1]
