"""The closeout proof (R10, R12), the same on every kind of node, from the mirror's cache.

Given the follower's runs (run records on a local node, PipelineRuns on a kubernetes node),
the merge commit and the deployed revision, :func:`judge` picks the run to judge and decides
the checks of CONTRACT section 3:

* the judged run is ``--pipeline-run NAME``, else the follower's latest succeeded run whose
  built commit (its snapshot's commit) contains the merge commit;
* ``tipContainsMergeCommit``: the mirror's branch tip contains the merge commit;
* ``runSucceeded``: the judged run succeeded;
* ``runContainsMergeCommit``: the judged run's built commit contains the merge commit (a
  merge that no run built never closes out; a later run that built a descendant proves it);
* ``deployedContainsRun``: the deployed revision is the lane commit the judged run published,
  or a descendant of it;
* ``pendingFlush`` false and ``githubInSync`` true.

Ancestry is asked of git in one ``for-each-ref --contains`` over the branch and the runs'
snapshot refs (a run's snapshot ref names its built commit), plus one ``merge-base`` for the
deployed revision: the number of git processes does not grow with the number of refs (a run
whose snapshot ref was pruned costs one ``merge-base`` of its own).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from git_mirror.git.run import git

SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")
SUCCEEDED, RUNNING, FAILED = "succeeded", "running", "failed"
CHECKS = ("tipContainsMergeCommit", "runSucceeded", "runContainsMergeCommit",
          "deployedContainsRun", "pendingFlush", "githubInSync")


@dataclass
class Check:
    """One closeout check: its contract name, whether it passed, and why."""

    name: str
    ok: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        """``{name, ok, status: pass|fail, message}``."""
        return {"name": self.name, "ok": self.ok, "status": "pass" if self.ok else "fail",
                "message": self.message}


def resolve_commit(git_dir: Path, sha: str) -> str | None:
    """The full id of commit ``sha`` in the mirror; None when the mirror does not have it."""
    res = git(["rev-parse", "--verify", "-q", "--end-of-options", f"{sha}^{{commit}}"],
              git_dir=git_dir, ok_codes=(0, 1, 128), what="git rev-parse")
    oid = res.text.strip()
    return oid if res.returncode == 0 and oid else None


def refs_containing(git_dir: Path, commit: str, refs: Sequence[str]) -> set[str]:
    """Which of ``refs`` (exact names) contain ``commit``, in one ``for-each-ref``."""
    if not refs:
        return set()
    out = git(["for-each-ref", "--format=%(refname)", f"--contains={commit}", "--", *refs],
              git_dir=git_dir, what="git for-each-ref --contains").text
    wanted = set(refs)
    return {line for line in out.splitlines() if line in wanted}


def contains(git_dir: Path, ancestor: str, descendant: str) -> bool | None:
    """True when ``descendant`` contains ``ancestor``; None when the mirror lacks one of them."""
    if ancestor == descendant:
        return True
    res = git(["merge-base", "--is-ancestor", ancestor, descendant], git_dir=git_dir,
              ok_codes=(0, 1, 128), what="git merge-base")
    return {0: True, 1: False}.get(res.returncode)


@dataclass(frozen=True)
class RunView:
    """The fields of a run the proof uses, the same for a local run record, a PipelineRun
    summary and a run the ledger proved (``evidence`` says which: ``run`` or the ledger)."""

    name: str | None
    status: str | None
    commit: str | None  # the built commit: the snapshot's
    snapshot_ref: str | None
    published_lane_commit: str | None
    published_lane_commit_source: str | None
    follower: str | None
    reason: str | None
    evidence: str | None

    @classmethod
    def of(cls, run: dict[str, Any]) -> RunView:
        """The view of a run record, PipelineRun summary or ledger run (JSON)."""
        return cls(name=run.get("name"), status=run.get("status"), commit=run.get("commit"),
                   snapshot_ref=run.get("snapshotRef"),
                   published_lane_commit=run.get("publishedLaneCommit"),
                   published_lane_commit_source=run.get("publishedLaneCommitSource"),
                   follower=run.get("follower"), reason=run.get("reason"),
                   evidence=run.get("evidence", "run"))


@dataclass
class Judgement:
    """The outcome of :func:`judge`: the judged run, every check and the verdicts behind them."""

    merge: str | None  # the full id, None when the mirror does not know the commit
    tip: str | None
    run: RunView | None
    checks: list[Check]
    run_contains: bool | None
    deployed_contains: bool | None
    chosen_by: str

    @property
    def ok(self) -> bool:
        """True when every check passed: the delivery is proven."""
        return all(c.ok for c in self.checks)

    def failed(self) -> set[str]:
        """The names of the checks that failed."""
        return {c.name for c in self.checks if not c.ok}


@dataclass
class _Ancestry:
    """What the mirror says of the merge commit: its full id, and which refs contain it."""

    git_dir: Path
    merge: str | None  # None when the mirror does not know the commit (or does not exist)
    containing: set[str]
    present: set[str]  # snapshot refs that exist: "not listed by --contains" means no

    @classmethod
    def of(cls, git_dir: Path, merge: str | None, branch_ref: str,
           snaps: list[str]) -> _Ancestry:
        """One ``for-each-ref --contains`` over the branch and the runs' snapshot refs, and
        one ``for-each-ref`` for which snapshot refs exist."""
        containing: set[str] = set()
        present: set[str] = set()
        if merge is not None:
            containing = refs_containing(git_dir, merge, [branch_ref, *snaps])
            if snaps:
                present = set(git(["for-each-ref", "--format=%(refname)", "--", *snaps],
                                  git_dir=git_dir, what="git for-each-ref").text.split())
        return cls(git_dir, merge, containing, present)

    def built_contains(self, v: RunView) -> bool | None:
        """Whether run ``v``'s built commit contains the merge commit; None when unknown."""
        if self.merge is None or not v.commit:
            return None
        ref = v.snapshot_ref
        if ref and ref in self.present and ref.endswith("/" + v.commit):
            return ref in self.containing
        return contains(self.git_dir, self.merge, v.commit)


