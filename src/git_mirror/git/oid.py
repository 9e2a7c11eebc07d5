"""Object ids and ref moves: what a reflog line and a hook's input line have in common.

A ref move is ``<old> <new>``; git writes the all-zero id for "no value", so an all-zero
``old`` is a create and an all-zero ``new`` a delete (SHA-1 or SHA-256 alike). Standard
library only: the ``pre-receive`` hook imports this on every push.
"""

from __future__ import annotations

from dataclasses import dataclass

ZERO = "0" * 40


def is_zero(oid: str) -> bool:
    """True for git's "no value" id (all zeros, of any length)."""
    return set(oid) == {"0"}


@dataclass(frozen=True)
class RefMove:
    """A ref that went from ``old`` to ``new``."""

    old: str
    new: str

    @property
    def is_create(self) -> bool:
        """The ref did not exist before."""
        return is_zero(self.old)

    @property
    def is_delete(self) -> bool:
        """The ref does not exist after."""
        return is_zero(self.new)
