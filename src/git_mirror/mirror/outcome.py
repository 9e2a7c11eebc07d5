"""What every per-repository operation result shares: ``ok`` and the first ``error``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from git_mirror.errors import GitMirrorError


class RepoOutcome(Protocol):
    """One repository's outcome: whether it went well, and its error if not."""

    @property
    def ok(self) -> bool:
        """The repository's run went well."""

    @property
    def error(self) -> GitMirrorError | None:
        """Why it did not (None when it did)."""


class PerRepository:
    """Mixin for results made of one outcome per repository."""

    repositories: Sequence[RepoOutcome]

    @property
    def ok(self) -> bool:
        """Every repository went well."""
        return all(r.ok for r in self.repositories)

    @property
    def error(self) -> GitMirrorError | None:
        """The first repository's error, in declaration order (None: no error)."""
        return next((r.error for r in self.repositories if r.error), None)
