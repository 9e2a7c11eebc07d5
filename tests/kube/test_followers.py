"""Followers on a kubernetes node: Tekton trigger, Argo CD closeout, run cleanup.

Everything here runs against FAKES (tests/support/fakekube.py, tests/support/faketekton.py):
no cluster, no Tekton, no Argo CD. The fake's Jobs run ``git-mirror`` for real against the
cache PVC (a directory), and its PipelineRuns run the test Pipeline's step script for real:
the script fetches the snapshot ref from the mirror's Service URL (rewritten to the PVC's
bare repository), commits a deploy file on the lane and pushes it into the mirror, through the
mirror's ref-protection hook. Upstream is a real bare repository.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from git_mirror.kube import followers, jobs
from tests.kube.conftest import KUBE_CONFIG
from tests.support.cli import CliResult, run_cli
from tests.support.fakekube import FakeKube
from tests.support.gitutil import Repo, run_git

NS = "devops-infra"
FID = "hwlab-runtime"
LANE = "refs/heads/gitops/v03"
SNAP = "refs/unidesk/snapshots/hwlab-node-runtime/main/"
URL = "http://git-mirror-d601.devops-infra.svc:8080/hwlab.git"
APP = "hwlab-runtime-v03"

FOLLOWERS = """\
followers:
  hwlab-runtime:
    repository: hwlab
    branch: main
    lane: v03
    trigger:
      tekton:
        pipeline: hwlab-build
        serviceAccountName: hwlab-builder
        params: {{image-registry: registry.example/hwlab}}
        workspaces: {{source: {{emptyDir: true}}}}
        timeout: 10m
    argocd: {{application: {app}}}
