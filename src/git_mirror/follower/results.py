"""The typed results of the follower commands, shared by every backend.

A backend (:mod:`git_mirror.follower.backends`) returns these; the CLI turns them into the
command's JSON object with ``to_json()``, at the edge. Two summaries are built by both
backends from different sources and must agree: :class:`SyncSummary` and
:class:`FlushSummary` come from a :class:`~git_mirror.mirror.sync.SyncResult` /
:class:`~git_mirror.mirror.flush.FlushResult` on a local node (:meth:`FlushSummary.of`) and
from a sync or flush Job's JSON on a kubernetes node (:meth:`FlushSummary.from_job`), parsed
once where the Job's result comes back. A kubernetes summary also names its Job.

Run records stay JSON objects: they are files on disk whose format is part of the contract
(:mod:`git_mirror.follower.state`); a result carries the record, or the part it shows, as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from git_mirror.errors import GitMirrorError
    from git_mirror.mirror.flush import FlushResult
    from git_mirror.mirror.sync import SyncResult

JSON = dict[str, Any]
_SYNC_KEYS = ("ok", "updated", "snapshots", "error")
_FLUSH_KEYS = ("ok", "pushed", "partialSuccess", "partialSuccessRecovered", "postPushRecovery",
               "pendingFlush", "githubInSync", "error")


class CommandResult(Protocol):
    """What every follower command returns: whether it succeeded, and its JSON object."""

    @property
    def ok(self) -> bool:
        """True when the command did what it was asked (the exit code follows it)."""
        ...

    def to_json(self) -> JSON:
        """The command's JSON object (CONTRACT section 3)."""
        ...


@dataclass(frozen=True)
class SyncSummary:
    """The part of a sync a follower's trigger reports (``sync``): local or a Job's."""

    ok: bool | None
    updated: list[JSON] | None
    snapshots: list[JSON] | None
    error: JSON | None
    job: JSON | None = None  # the Job that ran it, on a kubernetes node
    ran_as_job: bool = False

    @classmethod
    def of(cls, res: SyncResult) -> SyncSummary:
        """The summary of a sync that ran in this process."""
        return cls._parse(res.to_json())

    @classmethod
    def from_job(cls, result: JSON) -> SyncSummary:
        """The summary of a sync Job, from the JSON result it wrote."""
        return cls._parse(result, ran_as_job=True)

    @classmethod
    def _parse(cls, data: JSON, *, ran_as_job: bool = False) -> SyncSummary:
        return cls(ok=data.get("ok"), updated=data.get("updated"),
                   snapshots=data.get("snapshots"), error=data.get("error"),
                   job=data.get("job") if ran_as_job else None, ran_as_job=ran_as_job)

    def to_json(self) -> JSON:
        """``{ok, updated, snapshots, error}``, and ``job`` when a Job ran it."""
        out: JSON = dict(zip(_SYNC_KEYS, (self.ok, self.updated, self.snapshots, self.error),
                             strict=True))
        if self.ran_as_job:
            out["job"] = self.job
        return out


@dataclass(frozen=True)
class FlushSummary:
    """The part of a flush of a follower's lane a trigger reports (``flushBefore``,
    ``flushAfter``) and a run record keeps: local or a Job's."""

    ok: bool | None
    pushed: list[JSON] | None
    partial_success: str | None
    partial_success_recovered: bool | None
    post_push_recovery: JSON | None
    pending_flush: bool | None
    github_in_sync: bool | None
    error: JSON | None
    job: JSON | None = None  # the Job that ran it, on a kubernetes node
    ran_as_job: bool = False

    @classmethod
    def of(cls, res: FlushResult) -> FlushSummary:
        """The summary of a flush that ran in this process."""
        return cls._parse(res.to_json())

    @classmethod
    def from_job(cls, result: JSON) -> FlushSummary:
        """The summary of a flush Job, from the JSON result it wrote."""
        return cls._parse(result, ran_as_job=True)

    @classmethod
    def _parse(cls, data: JSON, *, ran_as_job: bool = False) -> FlushSummary:
        return cls(ok=data.get("ok"), pushed=data.get("pushed"),
                   partial_success=data.get("partialSuccess"),
                   partial_success_recovered=data.get("partialSuccessRecovered"),
                   post_push_recovery=data.get("postPushRecovery"),
                   pending_flush=data.get("pendingFlush"),
                   github_in_sync=data.get("githubInSync"), error=data.get("error"),
                   job=data.get("job") if ran_as_job else None, ran_as_job=ran_as_job)

    def to_json(self) -> JSON:
        """The flush's contract fields, and ``job`` when a Job ran it."""
        values = (self.ok, self.pushed, self.partial_success, self.partial_success_recovered,
                  self.post_push_recovery, self.pending_flush, self.github_in_sync, self.error)
        out: JSON = dict(zip(_FLUSH_KEYS, values, strict=True))
        if self.ran_as_job:
            out["job"] = self.job
        return out


