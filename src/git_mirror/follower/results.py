"""The typed results of the follower commands, shared by every backend.

A backend (:mod:`git_mirror.follower.backends`) returns these; the CLI turns them into the
command's JSON object with ``to_json()``, at the edge. Two summaries are built by both
backends from different sources and must agree: :class:`SyncSummary` and
:class:`FlushSummary` come from a :class:`~git_mirror.mirror.sync.SyncResult` /
:class:`~git_mirror.mirror.flush.FlushResult` on a local node (:meth:`FlushSummary.of`) and
from a sync or flush Job's JSON on a kubernetes node (:meth:`FlushSummary.from_job`), parsed
once where the Job's result comes back. A kubernetes summary also names its Job. The same
holds for :class:`CloseoutResult`: the proof runs on the node's cache (in a Job on a
kubernetes node, whose JSON :meth:`CloseoutResult.from_json` reads back).

Where a command shows something only one kind of node has, the result says which kind it
is (``executor``) and carries those fields too; ``to_json`` keeps each kind's object as the
contract has it.

Run records stay JSON objects: they are files on disk whose format is part of the contract
(:mod:`git_mirror.follower.state`); a result carries the record, or the part it shows, as is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    from git_mirror.errors import GitMirrorError
    from git_mirror.mirror.flush import FlushResult
    from git_mirror.mirror.status_results import RepoStatus
    from git_mirror.mirror.sync import SyncResult

JSON = dict[str, Any]


class _OperationSummary:
    """What :class:`SyncSummary` and :class:`FlushSummary` share: read from a local result's
    JSON or from a Job's, written back as the contract's fields in their order (``KEYS``, held
    in the attributes ``FIELDS``), plus ``job`` when a Job ran it."""

    KEYS: ClassVar[tuple[str, ...]]
    FIELDS: ClassVar[tuple[str, ...]]
    job: JSON | None
    ran_as_job: bool

    @classmethod
    def of(cls, res: SyncResult | FlushResult) -> Self:
        """The summary of a sync or flush that ran in this process."""
        return cls._parse(res.to_json())

    @classmethod
    def from_job(cls, result: JSON) -> Self:
        """The summary of a Job, from the JSON result it wrote."""
        return cls._parse(result, ran_as_job=True)

    @classmethod
    def _parse(cls, data: JSON, *, ran_as_job: bool = False) -> Self:
        values = {name: data.get(key) for name, key in zip(cls.FIELDS, cls.KEYS, strict=True)}
        make: Callable[..., Self] = cls  # each summary is a dataclass of FIELDS, job, ran_as_job
        return make(**values, job=data.get("job") if ran_as_job else None, ran_as_job=ran_as_job)

    def to_json(self) -> dict[str, Any]:
        """The contract's fields, and ``job`` when a Job ran it."""
        out: JSON = {key: getattr(self, name)
                     for name, key in zip(self.FIELDS, self.KEYS, strict=True)}
        if self.ran_as_job:
            out["job"] = self.job
        return out


@dataclass(frozen=True)
class SyncSummary(_OperationSummary):
    """The part of a sync a follower's trigger reports (``sync``): local or a Job's."""

    KEYS: ClassVar[tuple[str, ...]] = ("ok", "updated", "snapshots", "error")
    FIELDS: ClassVar[tuple[str, ...]] = ("ok", "updated", "snapshots", "error")

    ok: bool | None
    updated: list[JSON] | None
    snapshots: list[JSON] | None
    error: JSON | None
    job: JSON | None = None  # the Job that ran it, on a kubernetes node
    ran_as_job: bool = False


