"""Following a branch (R7, R10, R11): flush, sync, snapshot, trigger, flush, recorded.

``trigger`` with ``confirm``, under the follower's lock:

1. flush the follower's lane (commits a previous run left in the mirror go upstream first);
2. one controlled sync of the repository: it creates the snapshot ref of the branch tip;
3. a run record (``running``) naming the snapshot ref and its commit: the run's only source;
4. the trigger runs (in this process with ``wait``, else in a detached worker process that
   inherits the lock), then, when it succeeded, the lane is flushed again;
5. the record gets the outcome: ``succeeded`` or ``failed``, exit code, the lane commit the run
   published (``publishedLaneCommit``: closeout's ``deployedContainsRun`` looks for it in the
   deployed revision), lane tip, flush.

A failed run flushes nothing after it: what its command pushed into the mirror stays there
(never lost) and shows as ``pendingFlush`` until a person flushes or the next run does.
Without ``confirm`` nothing changes and nothing runs: the plan is read from the cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code, GitMirrorError, UsageError
from git_mirror.follower import state as st
from git_mirror.follower.results import FlushSummary, SyncSummary, TriggerResult
from git_mirror.follower.triggers import (
    EXEC_TIMEOUT_SECONDS,
    Outcome,
    RunSpec,
    Trigger,
    trigger_for,
)
from git_mirror.git.refs import list_refs
from git_mirror.mirror.layout import HEADS, RepoLayout

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Follower

# Failures whose own hint (fix the YAML, the checkout...) comes before any retry.
FIX_FIRST_CODES = (Code.EXEC_FAILED, Code.EXEC_NOT_IN_SNAPSHOT, Code.CHECKOUT_FAILED,
                   Code.CONFIG_CHANGED)
STEPS = ["flush lane", "sync", "snapshot of the branch tip", "trigger", "flush lane"]
# A run record's ``phase`` while it is ``running``: its command runs, then the flush after it.
PHASE_TRIGGER, PHASE_FLUSH, PHASE_DONE = "trigger", "flush after", "done"
# The detached worker: the package root first on sys.path, so that it runs this very code.
_LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
           "from git_mirror.follower.worker import main; sys.exit(main(sys.argv[1:]))")


def get_follower(cfg: LoadedConfig, fid: str) -> Follower:
    """The declared follower ``fid``; an unknown id is a usage error (exit 2)."""
    followers = cfg.model.followers
    if fid not in followers:
        known = ", ".join(sorted(followers)) or "none"
        raise UsageError(f"follower {fid!r} is not declared under followers: in {cfg.path} "
                         f"(declared: {known})", hint="git-mirror follower list")
    return followers[fid]


def mirror_url(layout: RepoLayout) -> str:
    """Where a local node's pipelines push lane commits: the mirror, through its hook."""
    return f"file://{layout.git_dir}"


def lane_ref(cfg: LoadedConfig, follower: Follower) -> str:
    """The full ref of the follower's lane (``refs/heads/...``), as the mirror holds it."""
    lane = RepoLayout.of(cfg, follower.repository).lane(follower.lane)
    assert lane is not None  # the config checks make every follower's lane a declared one
    return lane.ref


def describe_trigger(follower: Follower) -> dict[str, Any]:
    """The follower's declared trigger as plans and status show it (no secrets)."""
    from git_mirror.config.models import ExecTrigger

    if isinstance(follower.trigger, ExecTrigger):
        return {"kind": "exec", "exec": list(follower.trigger.exec)}
    t = follower.trigger.tekton
    return {"kind": "tekton", "tekton": {
        "pipeline": t.pipeline, "namespace": t.namespace,
        "serviceAccountName": t.service_account_name, "params": dict(t.params),
        "workspaces": [ws.binding(name) for name, ws in sorted(t.workspaces.items())],
        "timeout": t.timeout}}


def _tip(layout: RepoLayout, branch: str) -> str | None:
    if not (layout.git_dir / "HEAD").exists():
        return None
    return list_refs(layout.git_dir, [HEADS + branch]).get(HEADS + branch)


