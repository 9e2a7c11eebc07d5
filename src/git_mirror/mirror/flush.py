"""``flush``: lane refs back upstream, fast-forward only, with a verified outcome (R5, R15).

Per repository, under the same lock as sync:

1. one ``git for-each-ref`` of the lane refs and their stage refs (upstream as last
   observed). A lane holding commits its stage ref lacks is a candidate;
2. the stage commit must be an ancestor of the lane (one ``rev-list`` for all lanes,
   :mod:`git_mirror.git.ancestry`), else the lane is ``diverged``: nothing is pushed for the
   repository and nothing changes locally;
3. one ``git push --atomic --porcelain`` of every candidate, by commit id (a client pushing
   into the mirror meanwhile cannot change what is sent), without ``+``, each with
   ``--force-with-lease=<ref>:<stage commit>`` (empty when upstream has no such lane yet):
   a concurrent upstream change is refused, never overwritten. A ref upstream already holds
   reports "up to date": a flush retried after a push whose report was lost pushes nothing;
4. the post-push recheck: ``ls-remote`` of the pushed refs, a fetch of any commit the mirror
   lacks, one ref transaction moving the stage refs to what upstream now holds.

When the lease finds upstream moved since the last sync (step 3 refused as "stale info"),
flush looks at upstream itself, once: one ``ls-remote`` (and a fetch of unknown commits, no
ref written), the same ancestry rule against upstream's commit, and one more atomic push
leased on that commit; a lane that upstream and the mirror both moved is ``diverged``.

When the push succeeded but the recheck failed, the result says
``partialSuccess: "push-succeeded-fetch-failed"`` and one controlled sync runs after a short
back-off; its outcome is the ``postPushRecovery`` record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code, DivergedError, GitMirrorError, NotAppliedError
from git_mirror.git.ancestry import ancestors, refs_with_parents
from git_mirror.git.refs import RefTransaction, RefUpdate, has_commits
from git_mirror.git.remote import RemoteEnv, fetch_objects, ls_remote, push
from git_mirror.mirror import audit, journal
from git_mirror.mirror.layout import LaneSpec, RepoLayout, selected_repositories
from git_mirror.mirror.outcome import PerRepository
from git_mirror.mirror.recovery import record_safely
from git_mirror.mirror.report import flush_line
from git_mirror.mirror.runner import RepoOperation, run_repositories, sweep_stale_locks

if TYPE_CHECKING:
    from pathlib import Path

    from git_mirror.config.loader import LoadedConfig

PARTIAL = "push-succeeded-fetch-failed"
log = logging.getLogger("git_mirror.flush")
RECOVERY_BACKOFF_SECONDS = 0.5
RECOVERY_HINT = "git-mirror sync --confirm --wait"


@dataclass
class LanePlan:
    """One lane as flush sees it: the mirror's commit, the stage's, and upstream's now."""

    name: str
    ref: str
    stage_ref: str
    mirror: str | None
    stage: str | None
    upstream: str | None = None  # as seen by ls-remote, when flush had to look
    # absent | in-sync | push | up-to-date | behind | diverged
    action: str = "absent"
    lease: str | None = None  # the upstream value the push expects (None: must not exist)

    def to_json(self) -> dict[str, Any]:
        """The lane's entry in a repository's ``lanes`` of ``flush --json``."""
        return {"name": self.name, "ref": self.ref, "mirrorCommit": self.mirror,
                "githubCommit": self.stage, "upstreamCommit": self.upstream,
                "action": self.action, "diverged": self.action == "diverged"}

    def push(self) -> RefUpdate:
        """The lane's push: the lane ref, from what upstream is expected to hold (the lease)
        to the mirror's commit (``pushed``, ``wouldPush``)."""
        return RefUpdate(self.ref, self.mirror, self.lease)