"""

# The step of the test Pipeline: what a real build task does with git-mirror's params.
STEP = """\
set -eu
mode=$(cat "{mode}" 2>/dev/null || echo ok)
mkdir src && cd src && git init -q
git fetch -q --no-tags "$(params.repo-url)" "+$(params.snapshot-ref):$(params.snapshot-ref)"
git checkout -q --detach "$(params.commit)"
test "$(git rev-parse HEAD)" = "$(params.commit)"
git for-each-ref --format='%(refname)' > "{obs}/refs"
echo "$(params.image-registry)" > "{obs}/registry"
if [ "$mode" = fail ]; then echo "build broke on purpose" >&2; exit 3; fi
git fetch -q "$(params.push-url)" "$(params.lane-ref)"
git checkout -q --detach FETCH_HEAD
image="$(params.image-registry)@$(params.commit)"
echo "image: $image run $(context.pipelineRun.name)" > deploy.yaml
git add deploy.yaml
git -c user.name=ci -c user.email=ci@example.invalid commit -q -m "deploy $(params.commit)"
git push -q "$(params.push-url)" "HEAD:$(params.lane-ref)"
git rev-parse HEAD > "{obs}/pushed"
if [ "$mode" = push-then-fail ]; then exit 4; fi
if [ "$mode" = push-source ]; then git push -q "$(params.push-url)" HEAD:refs/heads/main; fi
"""

PARAMS = ["snapshot-ref", "commit", "repo-url", "lane-ref", "push-url"]


def pipeline(obs: Path, mode: Path) -> dict[str, Any]:
    decl = [{"name": n, "type": "string"} for n in PARAMS]
    decl.append({"name": "image-registry", "type": "string", "default": "none"})
    return {"apiVersion": "tekton.dev/v1", "kind": "Pipeline",
            "metadata": {"name": "hwlab-build", "namespace": NS},
            "spec": {"params": decl, "workspaces": [{"name": "source"}],
                     "tasks": [{"name": "build",
                                "params": [{"name": d["name"], "value": f"$(params.{d['name']})"}
                                           for d in decl],
                                "taskSpec": {"params": decl, "steps": [{
                                    "name": "build", "image": "alpine/git",
                                    "script": STEP.format(obs=obs, mode=mode)}]}}]}}


class Rig:
    def __init__(self, fake: FakeKube, config: Path, upstream: Repo, tmp: Path) -> None:
        self.fake, self.config, self.upstream = fake, config, upstream
        self.obs, self.mode_file = tmp / "observed", tmp / "mode"
        self.obs.mkdir()

    def __call__(self, *args: str) -> CliResult:
        return run_cli("--config", self.config, "--node", "D601", *args)

    def mode(self, mode: str) -> None:
        self.mode_file.write_text(mode + "\n", encoding="utf-8")

    def seen(self, what: str) -> str:
        return (self.obs / what).read_text(encoding="utf-8").strip()

    def runs(self) -> list[dict[str, Any]]:
        return self.fake.list("tekton.dev/v1", "PipelineRun", NS, {})

    def mirror(self) -> Path:
        return self.fake.volume_dir(NS, "git-mirror-d601-cache") / "repos" / "hwlab.git"


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(followers, "POLL_SECONDS", 0.05)


@pytest.fixture
def rig(fake: FakeKube, write_config: Callable[..., Path], upstream: Repo, tmp_path: Path) -> Rig:
    config = write_config(KUBE_CONFIG.format(url=upstream.url) + FOLLOWERS.format(app=APP))
    r = Rig(fake, config, upstream, tmp_path)
    assert r("apply", "--confirm").code == 0
    fake.add_secret(NS, "git-mirror-tokens", {"ci": "s3cr3t-token-value"})
    fake.create(pipeline(r.obs, r.mode_file))
    fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}})
    fake.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                 "metadata": {"name": APP, "namespace": "argocd"},
                 "spec": {"project": "default",
                          "source": {"repoURL": upstream.url, "targetRevision": "gitops/v03",
                                     "path": "."},
                          "destination": {"server": "https://kubernetes.default.svc",
                                          "namespace": "hwlab"}}})
    fake.calls.clear()
    return r


def params_of(run: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in run["spec"]["params"]}


def test_trigger_dry_run_creates_nothing(rig: Rig) -> None:
    r = rig("--json", "follower", "trigger", "--follower", FID)
    assert r.code == 0, r.stdout
    d = r.json
    assert d["dryRun"] is True and d["run"]["status"] == "not-started"
    pr = d["wouldCreate"]
    assert pr["apiVersion"] == "tekton.dev/v1" and pr["kind"] == "PipelineRun"
    assert [p["name"] for p in pr["spec"]["params"]] == [*PARAMS, "image-registry"]
    assert params_of(pr)["snapshot-ref"] == SNAP + "<commit>"
    assert [j["kind"] for j in d["wouldRunJobs"]] == ["Job", "Job"]
    assert not rig.fake.calls  # not even a read
    assert not rig.runs()
    text = rig("follower", "trigger", "--follower", FID)
    assert text.code == 0 and "dry run" in text.stdout


def test_trigger_confirm_wait_builds_the_snapshot_and_flushes(rig: Rig) -> None:
    lane_before = rig.upstream.rev(LANE)
    tip = rig.upstream.rev("refs/heads/main")
    assert tip is not None
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert r.code == 0, r.stdout + r.stderr
    d = r.json
    assert d["ok"] is True and d["dryRun"] is False
    assert d["commit"] == tip and d["snapshotRef"] == SNAP + tip
    assert d["run"]["status"] == "succeeded" and d["run"]["name"]
    # a sync Job ran before the run, a flush Job before and after it
    ops = [j["metadata"]["labels"]["git-mirror/operation"]
           for j in rig.fake.list("batch/v1", "Job", NS, {})]
    assert sorted(ops) == ["flush", "flush", "sync"]
    # the PipelineRun: exactly the snapshot as its source, no branch anywhere
    [pr] = rig.runs()
    assert pr["metadata"]["name"] == d["run"]["name"]
    assert params_of(pr) == {"snapshot-ref": SNAP + tip, "commit": tip, "repo-url": URL,
                             "lane-ref": LANE, "push-url": URL,
                             "image-registry": "registry.example/hwlab"}
    assert not any(v in ("main", "refs/heads/main") for v in params_of(pr).values())
    labels = pr["metadata"]["labels"]
    assert labels["git-mirror/follower"] == FID and labels["git-mirror/commit"] == tip
    assert labels["app.kubernetes.io/managed-by"] == "git-mirror"
    assert pr["spec"]["taskRunTemplate"] == {"serviceAccountName": "hwlab-builder"}
    assert pr["spec"]["timeouts"] == {"pipeline": "10m"}
    assert pr["spec"]["workspaces"] == [{"name": "source", "emptyDir": {}}]
    # the build's checkout held the snapshot ref and nothing else
    assert rig.seen("refs") == SNAP + tip
    # its lane commit went through the mirror, then upstream (a real repository)
    pushed = rig.seen("pushed")
    assert rig.upstream.rev(LANE) == pushed
    assert rig.upstream.is_ancestor(lane_before or "", pushed)
    assert d["flushAfter"]["ok"] is True
    assert d["flushAfter"]["pushed"][0]["to"] == pushed
    assert d["laneTip"] == pushed
    assert d["pendingFlush"] is False and d["githubInSync"] is True
    # TaskRuns and pods carry the run's labels, as Tekton propagates them
    [tr] = rig.fake.list("tekton.dev/v1", "TaskRun", NS, {"git-mirror/follower": FID})
    assert tr["metadata"]["labels"]["tekton.dev/pipelineRun"] == pr["metadata"]["name"]
    assert "s3cr3t-token-value" not in r.stdout + r.stderr + str(pr)
    human = rig("follower", "status", "--follower", FID)
    assert human.code == 0 and d["run"]["name"] in human.stdout


def test_failed_run_exits_1_flushes_nothing_and_cleanup_runs(rig: Rig) -> None:
    rig.mode("fail")
    lane_before = rig.upstream.rev(LANE)
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert r.code == 1, r.stdout
    d = r.json
    assert d["ok"] is False and d["run"]["status"] == "failed"
    assert d["run"]["reason"] == "Failed"
    assert d["error"]["code"] == "run-failed"
    name = d["run"]["name"]
    assert f"cleanup-runs --pipeline-run {name} --confirm" in d["error"]["hint"]
    assert d["error"]["logs"] == ("kubectl --context d601 -n devops-infra logs -l "
                                  f"tekton.dev/pipelineRun={name} --all-containers --prefix")
    assert d["flushAfter"] is None and rig.upstream.rev(LANE) == lane_before
    assert d["pendingFlush"] is False  # from the status Job: the build pushed nothing

    dry = rig("--json", "cleanup-runs", "--pipeline-run", name)
    assert dry.code == 0, dry.stdout
    assert dry.json["dryRun"] is True and dry.json["pipelineRun"]["status"] == "failed"
    kinds = sorted(x.split()[1] for x in dry.json["wouldRemove"])
    assert kinds == ["PipelineRun", "Pod", "TaskRun"]
    assert len(rig.runs()) == 1  # nothing deleted
    done = rig("--json", "cleanup-runs", "--pipeline-run", name, "--confirm")
    assert done.code == 0, done.stdout
    assert sorted(x.split()[1] for x in done.json["removed"]) == kinds
    assert not rig.runs()
    assert not rig.fake.list("tekton.dev/v1", "TaskRun", NS, {})
    assert not rig.fake.list("v1", "Pod", NS, {"tekton.dev/pipelineRun": name})
    gone = rig("--json", "cleanup-runs", "--pipeline-run", name, "--confirm")
    assert gone.code == 1 and gone.json["error"]["code"] == "not-found"
    # the retry the hint names works
    rig.mode("ok")
    again = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert again.code == 0, again.stdout


def test_closeout_passes_with_argo_revision(rig: Rig) -> None:
    merge = rig.upstream.commit("main", "Merge pull request #7")
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert r.code == 0, r.stdout
    revision = rig.fake.argo_sync("argocd", APP)
    assert revision == rig.seen("pushed")
    later = rig.upstream.commit("main", "a later merge")  # the branch moved on: still proven
    assert rig("sync", "--confirm", "--wait").code == 0
    c = rig("--json", "closeout", "--follower", FID, "--merge-commit", merge,
            "--pipeline-run", r.json["run"]["name"])
    assert c.code == 0, c.stdout
    d = c.json
    assert d["ok"] is True and d["mergeCommit"] == merge
    assert d["pipelineRun"] == {**d["pipelineRun"], "name": r.json["run"]["name"],
                                "status": "succeeded"}
    assert d["syncRevision"] == revision and d["syncRevisionIsLaneTip"] is True
    assert d["branchTip"] == later and d["tipContainsMergeCommit"] is True
    assert d["pendingFlush"] is False and d["githubInSync"] is True
    assert all(ch["ok"] for ch in d["checks"])
    # without --pipeline-run: the follower's latest
    assert rig("--json", "closeout", "--follower", FID, "--merge-commit", merge).code == 0
    text = rig("closeout", "--follower", FID, "--merge-commit", merge)
    assert text.code == 0 and "OK" in text.stdout
    assert d["pipelineRun"]["publishedLaneCommit"] == revision
    assert d["deployedContainsRun"] is True and d["runContainsMergeCommit"] is True
    # the sync revision is part of the proof: without the Application it is unknown
    rig.fake.delete("argoproj.io/v1alpha1", "Application", APP, "argocd")
    gone = rig("--json", "closeout", "--follower", FID, "--merge-commit", merge)
    assert gone.code == 1 and gone.json["syncRevision"] is None
    assert gone.json["error"]["failedChecks"] == ["deployedContainsRun"]
    assert [w["code"] for w in gone.json["warnings"]] == ["argocd-not-found"]


def test_closeout_fails_when_the_tip_lacks_the_merge_commit(rig: Rig) -> None:
    assert rig("follower", "trigger", "--follower", FID, "--confirm", "--wait").code == 0
    rig.fake.argo_sync("argocd", APP)
    elsewhere = rig.upstream.rev("refs/heads/release/1.0")  # known to the mirror, not in main
    assert elsewhere is not None
    c = rig("--json", "closeout", "--follower", FID, "--merge-commit", elsewhere)
    assert c.code == 1, c.stdout
    d = c.json
    assert d["ok"] is False and d["tipContainsMergeCommit"] is False
    assert d["error"]["code"] == "closeout-failed"
    assert d["error"]["failedChecks"] == ["tipContainsMergeCommit", "runContainsMergeCommit"]
    assert d["error"]["hint"] == (f"git-mirror --node D601 follower trigger --follower {FID} "
                                  "--confirm --wait")


def test_closeout_fails_on_a_failed_run_and_pending_flush(rig: Rig) -> None:
    merge = rig.upstream.rev("refs/heads/main")
    assert merge is not None
    rig.mode("push-then-fail")
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert r.code == 1 and r.json["run"]["status"] == "failed"
    assert r.json["pendingFlush"] is True  # the lane commit is in the mirror, not upstream
    assert run_git("--git-dir", str(rig.mirror()), "rev-parse", LANE).stdout.decode().strip() \
        == rig.seen("pushed")
    c = rig("--json", "closeout", "--follower", FID, "--merge-commit", merge,
            "--pipeline-run", r.json["run"]["name"])
    assert c.code == 1
    d = c.json
    assert d["pipelineRun"]["status"] == "failed" and d["pendingFlush"] is True
    assert d["error"]["failedChecks"] == ["runSucceeded", "deployedContainsRun", "pendingFlush",
                                          "githubInSync"]
    assert d["pipelineRun"]["publishedLaneCommit"] == rig.seen("pushed")
    assert "cleanup-runs --pipeline-run" in d["error"]["hint"]
    # the flush the runbook asks for clears pendingFlush; the run stays failed
    assert rig("flush", "--confirm", "--wait").code == 0
    c2 = rig("--json", "closeout", "--follower", FID, "--merge-commit", merge,
             "--pipeline-run", r.json["run"]["name"])
    assert c2.json["pendingFlush"] is False
    assert c2.json["error"]["failedChecks"] == ["runSucceeded", "deployedContainsRun"]


def test_closeout_pending_flush_alone_hints_flush(rig: Rig) -> None:
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert r.code == 0
    rig.fake.argo_sync("argocd", APP)
    # a lane commit lands in the mirror after the run (another pipeline), not yet flushed
    mirror = Repo(rig.mirror())
    lane = mirror.rev(LANE)
    assert lane is not None
    mirror.set_ref(LANE, mirror.commit(None, "late deploy", parent=lane))
    c = rig("--json", "closeout", "--follower", FID, "--merge-commit", r.json["commit"])
    assert c.code == 1
    assert c.json["error"]["failedChecks"] == ["pendingFlush", "githubInSync"]
    assert c.json["error"]["hint"] == "git-mirror --node D601 flush --repo hwlab --confirm --wait"


def test_no_wait_returns_running_and_one_run_at_a_time(rig: Rig) -> None:
    rig.fake.run_pipelines = False  # the fake's PipelineRuns stay running; its Jobs still run
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm")
    assert r.code == 0, r.stdout
    name = r.json["run"]["name"]
    assert r.json["run"]["status"] == "running" and r.json["commit"]
    assert r.json["flushAfter"] is None
    assert "follower status --follower" in r.json["hint"]
    # a run that is still going: a second trigger is busy, cleanup refuses it
    busy = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert busy.code == 1 and busy.json["error"]["code"] == "busy"
    refused = rig("--json", "cleanup-runs", "--pipeline-run", name, "--confirm")
    assert refused.code == 1 and refused.json["error"]["code"] == "run-running"
    st = rig("--json", "follower", "status", "--follower", FID)
    assert st.code == 0, st.stdout
    assert st.json["run"] == {"name": name, "status": "running"} and st.json["running"] == [name]
    kept = rig("--json", "follower", "cleanup-state", "--follower", FID, "--confirm")
    assert kept.json["kept"] == [{"run": name, "reason": "running"}] and not kept.json["removed"]
    # status --wait waits (bounded) for the run to finish
    done = {"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}],
            "completionTime": "2026-01-01T00:00:00Z"}
    timer = threading.Timer(1.0, rig.fake.set_status,
                            ("tekton.dev/v1", "PipelineRun", name, NS, done))
    timer.start()
    try:
        waited = rig("--json", "follower", "status", "--follower", FID, "--wait")
    finally:
        timer.join()
    assert waited.code == 0 and waited.json["run"] == {"name": name, "status": "succeeded"}
    assert waited.json["running"] == []


def test_status_list_and_cleanup_state(rig: Rig) -> None:
    first = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert first.code == 0, first.stdout
    rig.mode("fail")
    second = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert second.code == 1
    st = rig("--json", "follower", "status", "--follower", FID)
    assert st.code == 0, st.stdout
    d = st.json
    tip = rig.upstream.rev("refs/heads/main")
    assert d["run"] == {"name": second.json["run"]["name"], "status": "failed"}
    assert d["runs"] == 2 and d["branchTip"] == tip and d["snapshotRef"] == SNAP + str(tip)
    assert d["lane"]["mirrorCommit"] == rig.upstream.rev(LANE)
    assert d["pendingFlush"] is False and d["githubInSync"] is True
    ls = rig("--json", "follower", "list")
    assert ls.code == 0
    assert ls.json["followers"][0]["lastRun"]["status"] == "failed"
    dry = rig("--json", "follower", "cleanup-state", "--follower", FID)
    assert dry.json["dryRun"] is True and len(dry.json["wouldRemove"]) == 6
    assert len(rig.runs()) == 2
    done = rig("--json", "follower", "cleanup-state", "--follower", FID, "--confirm")
    assert done.code == 0 and len(done.json["removed"]) == 6
    assert not rig.runs() and not rig.fake.list("tekton.dev/v1", "TaskRun", NS, {})


def test_missing_pipeline_fails_the_run(rig: Rig) -> None:
    rig.fake.delete("tekton.dev/v1", "Pipeline", "hwlab-build", NS)
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert r.code == 1
    assert r.json["run"]["status"] == "failed" and r.json["run"]["reason"] == "CouldntGetPipeline"


def test_a_build_cannot_move_a_source_branch(rig: Rig) -> None:
    rig.mode("push-source")
    r = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert r.code == 1 and r.json["run"]["status"] == "failed"
    tip = rig.upstream.rev("refs/heads/main")
    main = run_git("--git-dir", str(rig.mirror()), "rev-parse", "refs/heads/main")
    assert main.stdout.decode().strip() == tip


def test_exec_follower_on_a_kubernetes_node_is_not_supported(
        fake: FakeKube, write_config: Callable[..., Path], upstream: Repo) -> None:
    extra = ("followers:\n  f:\n    repository: hwlab\n    branch: main\n    lane: v03\n"
             "    trigger: {exec: [./ci/build.sh]}\n")
    config = write_config(KUBE_CONFIG.format(url=upstream.url) + extra)
    r = run_cli("--config", config, "--node", "D601", "--json", "follower", "trigger",
                "--follower", "f", "--confirm", "--wait")
    assert r.code == 1 and r.json["error"]["code"] == "not-supported"
    assert "--node local" in r.json["error"]["hint"]
    assert not fake.calls


@pytest.mark.parametrize(("tekton", "key"), [
    ("{pipeline: p, params: {commit: x}}", "params.commit"),
    ("{pipeline: p, workspaces: {w: {emptyDir: true, secret: s}}}", "workspaces.w"),
    ("{pipeline: p, workspaces: {w: {}}}", "workspaces.w"),
    ("{pipeline: p, timeout: soon}", "timeout"),
    ("{pipeline: p, serviceAccount: sa}", "serviceAccount"),
])
def test_tekton_config_errors(write_config: Callable[..., Path], upstream: Repo, tekton: str,
                              key: str) -> None:
    extra = ("followers:\n  f:\n    repository: hwlab\n    branch: main\n    lane: v03\n"
             f"    trigger: {{tekton: {tekton}}}\n")
    config = write_config(KUBE_CONFIG.format(url=upstream.url) + extra)
    r = run_cli("--config", config, "--json", "validate")
    assert r.code == 2, r.stdout
    assert key in r.json["error"]["message"]


def test_a_tekton_follower_id_is_a_label_value(write_config: Callable[..., Path],
                                               upstream: Repo) -> None:
    """PipelineRuns carry the follower id as a label value: one an API server refuses is a
    config error, at its line."""
    extra = ("followers:\n  build-:\n    repository: hwlab\n    branch: main\n    lane: v03\n"
             "    trigger: {tekton: {pipeline: p}}\n")
    text = KUBE_CONFIG.format(url=upstream.url) + extra
    config = write_config(text)
    r = run_cli("--config", config, "--json", "validate")
    assert r.code == 2, r.stdout
    err = r.json["error"]
    assert err["code"] == "config" and err["key"] == "followers.build-"
    assert err["line"] == text.splitlines().index("  build-:") + 1
    assert "label value" in err["message"] and "'build'" in err["hint"]
    ok = write_config(text.replace("  build-:", "  build-1:"), name="ok.yaml")
    assert run_cli("--config", ok, "--json", "validate").code == 0


def test_each_trigger_drops_finished_runs_beyond_the_kept_ones(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(followers, "KEEP_RUNS", 0)
    first = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert first.code == 0, first.stdout
    second = rig("--json", "follower", "trigger", "--follower", FID, "--confirm", "--wait")
    assert second.code == 0, second.stdout
    assert second.json["pruned"] == [first.json["run"]["name"]]
    assert [r["metadata"]["name"] for r in rig.runs()] == [second.json["run"]["name"]]
    assert second.json["trigger"]["tekton"]["serviceAccountName"] == "hwlab-builder"
