"""Closeout as a proof on a kubernetes node: the run that built the merge, the lane commit it
published and Argo CD's sync revision; one run observed on its own; the ledger.

Against the FAKE API server with its FAKE Tekton and Argo CD (tests/support/), as in
tests/kube/test_followers.py, whose rig this reuses: PipelineRuns really run the test
Pipeline's step, which pushes a deploy commit to the lane in the mirror.
"""

from __future__ import annotations

import time
from typing import Any

from tests.kube import test_followers as base
from tests.kube.test_followers import APP, FID, LANE, NS, SNAP, Rig
from tests.support.cli import CliResult

# The rig of the follower tests (fake Tekton, Argo CD, the test Pipeline) and its fast polling.
rig = base.rig
_fast_polling = base._fast_polling


def trigger(rig: Rig) -> CliResult:
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert r.code == 0, r.stdout
    return r


def closeout(rig: Rig, merge: str, *extra: str) -> CliResult:
    return rig("--json", "closeout", "--follower", FID, "--merge-commit", merge, *extra)


def failed(res: CliResult) -> list[str]:
    return [c["name"] for c in res.json["checks"] if not c["ok"]]


def run_annotations(rig: Rig, name: str) -> dict[str, str]:
    run = rig.fake.get("tekton.dev/v1", "PipelineRun", name, NS)
    assert run is not None
    notes: dict[str, str] = run["metadata"].get("annotations") or {}
    return notes


def test_pr1_pr2_story_on_a_kubernetes_node(rig: Rig) -> None:
    pr1 = rig.upstream.commit("main", "Merge pull request #1")
    run1 = trigger(rig).json["run"]["name"]
    deployed1 = rig.fake.argo_sync("argocd", APP)
    assert run_annotations(rig, run1)["git-mirror/published-lane-commit"] == deployed1
    assert closeout(rig, pr1).code == 0

    pr2 = rig.upstream.commit("main", "Merge pull request #2")
    assert rig("sync", "--confirm", "--wait").code == 0  # the mirror has PR #2; no run built it
    res = closeout(rig, pr2)
    assert res.code == 1, res.stdout
    d = res.json
    assert d["ok"] is False and d["runContainsMergeCommit"] is False
    assert d["tipContainsMergeCommit"] is True and d["pipelineRun"]["name"] == run1
    assert d["pipelineRun"]["status"] == "succeeded"
    assert failed(res) == ["runContainsMergeCommit"]
    assert d["error"]["hint"] == (f"git-mirror --node D601 follower trigger --follower {FID} "
                                  "--confirm --wait")
    named = closeout(rig, pr2, "--pipeline-run", run1)  # the run that built the older commit
    assert named.code == 1 and failed(named) == ["runContainsMergeCommit"]

    run2 = trigger(rig).json["run"]["name"]
    # built and flushed, but Argo CD still deploys run 1's lane commit: not yet delivered
    early = closeout(rig, pr2)
    assert early.code == 1 and failed(early) == ["deployedContainsRun"]
    assert early.json["syncRevision"] == deployed1
    assert early.json["error"]["hint"].startswith(f"let Argo CD sync Application argocd/{APP}")
    deployed2 = rig.fake.argo_sync("argocd", APP)
    proved = closeout(rig, pr2)
    assert proved.code == 0, proved.stdout
    assert proved.json["pipelineRun"]["name"] == run2
    assert proved.json["syncRevision"] == deployed2
    assert proved.json["pipelineRun"]["publishedLaneCommit"] == deployed2
    # the later run proves the earlier merge too
    earlier = closeout(rig, pr1)
    assert earlier.code == 0 and earlier.json["pipelineRun"]["name"] == run2