@dataclass
class RepoFlush:
    """One repository's flush: its lanes, what was pushed or refused, and how it ended."""

    id: str
    dry_run: bool
    ok: bool = True
    lanes: list[LanePlan] = field(default_factory=list)
    pushed: list[RefUpdate] = field(default_factory=list)
    would_push: list[RefUpdate] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    stage_updates: list[RefUpdate] = field(default_factory=list)
    partial_success: str | None = None
    recovered: bool = False
    recovery: dict[str, Any] | None = None
    duration_ms: int = 0
    error: GitMirrorError | None = None
    warnings: list[str] = field(default_factory=list)
    cleared_locks: list[str] = field(default_factory=list)  # stale git lock files removed

    def add_warning(self, text: str) -> None:
        """Say ``text`` among the result's warnings."""
        self.warnings.append(text)

    def to_json(self) -> dict[str, Any]:
        """The repository's entry in ``flush --json`` (and in a flush Job's result)."""
        return {
            "id": self.id, "ok": self.ok, "dryRun": self.dry_run, "warnings": self.warnings,
            "recovered": self.cleared_locks,
            "lanes": [lane.to_json() for lane in self.lanes],
            "pushed": [p.to_json() for p in self.pushed],
            "wouldPush": [p.to_json() for p in self.would_push], "rejected": self.rejected,
            "stageUpdated": [u.to_json() for u in self.stage_updates],
            "partialSuccess": self.partial_success,
            "partialSuccessRecovered": self.recovered,
            "postPushRecovery": self.recovery,
            "durationMs": self.duration_ms,
            "error": self.error.to_json() if self.error else None,
        }


@dataclass
class FlushResult(PerRepository):
    """A flush of the selected repositories, and the flags read back after it."""

    node: str
    dry_run: bool
    lane: str | None
    repositories: list[RepoFlush]
    pending_flush: bool = False
    github_in_sync: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``flush --json`` object (CONTRACT section 4)."""
        partial = [r for r in self.repositories if r.partial_success]
        recovery: dict[str, Any] | None = None
        if partial:
            records = [{"repository": r.id, **(r.recovery or {})} for r in partial]
            recovery = {"action": "sync", "ok": all(r.recovered for r in partial)}
            if len(records) == 1:
                recovery.update({k: v for k, v in records[0].items() if k not in recovery})
            recovery["repositories"] = records
        out: dict[str, Any] = {
            "ok": self.ok, "node": self.node, "dryRun": self.dry_run, "lane": self.lane,
            "pushed": [{"repository": r.id, **p.to_json()}
                       for r in self.repositories for p in r.pushed],
            "wouldPush": [{"repository": r.id, **p.to_json()}
                          for r in self.repositories for p in r.would_push],
            "partialSuccess": PARTIAL if partial else None,
            "partialSuccessRecovered": bool(partial) and all(r.recovered for r in partial),
            "postPushRecovery": recovery,
            "pendingFlush": self.pending_flush, "githubInSync": self.github_in_sync,
            "recovered": [{"repository": r.id, "file": f}
                          for r in self.repositories for f in r.cleared_locks],
            "diverged": any(lane.action == "diverged"
                            for r in self.repositories for lane in r.lanes),
            "repositories": [r.to_json() for r in self.repositories],
        }
        if self.error:
            out["error"] = self.error.to_json()
        return out


def plan_lanes(lanes: Sequence[LaneSpec], local: Mapping[str, tuple[str, tuple[str, ...]]],
               git_dir: Path) -> list[LanePlan]:
    """Steps 1-2: which lanes hold commits their stage lacks, and may be fast-forwarded.

    ``local``: refname -> (commit, its parents), from :func:`refs_with_parents`.
    """
    def oid(ref: str) -> str | None:
        return local[ref][0] if ref in local else None

    plans = [LanePlan(lane.name, lane.ref, lane.stage_ref, oid(lane.ref), oid(lane.stage_ref))
             for lane in lanes]
    check: list[LanePlan] = []
    for p in plans:
        if p.mirror is None:
            p.action = "absent"
        elif p.mirror == p.stage:
            p.action = "in-sync"
        elif p.stage is None:
            p.action, p.lease = "push", None  # a new lane upstream: the lease says "absent"
        elif p.stage in local[p.ref][1]:
            p.action, p.lease = "push", p.stage  # one commit on top of the stage
        else:
            check.append(p)
    if check:
        forward = ancestors(git_dir, [(p.stage or "", p.mirror or "") for p in check])
        for p in check:
            ok = forward[(p.stage or "", p.mirror or "")]
            p.action, p.lease = ("push", p.stage) if ok else ("diverged", None)
    return plans


def replan_against_upstream(plans: Sequence[LanePlan], upstream: Mapping[str, str],
                            git_dir: Path) -> None:
    """The lease found upstream moved: decide again against upstream's own commits.

    Every upstream commit named must be in the mirror (the caller fetched them).
    """
    check: list[LanePlan] = []
    for p in plans:
        p.upstream = upstream.get(p.ref)
        if p.upstream == p.mirror:
            p.action = "up-to-date"
        elif p.upstream is None:
            p.action, p.lease = "push", None
        else:
            check.append(p)
    if not check:
        return
    forward = ancestors(git_dir, [(p.upstream or "", p.mirror or "") for p in check])
    back = [(p.mirror or "", p.upstream or "") for p in check
            if not forward[(p.upstream or "", p.mirror or "")]]
    backward = ancestors(git_dir, back) if back else {}
    for p in check:
        if forward[(p.upstream or "", p.mirror or "")]:
            p.action, p.lease = "push", p.upstream
        elif backward.get((p.mirror or "", p.upstream or "")):
            p.action = "behind"  # upstream already holds every lane commit: sync's business
        else:
            p.action = "diverged"


def _diverged_error(rid: str, lanes: Sequence[LanePlan]) -> DivergedError:
    parts = [f"lane {p.name} ({p.ref}): mirror at {p.mirror}, upstream at "
             + (f"{p.upstream}" if p.upstream else f"{p.stage} (as last synced)") for p in lanes]
    return DivergedError(
        f"{rid}: " + "; ".join(parts) + ": both moved, neither contains the other; "
        "nothing was pushed and nothing changed in the mirror",
        hint="merge the upstream commit into the lane in a clone of the mirror and push the lane "
             f"(fast-forward), then: git-mirror flush --repo {rid} --confirm",
        details={"lanes": [p.to_json() for p in lanes]},
    )


def _stage_transaction(layout: RepoLayout, plans: Sequence[LanePlan],
                       observed: Mapping[str, str]) -> list[RefUpdate]:
    """Move the stage refs of ``plans`` to ``observed`` in one transaction."""
    txn = RefTransaction(layout.git_dir, message="git-mirror flush recheck")
    for p in plans:
        new = observed.get(p.ref)
        if new == p.stage:
            continue
        if new is None:
            assert p.stage is not None
            txn.delete(p.stage_ref, p.stage)
        elif p.stage is None:
            txn.create(p.stage_ref, new)
        else:
            txn.update(p.stage_ref, new, p.stage)
    txn.commit()
    return txn.updates


def recheck(layout: RepoLayout, remote: RemoteEnv, plans: Sequence[LanePlan]) -> list[RefUpdate]:
    """The post-push recheck: upstream's lane refs, as they are now, into the stage."""
    observed = ls_remote(remote, [p.ref for p in plans], layout.git_dir)
    _fetch_unknown(layout, remote, plans, observed)
    return _stage_transaction(layout, plans, observed)