@dataclass(frozen=True)
class LaneFlags:
    """A follower's lane as a status read saw it: the lane object (``laneState``) and the
    repository's ``pendingFlush`` / ``githubInSync``; None where the read did not say."""

    lane: JSON | None
    pending_flush: bool | None
    github_in_sync: bool | None

    @classmethod
    def from_result(cls, result: JSON, rid: str, lane: str) -> LaneFlags:
        """The flags in a status, flush or sync result's JSON (a Job's, on a kubernetes node):
        the top-level flags, and the lane among repository ``rid``'s ``lanes``."""
        state = None
        for repo in result.get("repositories") or []:
            if repo.get("id") == rid:
                state = next((ln for ln in repo.get("lanes") or [] if ln.get("name") == lane),
                             None)
                break
        pending, in_sync = result.get("pendingFlush"), result.get("githubInSync")
        return cls(state, None if pending is None else bool(pending),
                   None if in_sync is None else bool(in_sync))

    @property
    def lane_tip(self) -> str | None:
        """The lane's commit in the mirror."""
        return self.lane.get("mirrorCommit") if self.lane is not None else None


@dataclass
class TriggerResult:
    """What ``follower trigger`` did (or, as a dry run, would do), on any node.

    ``run`` is the run as it is recorded: a local run record, or a kubernetes node's
    PipelineRun summary; ``details`` are the fields only one kind of node has (the Jobs it
    ran, the PipelineRun's manifest, the dry run's plan), in the order they are shown.
    """

    node: str
    follower: str
    repository: str
    branch: str
    lane: str
    lane_ref: str
    trigger: JSON
    dry_run: bool
    push_url: str
    executor: str = "local"
    repo_url: str | None = None  # a kubernetes node's in-cluster URL of the mirror
    snapshot_ref: str | None = None
    commit: str | None = None
    run: JSON | None = None
    flush_before: FlushSummary | None = None
    sync: SyncSummary | None = None
    flush_after: FlushSummary | None = None
    lane_tip: str | None = None
    pending_flush: bool | None = None
    github_in_sync: bool | None = None
    lane_state: JSON | None = None
    error: GitMirrorError | None = None
    details: JSON = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True unless a step failed."""
        return self.error is None

    def take_flags(self, flags: LaneFlags) -> None:
        """Adopt what a status read says of the lane (a flag it does not give stays)."""
        if flags.pending_flush is not None:
            self.pending_flush = flags.pending_flush
        if flags.github_in_sync is not None:
            self.github_in_sync = flags.github_in_sync
        if flags.lane is not None:
            self.lane_tip = flags.lane_tip
            self.lane_state = flags.lane

    def to_json(self) -> JSON:
        """The ``follower trigger`` object of CONTRACT section 3."""
        if self.executor == "local":
            return self._local_json()
        return self._kube_json()

    def _local_json(self) -> JSON:
        run = self.run or {}
        out: JSON = {
            "ok": self.ok, "node": self.node, "dryRun": self.dry_run, "follower": self.follower,
            "repository": self.repository, "branch": self.branch,
            "lane": {"name": self.lane, "ref": self.lane_ref},
            "trigger": self.trigger, "pushUrl": self.push_url,
            "run": {"name": run.get("name"), "status": run.get("status", "not-started"),
                    "exitCode": run.get("exitCode"), "log": run.get("log"),
                    "startedAt": run.get("startedAt"), "finishedAt": run.get("finishedAt")},
            "snapshotRef": self.snapshot_ref, "commit": self.commit,
            "flushBefore": _json_of(self.flush_before), "sync": _json_of(self.sync),
            "flushAfter": run.get("flushAfter"),
            "laneTip": self.lane_tip, "pendingFlush": self.pending_flush,
            "githubInSync": self.github_in_sync, **self.details,
        }
        return self._finish(out)

    def _kube_json(self) -> JSON:
        out: JSON = {
            "ok": self.ok, "node": self.node, "executor": self.executor,
            "dryRun": self.dry_run, "follower": self.follower, "repository": self.repository,
            "branch": self.branch, "lane": {"name": self.lane, "ref": self.lane_ref},
            "trigger": self.trigger, "pushUrl": self.push_url, "repoUrl": self.repo_url,
            "run": self.run, "snapshotRef": self.snapshot_ref, "commit": self.commit,
            "sync": _json_of(self.sync), "flushBefore": _json_of(self.flush_before),
            "flushAfter": _json_of(self.flush_after), "laneTip": self.lane_tip,
            "pendingFlush": self.pending_flush, "githubInSync": self.github_in_sync,
            **self.details,
        }
        return self._finish(out)

    def _finish(self, out: JSON) -> JSON:
        if self.lane_state is not None:
            out["laneState"] = self.lane_state
        if self.error is not None:
            out["error"] = self.error.to_json()
        return out


def _json_of(summary: SyncSummary | FlushSummary | None) -> JSON | None:
    return summary.to_json() if summary is not None else None


@dataclass(frozen=True)
class FollowerItem:
    """One declared follower in ``follower list``, with its last run's summary."""

    id: str
    repository: str
    branch: str
    lane: str
    trigger: str
    last_run: JSON | None

    def to_json(self) -> JSON:
        """The follower's entry in ``followers``."""
        return {"id": self.id, "repository": self.repository, "branch": self.branch,
                "lane": self.lane, "trigger": self.trigger, "lastRun": self.last_run}