@dataclass(frozen=True)
class FlushSummary(_OperationSummary):
    """The part of a flush of a follower's lane a trigger reports (``flushBefore``,
    ``flushAfter``) and a run record keeps: local or a Job's."""

    KEYS: ClassVar[tuple[str, ...]] = (
        "ok", "pushed", "partialSuccess", "partialSuccessRecovered", "postPushRecovery",
        "pendingFlush", "githubInSync", "error")
    FIELDS: ClassVar[tuple[str, ...]] = (
        "ok", "pushed", "partial_success", "partial_success_recovered", "post_push_recovery",
        "pending_flush", "github_in_sync", "error")

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
    PipelineRun summary; ``details`` are the fields shown after the common ones, in the
    order they were learnt: the lane's state (``laneState``), the dry run's plan, and what
    only one kind of node has (the Jobs it ran, the PipelineRun's manifest).
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
    # a kubernetes node's flush Job after the run; a local run record keeps its own
    flush_after: FlushSummary | None = None
    lane_tip: str | None = None
    pending_flush: bool | None = None
    github_in_sync: bool | None = None
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
            self.details["laneState"] = flags.lane

    def to_json(self) -> dict[str, Any]:
        """The ``follower trigger`` object of CONTRACT section 3."""
        if self.executor == "local":
            return self._local_json()
        return self._kube_json()

    def _local_json(self) -> dict[str, Any]:
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

    def _kube_json(self) -> dict[str, Any]:
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

    def _finish(self, out: JSON) -> dict[str, Any]:
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

    def to_json(self) -> dict[str, Any]:
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

    def to_json(self) -> dict[str, Any]:
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

    def to_json(self) -> dict[str, Any]:
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
    follower: str | None  # a PipelineRun without the follower label has none
    dry_run: bool
    would_remove: list[str]
    removed: list[str] = field(default_factory=list)
    executor: str | None = None  # said on a kubernetes node
    pipeline_run: JSON | None = None
    kept: list[KeptRun] | None = None
    next: str | None = None

    ok = True

    def to_json(self) -> dict[str, Any]:
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
class BranchView:
    """A follower's branch and lane in a repository's status object (``status``'s, on a
    local node, or a status Job's entry of the repository): the branch's source ref and the
    lane, with the repository's flags."""

    source: JSON | None
    lane: JSON | None
    pending_flush: bool | None
    github_in_sync: bool | None
    ref_sources: Any

    @classmethod
    def of(cls, repo: JSON, branch: str, lane: str, *,
           flags: JSON | None = None) -> BranchView:
        """The view of ``branch`` and ``lane`` in ``repo``; ``flags`` (the whole status
        object) gives ``pendingFlush`` / ``githubInSync`` when ``repo`` does not."""
        source = next((s for s in repo.get("sources") or [] if s.get("branch") == branch), None)
        state = next((ln for ln in repo.get("lanes") or [] if ln.get("name") == lane), None)
        outer = flags or {}
        return cls(source, state, repo.get("pendingFlush", outer.get("pendingFlush")),
                   repo.get("githubInSync", outer.get("githubInSync")), repo.get("refSources"))

    @classmethod
    def of_status(cls, entry: RepoStatus, branch: str, lane: str) -> BranchView:
        """The view of ``branch`` and ``lane`` in a repository's typed status entry (a local
        node's): the same values as :meth:`of` reads from that entry's JSON."""
        source, state = entry.source(branch), entry.lane(lane)
        return cls(source.to_json() if source else None, state.to_json() if state else None,
                   entry.pending_flush, entry.github_in_sync, entry.ref_sources)

    def source_field(self, key: str) -> Any:
        """A field of the branch's source ref (None without one)."""
        return self.source.get(key) if self.source is not None else None


@dataclass(frozen=True)
class FollowerStatus:
    """``follower status``: the last run, the branch tip and snapshot, the lane.

    ``last_run`` is the run as recorded (a local run record, or a PipelineRun summary).
    A local node also shows the mirror and what a finished last run's failure means
    (``lastRunError``); a kubernetes node the status Job (or serve) that read the mirror.
    """

    node: str
    follower: str
    repository: str
    branch: str
    trigger: JSON
    view: BranchView
    lane: JSON  # the lane's state, or its name and ref when the mirror has none
    last_run: JSON | None
    running: list[str]
    runs: int
    executor: str = "local"
    mirror: JSON | None = None  # local
    last_run_error: JSON | None = None  # local
    job: JSON | None = None  # kubernetes
    status_via: str | None = None  # kubernetes
    config_applied: bool | None = None  # kubernetes

    ok = True

    def to_json(self) -> dict[str, Any]:
        """The ``follower status`` object of CONTRACT section 3."""
        local = self.executor == "local"
        last = self.last_run
        out: JSON = {"ok": True, "node": self.node}
        if not local:
            out["executor"] = self.executor
        out.update(follower=self.follower, repository=self.repository, branch=self.branch,
                   trigger=self.trigger)
        if local:
            out["mirror"] = self.mirror
        out.update({
            "branchTip": self.view.source_field("mirrorCommit"),
            "githubCommit": self.view.source_field("githubCommit"),
            "snapshotRef": self.view.source_field("snapshotRef"),
            "lane": self.lane,
            "run": {"name": last.get("name"), "status": last.get("status")} if last else None,
            "lastRun": last, "running": self.running, "runs": self.runs})
        if local:
            out["lastRunError"] = self.last_run_error
        out.update(pendingFlush=self.view.pending_flush, githubInSync=self.view.github_in_sync,
                   refSources=self.view.ref_sources)
        if not local:
            out.update(job=self.job, statusVia=self.status_via,
                       configApplied=self.config_applied)
        return out


@dataclass(frozen=True)
class FlushState:
    """Where a run's published lane commit is now (``follower status --pipeline-run``):
    ``flushed``, ``pending``, ``superseded`` or ``not-published``, and the lane's commits
    in the mirror and upstream (as last observed)."""

    state: str
    upstream_lane_commit: str | None
    mirror_lane_commit: str | None
    upstream_has_published: bool | None
    pending_flush: bool | None = None
    flush_after: JSON | None = None  # a local run record's flushAfter
    local: bool = True

    def to_json(self) -> dict[str, Any]:
        """The ``flush`` object of a run's status."""
        if not self.local:
            return {"state": self.state, "upstreamLaneCommit": self.upstream_lane_commit,
                    "mirrorLaneCommit": self.mirror_lane_commit,
                    "upstreamHasPublished": self.upstream_has_published,
                    "pendingFlush": self.pending_flush}
        return {"upstreamLaneCommit": self.upstream_lane_commit,
                "mirrorLaneCommit": self.mirror_lane_commit,
                "upstreamHasPublished": self.upstream_has_published, "state": self.state,
                "flushAfter": self.flush_after, "pendingFlush": self.pending_flush}


_TIP_NOTE = ("the branch as the mirror holds it now, not this run's source (that is "
             "pipelineRun.commit, from pipelineRun.snapshotRef)")


@dataclass(frozen=True)
class RunStatus:
    """``follower status --pipeline-run NAME``: one run as observed now, and where the lane
    commit it published is. ``current_branch_tip`` is the branch now, not the run's source.
    A local node adds what a finished run's failure means (``runError``); a kubernetes node
    the closeout Job that read the mirror."""

    node: str
    follower: str
    repository: str
    branch: str
    lane: JSON
    pipeline_run: JSON
    flush: FlushState
    current_branch_tip: str | None
    pending_flush: bool | None
    github_in_sync: bool | None
    executor: str = "local"
    run_error: JSON | None = None  # local
    job: JSON | None = None  # kubernetes

    ok = True

    def to_json(self) -> dict[str, Any]:
        """The run's status object of CONTRACT section 3."""
        local = self.executor == "local"
        out: JSON = {"ok": True, "node": self.node}
        if not local:
            out["executor"] = self.executor
        out.update({
            "follower": self.follower, "repository": self.repository, "branch": self.branch,
            "lane": self.lane, "pipelineRun": self.pipeline_run,
            "run": {"name": self.pipeline_run.get("name"),
                    "status": self.pipeline_run.get("status")},
            "flush": self.flush.to_json(), "currentBranchTip": self.current_branch_tip,
            "currentBranchTipNote": _TIP_NOTE})
        if local:
            out["runError"] = self.run_error
        out.update(pendingFlush=self.pending_flush, githubInSync=self.github_in_sync)
        if not local:
            out["job"] = self.job
        return out


_CLOSEOUT_KEYS = ("ok", "node", "follower", "repository", "branch", "mergeCommit",
                  "pipelineRun", "syncRevision", "syncRevisionSource", "branchTip",
                  "branchTipNote", "tipContainsMergeCommit", "runContainsMergeCommit",
                  "deployedContainsRun", "pendingFlush", "githubInSync", "lane", "checks",
                  "refSources", "error", "ledger")
_TIP_NOTE_CLOSEOUT = ("the branch as the mirror holds it now, not the run's source (that is "
                      "pipelineRun.commit)")


@dataclass
class CloseoutResult:
    """``closeout``: the proof that a merge commit was delivered (CONTRACT section 4).

    Built by :func:`git_mirror.follower.closeout.closeout` on the node's cache. A kubernetes
    node runs that in a Job and reads the Job's JSON back with :meth:`from_json`, once; what
    the Job's runner and the cluster add (the Job, Argo CD, warnings) is in ``details``, in
    the order it was added.
    """

    ok: bool
    node: str
    follower: str
    repository: str
    branch: str
    merge_commit: str
    pipeline_run: JSON  # the judged run: name, status, built commit, published lane commit
    sync_revision: str | None
    sync_revision_source: str | None
    branch_tip: str | None
    tip_contains: bool
    run_contains: bool | None
    deployed_contains: bool | None
    pending_flush: bool | None
    github_in_sync: bool
    lane: JSON
    checks: list[JSON]
    ref_sources: Any
    error: JSON | None = None  # the closeout-failed error object, when a check failed
    ledger: JSON | None = None  # where the result was recorded, and the line
    details: JSON = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: JSON) -> CloseoutResult:
        """The result in a closeout Job's JSON (``closeout --mirror-only``)."""
        return cls(
            ok=bool(data.get("ok")), node=data.get("node") or "", follower=data["follower"],
            repository=data["repository"], branch=data["branch"],
            merge_commit=data["mergeCommit"], pipeline_run=data.get("pipelineRun") or {},
            sync_revision=data.get("syncRevision"),
            sync_revision_source=data.get("syncRevisionSource"),
            branch_tip=data.get("branchTip"),
            tip_contains=bool(data.get("tipContainsMergeCommit")),
            run_contains=data.get("runContainsMergeCommit"),
            deployed_contains=data.get("deployedContainsRun"),
            pending_flush=data.get("pendingFlush"),
            github_in_sync=bool(data.get("githubInSync")), lane=data.get("lane") or {},
            checks=list(data.get("checks") or []), ref_sources=data.get("refSources"),
            error=data.get("error"), ledger=data.get("ledger"),
            details={k: v for k, v in data.items() if k not in _CLOSEOUT_KEYS})

    def to_json(self) -> dict[str, Any]:
        """The closeout object."""
        out: JSON = {
            "ok": self.ok, "node": self.node, "follower": self.follower,
            "repository": self.repository, "branch": self.branch,
            "mergeCommit": self.merge_commit, "pipelineRun": self.pipeline_run,
            "syncRevision": self.sync_revision, "syncRevisionSource": self.sync_revision_source,
            "branchTip": self.branch_tip, "branchTipNote": _TIP_NOTE_CLOSEOUT,
            "tipContainsMergeCommit": self.tip_contains,
            "runContainsMergeCommit": self.run_contains,
            "deployedContainsRun": self.deployed_contains,
            "pendingFlush": self.pending_flush, "githubInSync": self.github_in_sync,
            "lane": self.lane, "checks": self.checks, "refSources": self.ref_sources}
        if self.error is not None:
            out["error"] = self.error
        if self.ledger is not None:
            out["ledger"] = self.ledger
        out.update(self.details)
        return out


@dataclass(frozen=True)
class CloseoutHistory:
    """``closeout --history``: the ledger lines of a follower (of one merge commit), oldest
    first. A kubernetes node reads its ledger with a Job (:meth:`from_json`); ``details``
    is what the Job's runner adds."""

    node: str
    follower: str
    merge_commit: str | None
    ledger: str
    closeouts: list[JSON]
    details: JSON = field(default_factory=dict)

    ok = True

    @classmethod
    def from_json(cls, data: JSON) -> CloseoutHistory:
        """The history in a closeout Job's JSON (``closeout --history``)."""
        keys = ("ok", "node", "follower", "mergeCommit", "ledger", "closeouts")
        return cls(node=data.get("node") or "", follower=data["follower"],
                   merge_commit=data.get("mergeCommit"), ledger=str(data.get("ledger")),
                   closeouts=list(data["closeouts"]),
                   details={k: v for k, v in data.items() if k not in keys})

    def to_json(self) -> dict[str, Any]:
        """``{ok, node, follower, mergeCommit, ledger, closeouts}``."""
        return {"ok": True, "node": self.node, "follower": self.follower,
                "mergeCommit": self.merge_commit, "ledger": self.ledger,
                "closeouts": self.closeouts, **self.details}
