"""``closeout``: proof that a merge was delivered (R10, R12), from the mirror's cache only.

Closeout reads the mirror and the run records; it contacts no upstream and changes nothing.
The cache is what sync and flush last saw: a stale cache fails the proof (``githubInSync``
or the tip check), and the hint says which command refreshes it. The four checks:

* ``tipContainsMergeCommit``: the mirror's source branch contains the merge commit (a
  commit the mirror does not know fails this check);
* ``runSucceeded``: the named run (``--pipeline-run``), else the follower's latest, succeeded;
* ``pendingFlush``: no lane of the repository holds commits upstream lacks;
* ``githubInSync``: every lane and source ref equals upstream as last observed.

On a local node the deployed ``syncRevision`` is the lane tip in the mirror.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_mirror.errors import GitMirrorError, UsageError
from git_mirror.follower import state as st
from git_mirror.follower.follower import get_follower, lane_ref
from git_mirror.git.refs import is_ancestor, list_refs
from git_mirror.git.run import git
from git_mirror.mirror.layout import HEADS, RepoLayout

if TYPE_CHECKING:
    from pathlib import Path

    from git_mirror.config.loader import LoadedConfig

SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")


def resolve_commit(git_dir: Path, sha: str) -> str | None:
    """The full id of commit ``sha`` in the mirror; None when the mirror does not have it."""
    res = git(["rev-parse", "--verify", "-q", "--end-of-options", f"{sha}^{{commit}}"],
              git_dir=git_dir, ok_codes=(0, 1, 128), what="git rev-parse")
    oid = res.text.strip()
    return oid if res.returncode == 0 and oid else None


@dataclass
class Check:
    name: str
    ok: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "status": "pass" if self.ok else "fail",
                "message": self.message}


def closeout(cfg: LoadedConfig, fid: str, merge_commit: str, *, pipeline_run: str | None = None,
             node: str = "local", judge_run: bool = True) -> dict[str, Any]:
    """The closeout object of CONTRACT section 4; ``ok`` only when every check passes.

    ``judge_run=False`` leaves out ``runSucceeded``: a kubernetes node runs this in a Job for
    the mirror's checks and judges its PipelineRun itself.
    """
    from git_mirror.mirror.status import repo_status

    follower = get_follower(cfg, fid)
    if not SHA.match(merge_commit):
        raise UsageError(f"--merge-commit {merge_commit!r} is not a commit id (4 to 64 hex digits)",
                         hint="pass the PR's merge commit SHA")
    if pipeline_run is not None:
        st.check_run_name(pipeline_run)
    rid = follower.repository
    layout = RepoLayout.of(cfg, rid)
    exists = (layout.git_dir / "HEAD").exists()
    state = st.FollowerState.of(cfg, fid)
    run = None
    if judge_run:
        run = state.load(pipeline_run) if pipeline_run is not None else state.last_run()

    tip = merge = None
    contains = False
    if exists:
        tip = list_refs(layout.git_dir, [HEADS + follower.branch]).get(HEADS + follower.branch)
        merge = resolve_commit(layout.git_dir, merge_commit)
        contains = bool(tip and merge and is_ancestor(layout.git_dir, merge, tip))
    rstatus = repo_status(cfg, rid, node, check_snapshots=False)
    pending, in_sync = bool(rstatus["pendingFlush"]), bool(rstatus["githubInSync"])
    lane = next((ln for ln in rstatus["lanes"] if ln["name"] == follower.lane), None)
    sync_revision = lane["mirrorCommit"] if lane else None

    run_status = run.get("status") if run else None
    checks = [
        Check("tipContainsMergeCommit", contains,
              f"{follower.branch} at {tip or 'nothing'} "
              + ("contains" if contains else "does not contain") + f" {merge or merge_commit}"
              + ("" if merge or not exists else " (a commit the mirror does not know)")),
        Check("runSucceeded", run_status == st.SUCCEEDED,
              (f"run {run['name']} {run_status}" if run else
               f"no run {pipeline_run} of follower {fid}" if pipeline_run else
               f"follower {fid} has no run yet")),
        Check("pendingFlush", exists and not pending,
              "no lane commit waits for flush" if exists and not pending else
              "a lane holds commits upstream lacks" if exists else "the mirror does not exist"),
        Check("githubInSync", in_sync,
              "every lane and source ref equals upstream as last observed" if in_sync else
              "some lane or source ref differs from upstream as last observed"),
    ]
    if not judge_run:
        checks = [c for c in checks if c.name != "runSucceeded"]
    ok = all(c.ok for c in checks)
    run_contains = None
    if run and merge and exists and run.get("commit"):
        run_contains = is_ancestor(layout.git_dir, merge, str(run["commit"]))
    data: dict[str, Any] = {
        "ok": ok, "node": node, "follower": fid, "repository": rid, "branch": follower.branch,
        "mergeCommit": merge or merge_commit,
        "pipelineRun": {"name": run.get("name") if run else pipeline_run, "status": run_status,
                        "commit": run.get("commit") if run else None,
                        "snapshotRef": run.get("snapshotRef") if run else None},
        "syncRevision": sync_revision, "syncRevisionSource": "mirror lane tip",
        "branchTip": tip, "tipContainsMergeCommit": contains,
        "runContainsMergeCommit": run_contains,
        "pendingFlush": pending if exists else None, "githubInSync": in_sync,
        "lane": lane or {"name": follower.lane, "ref": lane_ref(cfg, follower)},
        "checks": [c.to_json() for c in checks],
        "refSources": rstatus["refSources"],
    }
    if not ok:
        failed = [c for c in checks if not c.ok]
        data["error"] = GitMirrorError(
            f"closeout of {fid} failed: " + "; ".join(f"{c.name}: {c.message}" for c in failed),
            code="closeout-failed", hint=_hint(cfg, fid, rid, failed, run),
            details={"failedChecks": [c.name for c in failed]}).to_json()
    return data


def _hint(cfg: LoadedConfig, fid: str, rid: str, failed: list[Check],
          run: dict[str, Any] | None) -> str:
    names = {c.name for c in failed}
    trigger = f"git-mirror follower trigger --follower {fid} --confirm --wait"
    if "runSucceeded" in names and run and run.get("status") == st.RUNNING:
        return f"git-mirror follower status --follower {fid}"
    if "runSucceeded" in names and run and run.get("status") == st.FAILED:
        return f"git-mirror cleanup-runs --pipeline-run {run['name']} --confirm && {trigger}"
    if names & {"runSucceeded", "tipContainsMergeCommit"}:
        return trigger  # it syncs, builds the new tip's snapshot and flushes
    if "pendingFlush" in names:
        return f"git-mirror flush --repo {rid} --confirm --wait"
    return f"git-mirror sync --repo {rid} --confirm --wait"