def wait_finished(rig: Rig, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = rig.fake.get("tekton.dev/v1", "PipelineRun", name, NS)
        conds = ((run or {}).get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Succeeded" and c.get("status") in ("True", "False")
               for c in conds):
            return
        time.sleep(0.1)
    raise AssertionError(f"PipelineRun {name} did not finish within {timeout}s")


def test_a_run_without_wait_is_proven_after_the_flush_and_recorded_by_the_next(rig: Rig) -> None:
    merge = rig.upstream.commit("main", "Merge pull request #3")
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm")
    assert r.code == 0, r.stdout
    name = r.json["run"]["name"]
    wait_finished(rig, name)
    notes = run_annotations(rig, name)
    assert "git-mirror/lane-tip-before" in notes and "git-mirror/published-lane-commit" not in notes
    pending = closeout(rig, merge)
    assert pending.code == 1 and "pendingFlush" in failed(pending)
    pushed = rig.seen("pushed")
    assert pending.json["pipelineRun"]["publishedLaneCommit"] == pushed
    assert rig("--json", "flush", "--confirm", "--wait").code == 0
    assert rig.upstream.rev(LANE) == pushed
    rig.fake.argo_sync("argocd", APP)
    ok = closeout(rig, merge)
    assert ok.code == 0, ok.stdout
    assert "recorded none" in ok.json["pipelineRun"]["publishedLaneCommitSource"]
    # the next trigger records what the earlier run published on that run
    trigger(rig)
    assert run_annotations(rig, name)["git-mirror/published-lane-commit"] == pushed


def test_follower_status_of_one_pipeline_run(rig: Rig) -> None:
    r = trigger(rig)
    name, built = r.json["run"]["name"], r.json["commit"]
    later = rig.upstream.commit("main", "a later merge")
    assert rig("sync", "--confirm", "--wait").code == 0
    st = rig("--json", "follower", "status", "--follower", FID, "--pipeline-run", name)
    assert st.code == 0, st.stdout
    d: dict[str, Any] = st.json
    assert d["pipelineRun"]["name"] == name and d["pipelineRun"]["status"] == "succeeded"
    assert d["pipelineRun"]["commit"] == built
    assert d["pipelineRun"]["snapshotRef"] == SNAP + built
    assert d["pipelineRun"]["publishedLaneCommit"] == rig.seen("pushed")
    assert d["flush"]["state"] == "flushed"
    assert d["flush"]["upstreamLaneCommit"] == rig.upstream.rev(LANE)
    # the branch's tip now, labelled so: not the run's source
    assert d["currentBranchTip"] == later != built
    assert "not this run's source" in d["currentBranchTipNote"]
    text = rig("follower", "status", "--follower", FID, "--pipeline-run", name)
    assert text.code == 0 and "not this run's source" in text.stdout
    unknown = rig("--json", "follower", "status", "--follower", FID, "--pipeline-run", "nope-1")
    assert unknown.code == 1 and unknown.json["error"]["code"] == "not-found"


def test_the_ledger_survives_cleanup_state_on_a_kubernetes_node(rig: Rig) -> None:
    merge = rig.upstream.commit("main", "Merge pull request #4")
    name = trigger(rig).json["run"]["name"]
    rig.fake.argo_sync("argocd", APP)
    assert closeout(rig, merge).code == 0
    done = rig("--json", "follower", "cleanup-state", "--follower", FID, "--confirm")
    assert done.code == 0 and not rig.runs()
    hist = rig("--json", "closeout", "--follower", FID, "--history")
    assert hist.code == 0, hist.stdout
    assert [(e["mergeCommit"], e["pipelineRun"]["name"], e["ok"])
            for e in hist.json["closeouts"]] == [(merge, name, True)]
    again = closeout(rig, merge)
    assert again.code == 0, again.stdout
    assert again.json["pipelineRun"]["evidence"].startswith("ledger")


def test_prune_on_a_kubernetes_node_keeps_what_pipeline_runs_use(
        fake: Any, write_config: Any, upstream: Any, tmp_path: Any) -> None:
    """keepLast 1 (no age limit): the snapshot a running PipelineRun reads and the one the last
    succeeded run built stay; the dry run lists exactly what the confirmed prune removes."""
    from tests.kube.conftest import KUBE_CONFIG
    from tests.support.gitutil import run_git

    text = (KUBE_CONFIG.format(url=upstream.url) + base.FOLLOWERS.format(app=APP)).replace(
        "  namespace: unidesk\n",
        "  namespace: unidesk\n  retention: {keepLast: 1, maxAgeDays: null}\n")
    r = Rig(fake, write_config(text), upstream, tmp_path)
    assert r("apply", "--confirm").code == 0
    fake.add_secret(NS, "git-mirror-tokens", {"ci": "s3cr3t-token-value"})
    fake.create(base.pipeline(r.obs, r.mode_file))
    c1 = trigger(r).json["commit"]
    c2 = upstream.commit("main", "two")
    assert r("sync", "--confirm", "--wait").code == 0
    fake.run_pipelines = False  # the next PipelineRun stays running
    c3 = upstream.commit("main", "three")
    running = r("--json", "follower", "trigger", "--follower", FID, "--confirm")
    assert running.code == 0 and running.json["commit"] == c3
    c4 = upstream.commit("main", "four")  # the branch moves on while the run reads c3
    assert r("sync", "--confirm", "--wait").code == 0

    def snaps() -> set[str]:
        out = run_git("--git-dir", str(r.mirror()), "for-each-ref", "--format=%(refname)", SNAP)
        return {line.rsplit("/", 1)[1] for line in out.stdout.decode().split()}

    assert snaps() == {c1, c2, c3, c4}
    dry = r("--json", "snapshots", "prune")
    assert dry.code == 0, dry.stdout
    assert dry.json["dryRun"] is True and dry.json["job"]["status"]
    assert [p["commit"] for p in dry.json["pruned"]] == [c2]
    reasons = {p["ref"]: p["reason"] for p in dry.json["protected"]}
    assert "is running" in reasons[SNAP + c3] and "last 1 succeeded" in reasons[SNAP + c1]
    assert snaps() == {c1, c2, c3, c4}
    done = r("--json", "snapshots", "prune", "--confirm")
    assert done.code == 0, done.stdout
    assert done.json["pruned"] == dry.json["pruned"]
    assert snaps() == {c1, c3, c4}