def _snapshot_of(layout: RepoLayout, branch: str, tip: str | None) -> str | None:
    spec = layout.source_for(branch)
    if tip is None or spec is None:
        return None
    return layout.snapshot_ref(spec.group, branch, tip)


def trigger(cfg: LoadedConfig, fid: str, *, confirm: bool = False, wait: bool = False,
            node: str = "local", executor: str = "local") -> TriggerResult:
    """``follower trigger``: dry run unless ``confirm``; in the background unless ``wait``."""
    follower = get_follower(cfg, fid)
    trig = trigger_for(cfg, fid, node=node, executor=executor)
    layout = RepoLayout.of(cfg, follower.repository)
    res = TriggerResult(node=node, follower=fid, repository=follower.repository,
                        branch=follower.branch, lane=follower.lane,
                        lane_ref=lane_ref(cfg, follower), trigger=trig.describe(),
                        dry_run=not confirm, push_url=mirror_url(layout))
    if not confirm:
        # The plan, from the cache: the confirmed trigger syncs first and may find a newer tip.
        res.commit = _tip(layout, follower.branch)
        res.snapshot_ref = _snapshot_of(layout, follower.branch, res.commit)
        res.details = {"steps": STEPS, "wait": wait,
                     "note": "dry run: nothing synced, run or flushed; the snapshot shown is the "
                             "cached tip's, a confirmed trigger syncs first"}
        _lane_flags(cfg, res)
        return res
    state = st.FollowerState.of(cfg, fid)
    run: st.RunRecord | None = None
    try:
        with st.follower_lock(state, wait=wait) as lock_fd:
            record = _prepare(cfg, fid, follower, trig, layout, state, res)
            if wait:
                record = complete_run(cfg, state, record, trig)
            else:
                record = _spawn_worker(cfg, state, record, lock_fd)
                res.details["hint"] = f"git-mirror follower status --follower {fid}"
            run = record
    except GitMirrorError as exc:
        res.error = exc
    if run is not None:
        res.run = run.to_json()
        if res.error is None and run.finished:
            res.error = run_error(run)
    _lane_flags(cfg, res)
    return res


def _prepare(cfg: LoadedConfig, fid: str, follower: Follower, trig: Trigger,
             layout: RepoLayout, state: st.FollowerState, res: TriggerResult) -> st.RunRecord:
    """Steps 1-3 (under the follower lock): flush, sync, snapshot, the run record."""
    from git_mirror.mirror.flush import flush
    from git_mirror.mirror.sync import sync

    rid = follower.repository
    if (layout.git_dir / "HEAD").exists():
        before = flush(cfg, repo=rid, lane=follower.lane, confirm=True, wait=True, node=res.node)
        res.flush_before = FlushSummary.of(before)
        if not before.ok:
            assert before.error is not None
            raise before.error
    synced = sync(cfg, repo=rid, confirm=True, wait=True, node=res.node)
    res.sync = SyncSummary.of(synced)
    if not synced.ok:
        assert synced.error is not None
        raise synced.error
    tip = _tip(layout, follower.branch)
    if tip is None:
        raise GitMirrorError(f"branch {follower.branch} of {rid} does not exist upstream: "
                             "there is nothing to build", code=Code.NO_BRANCH,
                             hint=f"git-mirror status --repo {rid}")
    snapshot = _snapshot_of(layout, follower.branch, tip)
    if snapshot is None or snapshot not in list_refs(layout.git_dir, [snapshot]):
        raise GitMirrorError(f"the sync made no snapshot ref for {follower.branch} at {tip}",
                             code=Code.NO_SNAPSHOT,
                             hint=f"git-mirror sync --repo {rid} --confirm --wait")
    res.commit, res.snapshot_ref = tip, snapshot
    state.prune()  # normal following needs no manual cleanup
    name = state.new_run_name(tip)
    record = st.with_owner(st.RunRecord(
        name=name, follower=fid, repository=rid, branch=follower.branch, lane=follower.lane,
        lane_ref=res.lane_ref, node=res.node, trigger=trig.describe(), status=st.RUNNING,
        snapshot_ref=snapshot, commit=tip, push_url=res.push_url,
        log=str(state.log_path(name)), work_dir=str(state.work_dir(name)),
        created_at=st.now_iso(),
        lane_tip_before=list_refs(layout.git_dir, [res.lane_ref]).get(res.lane_ref),
        flush_before=res.flush_before.to_json() if res.flush_before else None,
        config_sha256=cfg.sha256))
    state.save(record)
    return record