def _fetch_unknown(layout: RepoLayout, remote: RemoteEnv, plans: Sequence[LanePlan],
                   observed: Mapping[str, str]) -> None:
    """Fetch the objects of upstream commits the mirror lacks (no ref is written)."""
    seen = {observed[p.ref] for p in plans if p.ref in observed}
    # Normally upstream holds exactly the lane or stage commit: nothing to ask or fetch.
    unknown = seen - {p.mirror for p in plans} - {p.stage for p in plans}
    missing = unknown - has_commits(layout.git_dir, unknown) if unknown else set()
    if missing:
        fetch_objects(layout.git_dir, remote, sorted(missing))


def _recover(cfg: LoadedConfig, rid: str, remote: RemoteEnv, res: RepoFlush,
             cause: GitMirrorError, backoff: float) -> None:
    """One controlled sync after a failed recheck (the lock is held by the caller)."""
    from git_mirror.mirror.sync import RepoSync, sync_repo_locked

    layout = RepoLayout.of(cfg, rid)
    res.partial_success = PARTIAL
    time.sleep(backoff)
    rec = RepoSync(rid, dry_run=False)
    started = time.monotonic()
    try:
        sync_repo_locked(cfg, rid, remote, confirm=True, result=rec)
    except GitMirrorError as exc:
        rec.ok, rec.error = False, exc
    rec.duration_ms = int((time.monotonic() - started) * 1000)
    # The recovery is a sync run in its own right: status shows it as lastSync.
    note = record_safely(layout.state_dir, "sync", {
        "at": journal.now_iso(), "ok": rec.ok, "durationMs": rec.duration_ms,
        "updated": len(rec.updated), "snapshots": len(rec.snapshots), "trigger": "flush-recovery",
        "error": rec.error.to_json() if rec.error else None,
    })
    if note:
        res.warnings.append(note)
    res.recovery = {"action": "sync", "ok": rec.ok, "attempts": 1,
                    "backoffMs": int(backoff * 1000), "durationMs": rec.duration_ms,
                    "cause": cause.to_json(),
                    "updated": [u.to_json() for u in rec.updated],
                    "error": rec.error.to_json() if rec.error else None}
    if rec.ok:
        res.recovered = True
        return
    assert rec.error is not None
    res.ok = False
    # A full disk is said as such (its code), with the way out; the push is still reported.
    full = Code.DISK_FULL in (cause.code, rec.error.code)
    res.error = GitMirrorError(
        f"{rid}: upstream accepted the push, but the post-push fetch failed ({cause.message}) "
        f"and the recovery sync failed too ({rec.error.message}); the pushed commits are "
        "upstream and the lane is kept, only the stage refs are stale",
        code=Code.DISK_FULL if full else Code.PARTIAL_SUCCESS,
        hint=(f"free space on the cache's file system, then: {RECOVERY_HINT}" if full
              else RECOVERY_HINT),
        details={"partialSuccess": PARTIAL, "cause": cause.to_json(),
                 "recovery": rec.error.to_json()},
    )


