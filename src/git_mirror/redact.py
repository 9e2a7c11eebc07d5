"""Secret values and their redaction.

A :class:`Secret` holds a value that must never be shown. Its ``str()`` and ``repr()`` are
the redacted form; only :meth:`Secret.reveal` gives the value, and that is called only where
a value is handed to a child process through a file or a pipe (never argv or a URL).

Every revealed value is remembered so that :func:`scrub` can take it out of any text
(stderr of a failed git process, an exception message) before that text is shown or logged.
"""

from __future__ import annotations

import hashlib
import threading

_KNOWN: set[str] = set()
_LOCK = threading.Lock()
REDACTED = "***"


class Secret:
    """A secret value whose text form is redacted."""

    __slots__ = ("_value", "source_ref")

    def __init__(self, value: str, source_ref: str) -> None:
        self._value = value
        self.source_ref = source_ref
        remember(value)

    def reveal(self) -> str:
        """The value itself: for the one place that hands it to git (env, a 0600 file)."""
        return self._value

    def fingerprint(self) -> str:
        """A short, non-reversible identifier: enough to tell two values apart."""
        digest = hashlib.sha256(self._value.encode()).hexdigest()
        return f"sha256:{digest[:12]}"

    def __str__(self) -> str:
        return f"<secret {self.source_ref}>"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def remember(value: str) -> None:
    """Register a value (and its lines) so that :func:`scrub` redacts it."""
    value = value.strip()
    if len(value) < 4:
        return
    with _LOCK:
        _KNOWN.add(value)
        for line in value.splitlines():
            if len(line.strip()) >= 8:
                _KNOWN.add(line.strip())


def scrub(text: str) -> str:
    """Replace every known secret value in ``text`` by ``***``."""
    if not text or not _KNOWN:
        return text
    with _LOCK:
        known = sorted(_KNOWN, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    return text