def spec_of(record: st.RunRecord, state: st.FollowerState) -> RunSpec:
    """What the trigger needs to run the run of ``record``: its snapshot, lane and paths
    (a record that lacks one of them is no run to start: KeyError, as it always was)."""
    data, name = record.to_json(), record.name
    return RunSpec(follower=data["follower"], repository=data["repository"],
                   branch=data["branch"], lane=data["lane"], lane_ref=data["laneRef"],
                   snapshot_ref=data["snapshotRef"], commit=data["commit"],
                   push_url=data["pushUrl"], run=name, node=data["node"],
                   work_dir=state.work_dir(name), log_path=state.log_path(name))


def complete_run(cfg: LoadedConfig, state: st.FollowerState, record: st.RunRecord,
                 trig: Trigger, *, timeout: float = EXEC_TIMEOUT_SECONDS) -> st.RunRecord:
    """Steps 4-5: run the trigger, flush after success, write the outcome. Returns the record."""
    from git_mirror.mirror.flush import flush

    spec = spec_of(record, state)
    started = time.monotonic()
    record = st.with_owner(record).with_(started_at=st.now_iso())
    state.save(record)
    outcome = Outcome("failed", None,
                      GitMirrorError("the run was interrupted", code=Code.INTERRUPTED))
    completed = False
    record = record.with_(phase=PHASE_TRIGGER)
    try:
        try:
            handle = trig.start(spec)
            record = record.with_(trigger={**(record.trigger or {}), **{
                k: v for k, v in handle.details.items() if k != "pid"}})
            state.save(record)
            outcome = trig.wait(handle, timeout)
        except GitMirrorError as exc:
            outcome = Outcome("failed", None, exc)
        # The run stays "running" until its flush after is done: a reader never sees a
        # finished run whose lane commit is still on its way upstream. ``phase`` says where.
        record = record.with_(exit_code=outcome.exit_code, trigger_status=outcome.status,
                              error=outcome.error.to_json() if outcome.error else None)
        record = record.with_(published_lane_commit=published_lane_commit(cfg, spec, record))
        if outcome.status == st.SUCCEEDED:
            record = record.with_(phase=PHASE_FLUSH)
            state.save(record)
            after = flush(cfg, repo=spec.repository, lane=spec.lane, confirm=True, wait=True,
                          node=spec.node)
            record = record.with_(flush_after=FlushSummary.of(after).to_json())
            # The checkout served its one run; a failed run keeps it for inspection.
            _remove_tree(spec.work_dir)
        completed = True
    finally:
        record = _finish_record(cfg, state, record, spec, outcome, completed=completed,
                                duration_ms=int((time.monotonic() - started) * 1000))
    return record


def _finish_record(cfg: LoadedConfig, state: st.FollowerState, record: st.RunRecord,
                   spec: RunSpec, outcome: Outcome, *, completed: bool,
                   duration_ms: int) -> st.RunRecord:
    """The run's outcome, written whatever stopped it: the lane's tip after it, its status
    (never left ``running``), ``phase`` done, when it finished and how long it took."""
    layout = RepoLayout.of(cfg, spec.repository)
    record = record.with_(
        lane_tip_after=list_refs(layout.git_dir, [spec.lane_ref]).get(spec.lane_ref))
    if completed:
        record = record.with_(status=outcome.status)
    elif record.phase == PHASE_FLUSH:
        # the command succeeded; the flush after it was cut short: the lane commit
        # waits in the mirror (pendingFlush) for the next flush
        record = record.with_(status=outcome.status, flush_after={
            "ok": False, "error": GitMirrorError(
                "the flush after the run was interrupted", code=Code.INTERRUPTED,
                hint=f"git-mirror flush --repo {spec.repository} --confirm --wait").to_json()})
    else:  # an exception got here: never leave "running"
        record = record.with_(status=st.FAILED,
                              error=outcome.error.to_json() if outcome.error else None)
    record = record.with_(phase=PHASE_DONE, finished_at=st.now_iso(), duration_ms=duration_ms)
    state.save(record)
    return record


