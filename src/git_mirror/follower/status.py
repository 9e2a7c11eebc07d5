"""``follower list`` and ``follower status``: declared followers, their runs and lanes;
``follower status --pipeline-run NAME``: one run as observed now (:func:`run_status`).

Read-only, from the cache and the run records: no network, nothing changes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code
from git_mirror.follower import state as st
from git_mirror.follower.follower import describe_trigger, get_follower, lane_ref, run_error
from git_mirror.follower.results import (
    BranchView,
    FlushState,
    FollowerItem,
    FollowerList,
    FollowerStatus,
    RunStatus,
)
from git_mirror.follower.triggers import EXEC_TIMEOUT_SECONDS, trigger_kind

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def follower_list(cfg: LoadedConfig, *, node: str = "local",
                  only: str | None = None) -> FollowerList:
    """Every declared follower (or only one) with its last run."""
    if only is not None:
        get_follower(cfg, only)
    items = []
    for fid, f in sorted(cfg.model.followers.items()):
        if only is not None and fid != only:
            continue
        last = st.FollowerState.of(cfg, fid).last_run()
        items.append(FollowerItem(fid, f.repository, f.branch, f.lane, trigger_kind(f),
                                  last.summary() if last else None))
    return FollowerList(node, items)


def wait_for_last_run(state: st.FollowerState, timeout: float = EXEC_TIMEOUT_SECONDS + 600,
                      interval: float = 0.5) -> st.RunRecord | None:
    """Poll the follower's last run until it is no longer ``running`` (at most ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = state.last_run()
    while last is not None and not last.finished and time.monotonic() < deadline:
        time.sleep(interval)
        last = state.last_run()
    return last


def follower_status(cfg: LoadedConfig, fid: str, *, node: str = "local",
                    wait: bool = False) -> FollowerStatus:
    """A follower's last run, its branch tip and snapshot, and its lane, from the cache.

    With ``wait``, first wait (bounded) until the last run has finished.
    """
    from git_mirror.mirror.status import repo_status

    follower = get_follower(cfg, fid)
    state = st.FollowerState.of(cfg, fid)
    last = wait_for_last_run(state) if wait else state.last_run()
    rstatus = repo_status(cfg, follower.repository, node)
    view = BranchView.of_status(rstatus, follower.branch, follower.lane)
    running = [r.name for r in state.runs() if not r.finished]
    # A finished run that failed, or succeeded but whose flush after it failed: what
    # `trigger --wait` would have said (the delivery is not done).
    failure = run_error(last) if last and last.finished else None
    return FollowerStatus(
        node=node, follower=fid, repository=follower.repository, branch=follower.branch,
        trigger=describe_trigger(follower), view=view,
        lane=view.lane or {"name": follower.lane, "ref": lane_ref(cfg, follower)},
        last_run=last.to_json() if last else None, running=running, runs=len(state.run_names()),
        mirror=rstatus.mirror_json(), last_run_error=failure.to_json() if failure else None)


def flush_state(git_dir: Path, published: str | None, lane: dict[str, Any] | None, *,
                flush_after: dict[str, Any] | None = None,
                pending_flush: bool | None = None) -> FlushState:
    """Where a run's published lane commit is now: ``flushed`` (upstream's lane, as last
    observed, is it or descends from it), ``pending`` (only the mirror has it), ``superseded``
    (neither lane contains it any more), or ``not-published``."""
    from git_mirror.follower.proof import contains

    upstream = (lane or {}).get("githubCommit")
    mirror = (lane or {}).get("mirrorCommit")

    def said(state: str, up: bool | None = None) -> FlushState:
        return FlushState(state, upstream, mirror, up, pending_flush, flush_after)

    if not published:
        return said("not-published")
    up = contains(git_dir, published, upstream) if upstream else False
    if up:
        return said("flushed", up)
    in_mirror = contains(git_dir, published, mirror) if mirror else False
    return said("pending" if in_mirror else "superseded", up)


def _wait_for_run(state: st.FollowerState, fid: str, name: str,
                  record: st.RunRecord) -> st.RunRecord:
    """Poll run ``name`` (bounded) until it is no longer ``running``; ``not-found`` when its
    record goes away meanwhile."""
    from git_mirror.errors import GitMirrorError

    deadline = time.monotonic() + EXEC_TIMEOUT_SECONDS + 600
    current: st.RunRecord | None = record
    while current is not None and not current.finished and time.monotonic() < deadline:
        time.sleep(0.5)
        current = state.load_record(name)
    if current is None:
        raise GitMirrorError(f"run {name} of follower {fid} was removed while it was watched",
                             code=Code.NOT_FOUND,
                             hint=f"git-mirror follower list --follower {fid}")
    return current


def run_status(cfg: LoadedConfig, fid: str, name: str, *, node: str = "local",
               wait: bool = False) -> RunStatus:
    """``follower status --pipeline-run NAME``: one run as observed now, from its record and
    the cache. The branch's current tip is labelled as such: it is not the run's source."""
    from git_mirror.errors import GitMirrorError
    from git_mirror.mirror.layout import RepoLayout
    from git_mirror.mirror.status import repo_status

    follower = get_follower(cfg, fid)
    st.check_run_name(name)
    state = st.FollowerState.of(cfg, fid)
    record = state.load_record(name)
    if record is None:
        raise GitMirrorError(f"no run {name!r} of follower {fid} on node {node}",
                             code=Code.NOT_FOUND, hint=f"git-mirror follower list --follower {fid}")
    if wait and not record.finished:
        record = _wait_for_run(state, fid, name, record)
    rstatus = repo_status(cfg, follower.repository, node, check_snapshots=False)
    view = BranchView.of_status(rstatus, follower.branch, follower.lane)
    layout = RepoLayout.of(cfg, follower.repository)
    flush = flush_state(layout.git_dir, record.published_lane_commit, view.lane,
                        flush_after=record.flush_after,
                        pending_flush=rstatus.pending_flush)
    failure = run_error(record) if record.finished else None
    data = record.to_json()
    keys = ("name", "status", "phase", "exitCode", "snapshotRef", "commit", "publishedLaneCommit",
            "laneTipBefore", "createdAt", "startedAt", "finishedAt", "log", "stale", "error")
    return RunStatus(
        node=node, follower=fid, repository=follower.repository, branch=follower.branch,
        lane=view.lane or {"name": follower.lane, "ref": lane_ref(cfg, follower)},
        pipeline_run={k: data.get(k) for k in keys}, flush=flush,
        current_branch_tip=view.source_field("mirrorCommit"),
        pending_flush=rstatus.pending_flush, github_in_sync=rstatus.github_in_sync,
        run_error=failure.to_json() if failure else None)
