"""The typed results of ``status``: a repository's entry (its transport and proxy, secrets,
sources and lanes) and the whole status object, each serialised by ``to_json`` at the edge in
the shape of CONTRACT section 4.

Values only: reading the mirror and the config to fill them is ``mirror/status.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from git_mirror.mirror.layout import STAGE

if TYPE_CHECKING:
    from git_mirror.errors import GitMirrorError
    from git_mirror.mirror.journal import LastRun


@dataclass(frozen=True)
class SecretEntry:
    """A secret a repository uses: where it comes from, and its redacted fingerprint or why
    there is none. Never its value."""

    role: str
    source_ref: str
    at: str  # where the YAML declares it (file:line)
    fingerprint: str | None = None
    error: str | None = None  # "not set", or "unreadable: ..."

    def to_json(self) -> dict[str, Any]:
        """The secret's entry in a repository's ``secrets``."""
        out = {"role": self.role, "sourceRef": self.source_ref, "source": "yaml",
               "at": self.at, "fingerprint": self.fingerprint}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class Egress:
    """How a repository reaches upstream, as the YAML declares it: its transport (mode, URL)
    and its proxy (none, or a named one), each with where the YAML says so."""

    mode: str
    url: str
    at: str
    proxy_mode: str
    proxy_name: str | None
    proxy_url: str | None
    proxy_at: str

    def transport_json(self) -> dict[str, Any]:
        """The ``transport`` object of a repository's status."""
        return {"mode": self.mode, "url": self.url, "source": "yaml", "at": self.at}

    def proxy_json(self) -> dict[str, Any]:
        """The ``proxy`` object of a repository's status (no ``url`` without a proxy)."""
        if self.proxy_name is None:
            return {"mode": self.proxy_mode, "name": None, "source": "yaml", "at": self.proxy_at}
        return {"mode": self.proxy_mode, "name": self.proxy_name, "url": self.proxy_url,
                "source": "yaml", "at": self.proxy_at}


@dataclass
class SourceStatus:
    """A source branch: the mirror's tip, upstream's as last observed, its snapshot ref."""

    branch: str
    pattern: str
    snapshot_group: str
    mirror_commit: str | None
    github_commit: str | None
    snapshot_ref: str | None
    github_in_sync: bool

    def to_json(self) -> dict[str, Any]:
        """The source's entry in a repository's ``sources``."""
        return {"branch": self.branch, "pattern": self.pattern,
                "snapshotGroup": self.snapshot_group, "mirrorCommit": self.mirror_commit,
                "githubCommit": self.github_commit, "snapshotRef": self.snapshot_ref,
                "githubInSync": self.github_in_sync}


@dataclass(frozen=True)
class LaneStatus:
    """A lane: the mirror's commit against its stage ref, and what that means for flush."""

    name: str
    ref: str
    mirror_commit: str | None
    github_commit: str | None
    pending_flush: bool
    github_in_sync: bool
    diverged: bool
    state: str

    def to_json(self) -> dict[str, Any]:
        """The lane's entry in a repository's ``lanes``."""
        return {"name": self.name, "ref": self.ref, "mirrorCommit": self.mirror_commit,
                "githubCommit": self.github_commit, "pendingFlush": self.pending_flush,
                "githubInSync": self.github_in_sync, "diverged": self.diverged,
                "state": self.state}


@dataclass
class RepoStatus:
    """One repository's status entry (CONTRACT section 4), from the cache only."""

    id: str
    path: str
    exists: bool
    egress: Egress
    secrets: list[SecretEntry]
    last_sync: LastRun | None
    last_flush: LastRun | None
    sources: list[SourceStatus] = field(default_factory=list)
    lanes: list[LaneStatus] = field(default_factory=list)
    pending_flush: bool = False
    github_in_sync: bool = False
    hint: str | None = None  # the next command, for a mirror that does not exist yet
    integrity: dict[str, Any] | None = None  # the checks of verify, when status ran them

    @property
    def diverged(self) -> bool:
        """A lane diverged: the mirror and upstream both moved."""
        return any(lane.diverged for lane in self.lanes)

    def lane(self, name: str) -> LaneStatus | None:
        """The lane called ``name``, if the repository declares it."""
        return next((ln for ln in self.lanes if ln.name == name), None)

    def source(self, branch: str) -> SourceStatus | None:
        """The source branch ``branch``, if the mirror or upstream has it."""
        return next((s for s in self.sources if s.branch == branch), None)

    def mirror_json(self) -> dict[str, Any]:
        """The ``mirror`` object of the entry: the bare repository's path and whether it exists."""
        return {"path": self.path, "exists": self.exists}

    @property
    def ref_sources(self) -> dict[str, Any]:
        """Where the upstream-side fields come from: the mirror's own stage refs (R14)."""
        return {"githubFieldsAreMirrorStageCache": True, "stagePrefix": STAGE}

    def to_json(self) -> dict[str, Any]:
        """The repository's entry in ``status --json``."""
        out: dict[str, Any] = {
            "id": self.id, "mirror": self.mirror_json(),
            "transport": self.egress.transport_json(), "proxy": self.egress.proxy_json(),
            "secrets": [e.to_json() for e in self.secrets],
            "refSources": self.ref_sources,
            "lastSync": self.last_sync.to_json() if self.last_sync else None,
            "lastFlush": self.last_flush.to_json() if self.last_flush else None,
            "sources": [s.to_json() for s in self.sources],
            "lanes": [lane.to_json() for lane in self.lanes],
            "pendingFlush": self.pending_flush, "githubInSync": self.github_in_sync,
            "diverged": self.diverged,
        }
        if self.hint is not None:
            out["hint"] = self.hint
        if self.integrity is not None:
            out["integrity"] = self.integrity
        return out


@dataclass
class StatusResult:
    """The status of the selected repositories, and the integrity of the node."""

    node: str
    config_path: str
    config_sha256: str
    cache: str
    repositories: list[RepoStatus]
    integrity: dict[str, Any]
    error: GitMirrorError | None = None  # the integrity error, when a check failed

    @property
    def ok(self) -> bool:
        """No integrity problem was found."""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` object (CONTRACT section 4)."""
        repos = self.repositories
        out: dict[str, Any] = {
            "ok": self.ok, "node": self.node, "source": "yaml",
            "config": {"path": self.config_path, "sha256": self.config_sha256},
            "cache": self.cache,
            "pendingFlush": any(r.pending_flush for r in repos),
            "diverged": any(r.diverged for r in repos),
            "githubInSync": all(r.github_in_sync for r in repos),
            "repositories": [r.to_json() for r in repos],
            "integrity": self.integrity,
        }
        if self.error is not None:
            out["error"] = self.error.to_json()
        return out