def _push(layout: RepoLayout, remote: RemoteEnv,
          plans: Sequence[LanePlan]) -> tuple[list[LanePlan], list[dict[str, Any]]]:
    """One atomic push of ``plans``; returns (refs upstream took, refusals)."""
    _, refs = push(layout.git_dir, remote, [f"{p.mirror}:{p.ref}" for p in plans],
                   leases={p.ref: p.lease for p in plans})
    by_dst = {r.dst: r for r in refs}
    refused = [{"ref": p.ref, "from": p.lease, "to": p.mirror,
                "reason": (by_dst[p.ref].reason or by_dst[p.ref].summary) if p.ref in by_dst
                else "no status reported"}
               for p in plans if p.ref not in by_dst or not by_dst[p.ref].ok]
    if refused:
        return [], refused  # --atomic: one refusal means upstream took none of them
    for p in plans:
        if by_dst[p.ref].flag == "=":
            p.action = "up-to-date"
    return [p for p in plans if p.action == "push"], []


def flush_repo_locked(cfg: LoadedConfig, rid: str, remote: RemoteEnv, *, lane: str | None,
                      confirm: bool, result: RepoFlush,
                      backoff: float = RECOVERY_BACKOFF_SECONDS) -> None:
    """Plan (and with ``confirm`` carry out) one repository's flush. The caller holds the lock."""
    layout = RepoLayout.of(cfg, rid)
    lanes = [spec for spec in layout.lanes if lane is None or spec.name == lane]
    if not lanes:
        return
    local = refs_with_parents(layout.git_dir,
                              [spec.ref for spec in lanes] + [spec.stage_ref for spec in lanes])
    plans = plan_lanes(lanes, local, layout.git_dir)
    result.lanes = plans
    diverged = [p for p in plans if p.action == "diverged"]
    candidates = [p for p in plans if p.action == "push"]
    if not confirm:
        # A dry run exits 0 (CONTRACT section 3); a diverged lane shows as "diverged": true
        # and in the warning, and `--confirm` would stop on it.
        result.would_push = [p.push() for p in candidates]
        if diverged:
            result.warnings.append(_diverged_error(rid, diverged).message)
        return
    if diverged:
        raise _diverged_error(rid, diverged)
    if not candidates:
        return
    pushed, refused = _push(layout, remote, candidates)
    if refused and all(r["reason"] in ("stale info", "atomic push failed") for r in refused):
        # Upstream moved since the last sync: look at it, once, and decide again.
        upstream = ls_remote(remote, [p.ref for p in candidates], layout.git_dir)
        _fetch_unknown(layout, remote, candidates, upstream)
        replan_against_upstream(candidates, upstream, layout.git_dir)
        diverged = [p for p in candidates if p.action == "diverged"]
        if diverged:
            raise _diverged_error(rid, diverged)
        again = [p for p in candidates if p.action == "push"]
        pushed, refused = _push(layout, remote, again) if again else ([], [])
    if refused:
        result.rejected = refused
        why = "; ".join(f"{r['ref']}: {r['reason']}" for r in refused)
        raise GitMirrorError(
            f"{rid}: upstream refused the push, nothing was pushed: {why}",
            code=Code.PUSH_REJECTED,
            hint=f"git-mirror sync --repo {rid} --confirm --wait && "
                 f"git-mirror flush --repo {rid} --confirm",
            details={"rejected": refused})
    result.pushed = [p.push() for p in pushed]
    try:
        result.stage_updates = recheck(layout, remote, candidates)
    except GitMirrorError as exc:
        _recover(cfg, rid, remote, result, exc, backoff)