def published_lane_commit(cfg: LoadedConfig, spec: RunSpec,
                          record: st.RunRecord) -> str | None:
    """The lane commit the run published: the lane's tip in the mirror right after the run,
    when it moved during the run (one run of the follower at a time); None when it did not."""
    layout = RepoLayout.of(cfg, spec.repository)
    now = list_refs(layout.git_dir, [spec.lane_ref]).get(spec.lane_ref)
    return now if now and now != record.lane_tip_before else None


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def run_error(record: st.RunRecord) -> GitMirrorError | None:
    """The error a finished run means for ``trigger``: its own, or its flush after."""
    fid, name = record.follower, record.name
    if record.status != st.SUCCEEDED:
        err = record.error or {}
        retry = (f"git-mirror cleanup-runs --pipeline-run {name} --confirm && "
                 f"git-mirror follower trigger --follower {fid} --confirm --wait")
        # A run that could not even start says what to fix first; retrying would fail again.
        own = err.get("hint") if err.get("code") in FIX_FIRST_CODES else None
        return GitMirrorError(
            f"run {name} failed: {err.get('message') or 'no reason recorded'}"
            + (f" (log: {record.log})" if record.log else ""),
            code=Code.parse(err.get("code"), Code.RUN_FAILED),
            hint=str(own or retry),
            details={"run": name, "exitCode": record.exit_code})
    after = record.flush_after or {}
    if after and not after.get("ok"):
        err = after.get("error") or {}
        return GitMirrorError(
            f"run {name} succeeded, but the flush after it failed: {err.get('message')}",
            code=Code.parse(err.get("code"), Code.FLUSH_FAILED),
            hint=err.get("hint") or f"git-mirror flush --repo {record.repository} "
                                    "--confirm --wait",
            details={"run": name})
    return None


def _spawn_worker(cfg: LoadedConfig, state: st.FollowerState, record: st.RunRecord,
                  lock_fd: int) -> st.RunRecord:
    """Start steps 4-5 in a detached process that inherits the follower lock."""
    import git_mirror

    root = str(Path(git_mirror.__file__).resolve().parent.parent)
    argv = [sys.executable, "-I", "-c", _LAUNCH, root, str(cfg.path.resolve()),
            str(record.follower), record.name]
    name = record.name
    log_path = state.log_path(name)
    with open(log_path, "ab") as log:
        # The worker is git-mirror itself (it may need declared env secrets to flush); the
        # trigger's command gets the allow-listed environment only.
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log,
                                cwd=state.root, env=dict(os.environ), pass_fds=(lock_fd,),
                                start_new_session=True)
    record = record.with_(pid=proc.pid, pid_start=st.process_start(proc.pid), detached=True)
    state.save(record)
    assert proc.stdin is not None
    try:
        # The worker waits for this word: by then the record names it as the owner.
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    return record


def _lane_flags(cfg: LoadedConfig, res: TriggerResult) -> None:
    from git_mirror.mirror.status import repo_status

    layout = RepoLayout.of(cfg, res.repository)
    if not (layout.git_dir / "HEAD").exists():
        return
    status = repo_status(cfg, res.repository, res.node, check_snapshots=False)
    lane = status.lane(res.lane)
    res.lane_tip = lane.mirror_commit if lane else None
    res.pending_flush = status.pending_flush
    res.github_in_sync = status.github_in_sync
    res.details["laneState"] = lane.to_json() if lane else None
