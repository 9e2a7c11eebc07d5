"""Progress of long work for a person at a terminal: git's own, named by repository.

The command line installs a :class:`TerminalProgress` (only on a terminal, never with
``--json`` or ``-q``) for the duration of one operation; the operations say which repository
they work on (:func:`begin`) and how it went (:func:`done`), and the network calls of
:mod:`git_mirror.git.remote` ask git for its progress (``--progress``) and relay it here.
Without a sink every function is a no-op and git runs exactly as before: ``serve``, tests
and scripts never see a byte of it.

The sink lives in a context variable, so a thread that did not install one (the server's
workers) has none.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TextIO

from git_mirror.redact import scrub

# The lines of git's stderr that are progress ("Receiving objects:  45% (...)", "remote:
# Compressing objects", "Resolving deltas", "Total 302 (delta 0)"): the rest (ref summaries,
# warnings) is left to the result and the error.
_PROGRESS = re.compile(r"^(remote: )?([A-Z][a-z]+ (objects|deltas): |Total \d+ \(delta )")
_SPLIT = re.compile(r"([\r\n])")


def without_progress(stderr: bytes) -> bytes:
    """git's stderr less its progress lines: what a quiet run would have said (errors)."""
    lines = _SPLIT.split(stderr.decode("utf-8", "replace"))[::2]
    return "".join(f"{ln}\n" for ln in lines if ln.strip() and not _PROGRESS.search(ln)).encode()


class TerminalProgress:
    """Writes git's progress and one summary line per repository to a terminal stream."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.repository: str | None = None
        self._partial = ""
        self._open_line = False  # the last write ended with "\r": the next one overwrites it
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(scrub(text))
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not fail the operation
            pass

    def begin(self, repository: str) -> None:
        with self._lock:
            self.repository = repository
            self._partial = ""

    def git_output(self, data: bytes) -> None:
        """A chunk of a git process's stderr: relay its progress lines, named."""
        with self._lock:
            parts = _SPLIT.split(self._partial + data.decode("utf-8", "replace"))
            self._partial = parts.pop()
            for text, end in zip(parts[::2], parts[1::2], strict=True):
                text = text.rstrip()
                if text and _PROGRESS.search(text):
                    pad = "\x1b[K" if end == "\r" else ""  # clear what a longer line left
                    self._write(f"{self.repository or 'git'}: {text}{pad}{end}")
                    self._open_line = end == "\r"

    def done(self, line: str) -> None:
        with self._lock:
            prefix = "\n" if self._open_line else ""
            self._open_line = False
            self._write(f"{prefix}{self.repository + ': ' if self.repository else ''}{line}\n")
            self.repository = None


_sink: ContextVar[TerminalProgress | None] = ContextVar("git_mirror_progress", default=None)


def current() -> TerminalProgress | None:
    """The sink of this thread's operation, if a person is watching."""
    return _sink.get()


@contextlib.contextmanager
def reporting(sink: TerminalProgress | None) -> Iterator[None]:
    """Report to ``sink`` (None: not at all) while the block runs."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def begin(repository: str) -> None:
    """Work on ``repository`` starts: git's progress lines are named after it."""
    sink = _sink.get()
    if sink is not None:
        sink.begin(repository)


def done(line: str) -> None:
    """Work on the current repository ended: one summary line."""
    sink = _sink.get()
    if sink is not None:
        sink.done(line)
