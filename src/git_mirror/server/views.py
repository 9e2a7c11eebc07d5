"""The dashboard's page models: what :func:`git_mirror.server.board.board` gathers and the
templates read.

A :class:`Board` holds a :class:`RepoView` per repository and a :class:`FollowerView` per
follower; errors a person should read are :class:`ErrorView` values. What comes from the
status object and the journals stays as they wrote it: a repository's status entry is read
through its view (``repo.lanes`` in a template is the entry's ``lanes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from git_mirror.server.health import OK


@dataclass(frozen=True)
class ErrorView:
    """An error as a page shows it: its code, message and hint, and where and when it was."""

    code: str | None
    message: str | None
    hint: str | None = None
    what: str | None = None    # "last sync", "last run r-1", ...
    at: str | None = None

    @classmethod
    def of(cls, err: dict[str, Any], *, what: str | None = None,
           at: str | None = None) -> ErrorView:
        """The view of an ``error`` object (of a journal record, a run, an exception)."""
        return cls(err.get("code"), err.get("message"), err.get("hint"), what, at)

    def about(self, what: str) -> ErrorView:
        """The same error, said to be of ``what``."""
        return replace(self, what=what)


@dataclass
class RepoView:
    """A repository's status entry (``status``) and what the page adds to it.

    The entry's own fields are read through the view (``view["lanes"]``, and so
    ``repo.lanes`` in a template): they are the ``status --json`` object's, unchanged.
    """

    status: dict[str, Any]
    level: str
    reasons: list[str]
    errors: list[ErrorView]
    scheduler: dict[str, Any] | None      # this repository's entry of serve's scheduler
    runs: list[dict[str, Any]]            # journal records, newest first
    followers: list[str]

    @property
    def id(self) -> str:
        """The repository id."""
        return str(self.status["id"])

    def __getitem__(self, key: str) -> Any:
        return self.status[key]


@dataclass
class FollowerView:
    """A follower as its page shows it: declaration, runs, lane, closeouts, level."""

    id: str
    repository: str
    branch: str
    lane: str
    trigger: str
    runs: list[dict[str, Any]]              # newest first (:func:`follower_runs`)
    lane_state: dict[str, Any] | None       # the lane's status entry
    source: dict[str, Any] | None           # the branch's status entry
    closeouts: list[dict[str, Any]]
    level: str = OK
    reasons: list[str] = field(default_factory=list)

    @property
    def last_run(self) -> dict[str, Any] | None:
        """The newest run, if any."""
        return self.runs[0] if self.runs else None


@dataclass
class Board:
    """Everything the pages show, gathered once (:func:`board`)."""

    node: str
    config: dict[str, Any]                 # the status object's ``config``: path, sha256
    level: str
    reasons: list[str]
    pending_flush: bool
    github_in_sync: bool
    diverged: bool
    repositories: list[RepoView]
    followers: list[FollowerView]
    server: dict[str, Any] | None          # serve's scheduler (``/api/status`` ``server``)
    events: list[dict[str, Any]]

    def repository(self, rid: str) -> RepoView | None:
        """The view of repository ``rid``, if declared."""
        return next((r for r in self.repositories if r.id == rid), None)

    def follower(self, fid: str) -> FollowerView | None:
        """The view of follower ``fid``, if declared."""
        return next((f for f in self.followers if f.id == fid), None)