def _pick_run(views: list[RunView], pipeline_run: str | None,
              ancestry: _Ancestry) -> tuple[RunView | None, bool | None, str]:
    """The judged run, whether its built commit contains the merge, and why it was chosen."""
    if pipeline_run is not None:
        run = next((v for v in views if v.name == pipeline_run), None)
        return run, ancestry.built_contains(run) if run else None, "--pipeline-run"
    for v in reversed(views):
        if v.status == SUCCEEDED and ancestry.built_contains(v):
            return v, True, "latest succeeded run containing the merge"
    if views:
        # No succeeded run built the merge: judge the latest run, so that the checks say
        # what is missing (it failed, it is running, or it built an older commit).
        run = views[-1]
        return run, ancestry.built_contains(run), "latest run (none built the merge commit)"
    return None, None, "none"


@dataclass(frozen=True)
class _Facts:
    """What the checks are decided on, gathered by :func:`judge`."""

    fid: str
    branch: str
    merge_text: str  # the full id when the mirror knows the commit, else as given
    exists: bool
    tip: str | None
    tip_contains: bool
    run: RunView | None
    pipeline_run: str | None
    run_contains: bool | None
    deployed: str | None
    deployed_source: str
    deployed_contains: bool | None
    pending: bool | None
    in_sync: bool
    run_label: str


def _run_check(f: _Facts) -> Check:
    run, label, status = f.run, f.run_label, f.run.status if f.run else None
    if run is None:
        msg = (f"no {label} {f.pipeline_run} of follower {f.fid}" if f.pipeline_run else
               f"follower {f.fid} has no {label} yet")
    elif run.follower not in (None, f.fid):
        msg = f"{label} {run.name} belongs to follower {run.follower}"
        status = None
    else:
        msg = f"{label} {run.name} {status}" + (f" ({run.reason})" if run.reason else "")
    return Check("runSucceeded", status == SUCCEEDED, msg)


def _contains_check(f: _Facts, merge_known: bool) -> Check:
    run, label = f.run, f.run_label
    if not merge_known:
        msg = (f"{f.merge_text} is a commit the mirror does not know" if f.exists else
               "the mirror does not exist")
    elif run is None:
        msg = f"no {label} built {f.merge_text}"
    elif not run.commit:
        msg = f"{label} {run.name} records no built commit"
    else:
        msg = (f"{label} {run.name} built {run.commit}, which "
               + ("contains" if f.run_contains else "does not contain")
               + f" {f.merge_text}" + ("" if f.run_contains else
                                       ": no run built this merge yet"))
    return Check("runContainsMergeCommit", bool(f.run_contains), msg)


