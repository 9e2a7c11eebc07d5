"""Progress of long work for a person at a terminal: git's own, named by repository.

The command line installs a :class:`TerminalProgress` (only on a terminal, never with
``--json`` or ``-q``) for the duration of one operation; the operations say which repository
they work on (:func:`begin`) and how it went (:func:`done`), and the network calls of
:mod:`git_mirror.git.remote` ask git for its progress (``--progress``) and relay it here.
Without a sink every function is a no-op and git runs exactly as before: ``serve``, tests
and scripts never see a byte of it.

The sink belongs to the process (its terminal): ``serve`` and the follower workers never
install one.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from git_mirror.redact import scrub

# The lines of git's stderr that are progress ("Receiving objects:  45% (...)", "remote:
# Compressing objects", "Resolving deltas", "Total 302 (delta 0)"): the rest (ref summaries,
# warnings) is left to the result and the error.
_PROGRESS = re.compile(r"^(remote: )?([A-Z][a-z]+ (objects|deltas): |Total \d+ \(delta )")
_SPLIT = re.compile(r"([\r\n])")


def without_progress(stderr: bytes) -> bytes:
    """The stderr of git less its progress lines: what a quiet run would have said (errors)."""
    lines = _SPLIT.split(stderr.decode("utf-8", "replace"))[::2]
    return "".join(f"{ln}\n" for ln in lines if ln.strip() and not _PROGRESS.search(ln)).encode()


class TerminalProgress:
    """Writes git's progress and one summary line per repository to a terminal stream.

    Repositories may be worked on in several threads at once: each thread names its own
    (:meth:`begin`), each git process gets its own relay (:meth:`relay`, bound to the name
    when the process starts), and whole lines are written under one lock.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._local = threading.local()
        self._open_line = False  # the last write ended with "\r": the next one overwrites it
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(scrub(text))
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not fail the operation
            pass

    @property
    def repository(self) -> str | None:
        """The repository this thread works on (named on every line), if any."""
        return getattr(self._local, "repository", None)

    def begin(self, repository: str) -> None:
        """Name the lines of this thread after ``repository`` (until :meth:`done`)."""
        self._local.repository = repository

    def relay(self) -> Callable[[bytes], None]:
        """A receiver for one git process's stderr, relaying its progress lines, named."""
        name = self.repository or "git"
        partial = [""]

        def receive(data: bytes) -> None:
            parts = _SPLIT.split(partial[0] + data.decode("utf-8", "replace"))
            partial[0] = parts.pop()
            with self._lock:
                for text, end in zip(parts[::2], parts[1::2], strict=True):
                    text = text.rstrip()
                    if text and _PROGRESS.search(text):
                        pad = "\x1b[K" if end == "\r" else ""  # clear what a longer line left
                        self._write(f"{name}: {text}{pad}{end}")
                        self._open_line = end == "\r"
        return receive

    def done(self, line: str) -> None:
        """End this thread's repository with its summary ``line`` (on a line of its own)."""
        name = self.repository
        with self._lock:
            prefix = "\n" if self._open_line else ""
            self._open_line = False
            self._write(f"{prefix}{name + ': ' if name else ''}{line}\n")
        self._local.repository = None


# The process's sink: progress belongs to the terminal of the process (a CLI run), and the
# operation may spread its repositories over threads. ``serve`` never installs one.
_sink: TerminalProgress | None = None


def current() -> TerminalProgress | None:
    """The sink of this process's operation, if a person is watching."""
    return _sink


@contextlib.contextmanager
def reporting(sink: TerminalProgress | None) -> Iterator[None]:
    """Report to ``sink`` (None: not at all) while the block runs."""
    global _sink
    previous, _sink = _sink, sink
    try:
        yield
    finally:
        _sink = previous


def begin(repository: str) -> None:
    """Work on ``repository`` starts (in this thread): git's progress lines are named after it."""
    sink = _sink
    if sink is not None:
        sink.begin(repository)


def done(line: str) -> None:
    """Work on this thread's repository ended: one summary line."""
    sink = _sink
    if sink is not None:
        sink.done(line)
