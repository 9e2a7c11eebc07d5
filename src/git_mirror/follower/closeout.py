"""``closeout``: proof that a merge was delivered (R10, R12), from the mirror's cache only.

Closeout reads the mirror and the runs; it contacts no upstream and changes no ref. The
judged run and the six checks are :mod:`git_mirror.follower.proof`'s, the same on every node:
on a local node the runs are the run records and the deployed revision is the lane commit
upstream holds as last observed (the lane's stage ref); a kubernetes node passes its
PipelineRuns and Argo CD's sync revision to :func:`closeout` in a Job on the node
(``closeout --mirror-only``). Every result is appended to the ledger
(:mod:`git_mirror.follower.ledger`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code, GitMirrorError, UsageError
from git_mirror.follower import ledger
from git_mirror.follower import state as st
from git_mirror.follower.follower import get_follower, lane_ref
from git_mirror.follower.proof import SHA, Check, RunView, hint, judge, resolve_commit
from git_mirror.follower.results import CloseoutHistory, CloseoutResult
from git_mirror.mirror.layout import RepoLayout

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.mirror.status_results import LaneStatus

__all__ = ["SHA", "Check", "closeout", "closeout_history", "resolve_commit"]


def check_merge_commit(merge_commit: str) -> None:
    if not SHA.match(merge_commit):
        raise UsageError(f"--merge-commit {merge_commit!r} is not a commit id (4 to 64 hex digits)",
                         hint="pass the PR's merge commit SHA")


def closeout(cfg: LoadedConfig, fid: str, merge_commit: str, *, pipeline_run: str | None = None,
             node: str = "local", runs: list[dict[str, Any]] | None = None,
             deployed: str | None = None, deployed_source: str | None = None,
             record: bool = True, run_label: str = "run") -> CloseoutResult:
    """The closeout object of CONTRACT section 4; ``ok`` only when every check passes.

    ``runs`` (oldest first) replaces the local run records: a kubernetes node passes its
    PipelineRuns. ``deployed`` replaces the deployed revision (Argo CD's); without it, the lane
    commit upstream holds as last observed. ``record=False`` leaves the ledger alone.
    """
    from git_mirror.mirror.status import repo_status

    follower = get_follower(cfg, fid)
    check_merge_commit(merge_commit)
    if pipeline_run is not None:
        st.check_run_name(pipeline_run)
    rid = follower.repository
    layout = RepoLayout.of(cfg, rid)
    if runs is None:
        runs = [r.to_json() for r in st.FollowerState.of(cfg, fid).runs()]
    rstatus = repo_status(cfg, rid, node, check_snapshots=False)
    exists = rstatus.exists
    pending, in_sync = rstatus.pending_flush, rstatus.github_in_sync
    lane = rstatus.lane(follower.lane)
    source = rstatus.source(follower.branch)
    tip = source.mirror_commit if source else None
    if deployed is None and deployed_source is None:
        deployed = lane.github_commit if lane else None
        branch = lane_ref(cfg, follower)[len("refs/heads/"):]
        deployed_source = ("the lane commit upstream holds as last observed "
                           f"(refs/mirror-stage/heads/{branch})")
    deployed_source = deployed_source or "deployed revision"
    runs = [*proven_runs(cfg, fid, runs), *infer_publication(list(runs), lane)]
    j = judge(layout.git_dir, fid=fid, branch=follower.branch, merge_commit=merge_commit,
              tip=tip, runs=runs, pipeline_run=pipeline_run, deployed=deployed,
              deployed_source=deployed_source, pending=pending if exists else None,
              in_sync=in_sync, run_label=run_label)
    res = CloseoutResult(
        ok=j.ok, node=node, follower=fid, repository=rid, branch=follower.branch,
        merge_commit=j.merge or merge_commit,
        pipeline_run=_judged_run(j.run, pipeline_run, j.chosen_by),
        sync_revision=deployed, sync_revision_source=deployed_source, branch_tip=tip,
        tip_contains=bool(j.checks[0].ok), run_contains=j.run_contains,
        deployed_contains=j.deployed_contains, pending_flush=pending if exists else None,
        github_in_sync=in_sync,
        lane=lane.to_json() if lane else {"name": follower.lane, "ref": lane_ref(cfg, follower)},
        checks=[c.to_json() for c in j.checks], ref_sources=rstatus.ref_sources)
    if not j.ok:
        failed = [c for c in j.checks if not c.ok]
        cli = "git-mirror" if node == "local" else f"git-mirror --node {node}"
        res.error = GitMirrorError(
            f"closeout of {fid} failed: " + "; ".join(f"{c.name}: {c.message}" for c in failed),
            code=Code.CLOSEOUT_FAILED, hint=hint(j, cli=cli, fid=fid, rid=rid),
            details={"failedChecks": [c.name for c in failed]}).to_json()
    if record and exists:
        res.ledger = {"path": str(ledger.ledger_path(cfg)),
                      "entry": ledger.append(cfg, res.to_json())}
    return res


def _judged_run(run: RunView | None, pipeline_run: str | None,
                chosen_by: str) -> dict[str, Any]:
    """The closeout's ``pipelineRun``: the judged run's name, status, built commit and
    published lane commit, and why it was chosen (the name asked for, without one)."""
    if run is None:
        return {"name": pipeline_run, "status": None, "commit": None, "snapshotRef": None,
                "publishedLaneCommit": None, "publishedLaneCommitSource": None,
                "evidence": None, "chosenBy": chosen_by}
    return {"name": run.name, "status": run.status, "commit": run.commit,
            "snapshotRef": run.snapshot_ref, "publishedLaneCommit": run.published_lane_commit,
            "publishedLaneCommitSource": run.published_lane_commit_source,
            "evidence": run.evidence, "chosenBy": chosen_by}


def closeout_history(cfg: LoadedConfig, fid: str, merge_commit: str | None = None, *,
                     node: str = "local") -> CloseoutHistory:
    """``closeout --history``: the ledger lines of a follower (of one merge commit)."""
    get_follower(cfg, fid)
    if merge_commit is not None:
        check_merge_commit(merge_commit)
    entries = ledger.history(cfg, fid, merge_commit)
    return CloseoutHistory(node=node, follower=fid, merge_commit=merge_commit,
                           ledger=str(ledger.ledger_path(cfg)), closeouts=entries)


def infer_publication(runs: list[dict[str, Any]],
                      lane: LaneStatus | None) -> list[dict[str, Any]]:
    """The follower's latest run, finished but with no published lane commit on record (a
    PipelineRun started without ``--wait``): the lane commit it published is the lane's tip in
    the mirror now, when that moved since the run started (one run of a follower at a time).
    A recorded value, even "nothing published", is never replaced."""
    if not runs or lane is None:
        return runs
    last = runs[-1]
    tip = lane.mirror_commit
    if "publishedLaneCommit" in last or "laneTipBefore" not in last \
            or last.get("status") not in (st.SUCCEEDED, st.FAILED) or not tip \
            or tip == last.get("laneTipBefore"):
        return runs
    return [*runs[:-1], {**last, "publishedLaneCommit": tip,
                         "publishedLaneCommitSource": "the lane's tip in the mirror now (the run "
                                                      "recorded none; it is the latest run)"}]


def proven_runs(cfg: LoadedConfig, fid: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs that an earlier, passing closeout put on the ledger and that are no longer among
    ``runs`` (``cleanup-state`` removed their records, or the PipelineRuns were deleted): the
    ledger is their evidence, oldest first. The rest of the proof is checked again."""
    have = {r.get("name") for r in runs}
    out: dict[str, dict[str, Any]] = {}
    for entry in ledger.history(cfg, fid):
        run = entry.get("pipelineRun") or {}
        name = run.get("name")
        if not entry.get("ok") or not name or name in have or run.get("status") != st.SUCCEEDED:
            continue
        out.pop(name, None)
        out[name] = {"name": name, "status": st.SUCCEEDED, "commit": run.get("commit"),
                     "snapshotRef": run.get("snapshotRef"), "follower": fid,
                     "publishedLaneCommit": run.get("publishedLaneCommit"),
                     "evidence": f"ledger (closeout at {entry.get('at')})"}
    return list(out.values())