def _deployed_check(f: _Facts) -> Check:
    run, label = f.run, f.run_label
    published = run.published_lane_commit if run else None
    where = f"({f.deployed_source})"
    if run is None:
        msg = f"no {label} to compare with the deployed revision"
    elif not published:
        msg = f"{label} {run.name} published no lane commit"
    elif not f.deployed:
        msg = f"the deployed revision {where} is unknown"
    elif f.deployed_contains is None:
        msg = f"the deployed revision {f.deployed} {where} is not in the mirror"
    else:
        msg = (f"the deployed revision {f.deployed} {where} "
               + ("is or descends from" if f.deployed_contains else "does not contain")
               + f" lane commit {published} published by {run.name}")
    return Check("deployedContainsRun", bool(f.deployed_contains), msg)


def _checks(f: _Facts, merge_known: bool) -> list[Check]:
    """The six checks, in the contract's order."""
    flushed = f.exists and f.pending is False
    return [
        Check("tipContainsMergeCommit", f.tip_contains,
              f"{f.branch} at {f.tip or 'nothing'} "
              + ("contains" if f.tip_contains else "does not contain") + f" {f.merge_text}"
              + ("" if merge_known or not f.exists else " (a commit the mirror does not know)")),
        _run_check(f),
        _contains_check(f, merge_known),
        _deployed_check(f),
        Check("pendingFlush", flushed,
              "no lane commit waits for flush" if flushed else
              "a lane holds commits upstream lacks" if f.exists else "the mirror does not exist"),
        Check("githubInSync", f.in_sync,
              "every lane and source ref equals upstream as last observed" if f.in_sync else
              "some lane or source ref differs from upstream as last observed"),
    ]


def judge(git_dir: Path, *, fid: str, branch: str, merge_commit: str, tip: str | None,
          runs: Sequence[dict[str, Any]], pipeline_run: str | None, deployed: str | None,
          deployed_source: str, pending: bool | None, in_sync: bool,
          run_label: str = "run") -> Judgement:
    """Pick the run and decide every check (see the module docstring). ``runs`` oldest first."""
    exists = (git_dir / "HEAD").exists()
    merge = resolve_commit(git_dir, merge_commit) if exists else None
    views = [RunView.of(r) for r in runs]
    snaps = list(dict.fromkeys(
        str(v.snapshot_ref) for v in views
        if v.snapshot_ref and (v.status == SUCCEEDED or v.name == pipeline_run)))
    branch_ref = f"refs/heads/{branch}"
    ancestry = _Ancestry.of(git_dir, merge, branch_ref, snaps)
    tip_contains = bool(tip and merge and branch_ref in ancestry.containing)
    run, run_contains, chosen_by = _pick_run(views, pipeline_run, ancestry)
    published = run.published_lane_commit if run else None
    deployed_contains = None
    if run is not None and published and deployed and exists:
        deployed_contains = contains(git_dir, published, deployed)
    facts = _Facts(fid=fid, branch=branch, merge_text=merge or merge_commit, exists=exists,
                   tip=tip, tip_contains=tip_contains, run=run, pipeline_run=pipeline_run,
                   run_contains=run_contains, deployed=deployed,
                   deployed_source=deployed_source, deployed_contains=deployed_contains,
                   pending=pending, in_sync=in_sync, run_label=run_label)
    checks = _checks(facts, merge is not None)
    return Judgement(merge, tip, run, checks, run_contains, deployed_contains, chosen_by)


def hint(j: Judgement, *, cli: str, fid: str, rid: str) -> str:
    """The next command after a failed closeout: the first thing that moves it forward."""
    failed = j.failed()
    trigger = f"{cli} follower trigger --follower {fid} --confirm --wait"
    run = j.run
    if j.merge is None:
        # The mirror does not know the commit: fetch first (it may be a fresh merge).
        return f"{cli} sync --repo {rid} --confirm --wait"
    status = run.status if run else None
    if "runSucceeded" in failed and status == RUNNING:
        return f"{cli} follower status --follower {fid} --wait"
    if "runSucceeded" in failed and run is not None and status == FAILED \
            and "runContainsMergeCommit" not in failed:
        return f"{cli} cleanup-runs --pipeline-run {run.name} --confirm && {trigger}"
    if failed & {"runSucceeded", "runContainsMergeCommit", "tipContainsMergeCommit"}:
        return trigger  # it syncs, builds the new tip's snapshot and flushes
    if "pendingFlush" in failed:
        return f"{cli} flush --repo {rid} --confirm --wait"
    if "deployedContainsRun" in failed and not (run and run.published_lane_commit):
        return trigger
    return f"{cli} sync --repo {rid} --confirm --wait"
