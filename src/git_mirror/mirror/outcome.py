"""What every per-repository operation result shares: ``ok`` and the first ``error``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from git_mirror.errors import GitMirrorError


class RepoOutcome(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def error(self) -> GitMirrorError | None: ...


class PerRepository:
    """Mixin for results made of one outcome per repository."""

    repositories: Sequence[RepoOutcome]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.repositories)

    @property
    def error(self) -> GitMirrorError | None:
        return next((r.error for r in self.repositories if r.error), None)