@dataclass(frozen=True)
class FollowerList:
    """``follower list``: the declared followers (or the one asked for)."""

    node: str
    followers: list[FollowerItem]
    executor: str | None = None  # said on a kubernetes node

    ok = True

    def to_json(self) -> JSON:
        """``{ok, node, [executor], followers}``."""
        out: JSON = {"ok": True, "node": self.node}
        if self.executor is not None:
            out["executor"] = self.executor
        out["followers"] = [f.to_json() for f in self.followers]
        return out


@dataclass(frozen=True)
class KeptRun:
    """A run cleanup left alone, and why (``running``)."""

    run: str
    reason: str

    def to_json(self) -> JSON:
        """``{run, reason}``."""
        return {"run": self.run, "reason": self.reason}


@dataclass
class CleanupResult:
    """``cleanup-runs`` (one run, ``pipeline_run`` set) or ``follower cleanup-state``.

    A dry run lists ``would_remove``; a confirmed one ``removed`` (paths on a local node,
    cluster objects on a kubernetes node). ``kept`` is said by cleanup-state only, ``next``
    by a confirmed cleanup-runs only.
    """

    node: str
    follower: str
    dry_run: bool
    would_remove: list[str]
    removed: list[str] = field(default_factory=list)
    executor: str | None = None  # said on a kubernetes node
    pipeline_run: JSON | None = None
    kept: list[KeptRun] | None = None
    next: str | None = None

    ok = True

    def to_json(self) -> JSON:
        """The cleanup object of CONTRACT section 3."""
        out: JSON = {"ok": True, "node": self.node}
        if self.executor is not None:
            out["executor"] = self.executor
        out.update(dryRun=self.dry_run, follower=self.follower)
        if self.pipeline_run is not None:
            out["pipelineRun"] = self.pipeline_run
        out.update(wouldRemove=self.would_remove, removed=self.removed)
        if self.kept is not None:
            out["kept"] = [k.to_json() for k in self.kept]
        if self.next is not None:
            out["next"] = self.next
        return out


@dataclass(frozen=True)
class Report:
    """A follower command's answer that is a JSON document by nature: a status, a closeout,
    the closeout ledger. Its fields come from run records, the ledger, a Job's result or
    the cluster, and are shown as they are; ``ok`` is the object's own."""

    data: JSON

    @property
    def ok(self) -> bool:
        """The object's ``ok``."""
        return bool(self.data.get("ok"))

    def to_json(self) -> JSON:
        """The object itself."""
        return self.data