class FlushOperation(RepoOperation[RepoFlush]):
    """Flush's step in the per-repository runner (:mod:`git_mirror.mirror.runner`)."""

    command = "flush"

    def __init__(self, cfg: LoadedConfig, *, confirm: bool, wait: bool, node: str,
                 lane: str | None, backoff: float) -> None:
        super().__init__(cfg, confirm=confirm, wait=wait)
        self.node = node
        self.lane = lane
        self.backoff = backoff

    def new_result(self, rid: str) -> RepoFlush:
        """An empty flush result (a dry run unless confirmed)."""
        return RepoFlush(rid, dry_run=not self.confirm)

    def step(self, layout: RepoLayout, result: RepoFlush) -> None:
        """Confirmed: under the lock, sweep, check drift, flush. Dry run: the plan only."""
        from git_mirror.mirror.sync import converge_declared
        from git_mirror.transport import remote_for

        rid = layout.id
        if not (layout.git_dir / "HEAD").exists():
            raise NotAppliedError(f"mirror {rid} does not exist yet: nothing to flush",
                                  hint="git-mirror apply --confirm && git-mirror sync --confirm")
        remote = remote_for(self.cfg, rid, self.node)
        if not self.confirm:
            flush_repo_locked(self.cfg, rid, remote, lane=self.lane, confirm=False, result=result)
            return
        with self.locked(layout):
            sweep_stale_locks(layout, result)
            # Nothing goes upstream from a mirror that reaches it otherwise than the YAML
            # declares (R13): the same check as sync's.
            converge_declared(self.cfg, rid, self.node)
            flush_repo_locked(self.cfg, rid, remote, lane=self.lane, confirm=True,
                              result=result, backoff=self.backoff)

    def journal_entry(self, result: RepoFlush) -> dict[str, Any]:
        """The lane flushed, what was pushed, and how a partial success ended."""
        return {"lane": self.lane, "pushed": [p.to_json() for p in result.pushed],
                "partialSuccess": result.partial_success,
                "partialSuccessRecovered": result.recovered}

    def audit(self, layout: RepoLayout, result: RepoFlush) -> None:
        """The refs a confirmed flush moved upstream and here."""
        audit.record_flush(layout.state_dir, layout.id, result)

    def log(self, result: RepoFlush) -> None:
        """One info line: how it went and how many refs were pushed."""
        self.log_outcome(log, result, f"{len(result.pushed)} ref(s) pushed",
                         partialSuccess=result.partial_success)

    def summary(self, result: RepoFlush) -> str:
        """The progress line (:func:`git_mirror.mirror.report.flush_line`)."""
        return flush_line(result)


def flush(cfg: LoadedConfig, *, repo: str | None = None, lane: str | None = None,
          confirm: bool = False, wait: bool = False, node: str = "local",
          backoff: float = RECOVERY_BACKOFF_SECONDS, jobs: int | None = None) -> FlushResult:
    """Flush every declared repository (or one; or one lane), dry run unless ``confirm``.

    Up to ``jobs`` repositories (default: the config's ``jobs``) at once; results in
    declaration order.
    """
    from git_mirror.mirror.parallel import jobs_for

    ids = selected_repositories(cfg, repo, lane)
    workers = jobs_for(cfg, jobs)
    op = FlushOperation(cfg, confirm=confirm, wait=wait, node=node, lane=lane, backoff=backoff)
    results = run_repositories(op, ids, workers)
    out = FlushResult(node=node, dry_run=not confirm, lane=lane, repositories=results)
    read_back_flags(cfg, out, ids, node, workers)
    return out


def read_back_flags(cfg: LoadedConfig, out: FlushResult, ids: Sequence[str], node: str,
                    workers: int) -> None:
    """The resulting pendingFlush and githubInSync, read back from the refs (a client may
    have pushed meanwhile); pessimistic, with a warning, when they cannot be read."""
    from git_mirror.mirror.parallel import each
    from git_mirror.mirror.status import repo_status

    try:
        states = each(ids, lambda rid: repo_status(cfg, rid, node, check_snapshots=False),
                      workers)
    except (GitMirrorError, OSError) as exc:
        # What was pushed is reported whatever happens here; the flags stay pessimistic.
        out.pending_flush, out.github_in_sync = True, False
        if out.repositories:
            out.repositories[-1].warnings.append(
                "the resulting pendingFlush/githubInSync could not be read back: "
                f"{getattr(exc, 'message', None) or exc}")
        return
    out.pending_flush = any(s.pending_flush for s in states)
    out.github_in_sync = bool(states) and all(s.github_in_sync for s in states)
