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
from git_mirror.follower.triggers import EXEC_TIMEOUT_SECONDS, trigger_kind

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def follower_list(cfg: LoadedConfig, *, node: str = "local",
                  only: str | None = None) -> dict[str, Any]:
    """Every declared follower (or only one) with its last run."""
    if only is not None:
        get_follower(cfg, only)
    items = []
    for fid, f in sorted(cfg.model.followers.items()):
        if only is not None and fid != only:
            continue
        last = st.FollowerState.of(cfg, fid).last_run()
        items.append({"id": fid, "repository": f.repository, "branch": f.branch, "lane": f.lane,
                      "trigger": trigger_kind(f), "lastRun": st.summary(last)})
    return {"ok": True, "node": node, "followers": items}


def wait_for_last_run(state: st.FollowerState, timeout: float = EXEC_TIMEOUT_SECONDS + 600,
                      interval: float = 0.5) -> dict[str, Any] | None:
    """Poll the follower's last run until it is no longer ``running`` (at most ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = state.last_run()
    while last is not None and last.get("status") == st.RUNNING and time.monotonic() < deadline:
        time.sleep(interval)
        last = state.last_run()
    return last


def follower_status(cfg: LoadedConfig, fid: str, *, node: str = "local",
                    wait: bool = False) -> dict[str, Any]:
    """A follower's last run, its branch tip and snapshot, and its lane, from the cache.

    With ``wait``, first wait (bounded) until the last run has finished.
    """
    from git_mirror.mirror.status import repo_status

    follower = get_follower(cfg, fid)
    state = st.FollowerState.of(cfg, fid)
    last = wait_for_last_run(state) if wait else state.last_run()
    rstatus = repo_status(cfg, follower.repository, node).to_json()
    source = next((s for s in rstatus["sources"] if s["branch"] == follower.branch), None)
    lane = next((ln for ln in rstatus["lanes"] if ln["name"] == follower.lane), None)
    running = [r["name"] for r in state.runs() if r.get("status") == st.RUNNING]
    # A finished run that failed, or succeeded but whose flush after it failed: what
    # `trigger --wait` would have said (the delivery is not done).
    failure = run_error(last) if last and last.get("status") != st.RUNNING else None
    return {
        "ok": True, "node": node, "follower": fid, "repository": follower.repository,
        "branch": follower.branch, "trigger": describe_trigger(follower),
        "mirror": rstatus["mirror"],
        "branchTip": source["mirrorCommit"] if source else None,
        "githubCommit": source["githubCommit"] if source else None,
        "snapshotRef": source["snapshotRef"] if source else None,
        "lane": lane or {"name": follower.lane, "ref": lane_ref(cfg, follower)},
        "run": {"name": last.get("name"), "status": last.get("status")} if last else None,
        "lastRun": last, "running": running, "runs": len(state.run_names()),
        "lastRunError": failure.to_json() if failure else None,
        "pendingFlush": rstatus["pendingFlush"], "githubInSync": rstatus["githubInSync"],
        "refSources": rstatus["refSources"],
    }


def flush_state(git_dir: Path, published: str | None, lane: dict[str, Any] | None) -> dict[str, Any]:
    """Where a run's published lane commit is now: ``flushed`` (upstream's lane, as last
    observed, is it or descends from it), ``pending`` (only the mirror has it), ``superseded``
    (neither lane contains it any more), or ``not-published``."""
    from git_mirror.follower.proof import contains

    upstream = (lane or {}).get("githubCommit")
    mirror = (lane or {}).get("mirrorCommit")
    out: dict[str, Any] = {"upstreamLaneCommit": upstream, "mirrorLaneCommit": mirror,
                           "upstreamHasPublished": None}
    if not published:
        return {**out, "state": "not-published"}
    up = contains(git_dir, published, upstream) if upstream else False
    out["upstreamHasPublished"] = up
    if up:
        return {**out, "state": "flushed"}
    in_mirror = contains(git_dir, published, mirror) if mirror else False
    return {**out, "state": "pending" if in_mirror else "superseded"}


def run_status(cfg: LoadedConfig, fid: str, name: str, *, node: str = "local",
               wait: bool = False) -> dict[str, Any]:
    """``follower status --pipeline-run NAME``: one run as observed now, from its record and
    the cache. The branch's current tip is labelled as such: it is not the run's source."""
    from git_mirror.errors import GitMirrorError
    from git_mirror.mirror.layout import RepoLayout
    from git_mirror.mirror.status import repo_status

    follower = get_follower(cfg, fid)
    st.check_run_name(name)
    state = st.FollowerState.of(cfg, fid)
    record = state.load(name)
    if record is None:
        raise GitMirrorError(f"no run {name!r} of follower {fid} on node {node}",
                             code=Code.NOT_FOUND, hint=f"git-mirror follower list --follower {fid}")
    if wait and record.get("status") == st.RUNNING:
        deadline = time.monotonic() + EXEC_TIMEOUT_SECONDS + 600
        while record is not None and record.get("status") == st.RUNNING \
                and time.monotonic() < deadline:
            time.sleep(0.5)
            record = state.load(name)
        if record is None:
            raise GitMirrorError(f"run {name} of follower {fid} was removed while it was watched",
                                 code=Code.NOT_FOUND, hint=f"git-mirror follower list --follower {fid}")
    rstatus = repo_status(cfg, follower.repository, node, check_snapshots=False).to_json()
    lane = next((ln for ln in rstatus["lanes"] if ln["name"] == follower.lane), None)
    source = next((s for s in rstatus["sources"] if s["branch"] == follower.branch), None)
    layout = RepoLayout.of(cfg, follower.repository)
    flush = flush_state(layout.git_dir, record.get("publishedLaneCommit"), lane)
    flush.update(flushAfter=record.get("flushAfter"), pendingFlush=rstatus["pendingFlush"])
    failure = run_error(record) if record.get("status") != st.RUNNING else None
    keys = ("name", "status", "phase", "exitCode", "snapshotRef", "commit", "publishedLaneCommit",
            "laneTipBefore", "createdAt", "startedAt", "finishedAt", "log", "stale", "error")
    return {
        "ok": True, "node": node, "follower": fid, "repository": follower.repository,
        "branch": follower.branch, "lane": lane or {"name": follower.lane,
                                                    "ref": lane_ref(cfg, follower)},
        "pipelineRun": {k: record.get(k) for k in keys},
        "run": {"name": record.get("name"), "status": record.get("status")},
        "flush": flush,
        "currentBranchTip": source["mirrorCommit"] if source else None,
        "currentBranchTipNote": "the branch as the mirror holds it now, not this run's source "
                                "(that is pipelineRun.commit, from pipelineRun.snapshotRef)",
        "runError": failure.to_json() if failure else None,
        "pendingFlush": rstatus["pendingFlush"], "githubInSync": rstatus["githubInSync"],
    }
