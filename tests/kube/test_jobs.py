"""``sync``/``flush``/``status`` on a kubernetes node, as Jobs on the FAKE API server.

The fake (tests/support/fakekube.py) is not a cluster: it runs a Job's ``git-mirror`` command
here in a subprocess, with the ConfigMap's file, the PVC (a directory that outlives pods) and
the Secrets laid out as the pod would see them. So ``--node D601 sync --confirm --wait``
really syncs, against a real upstream repository, into the cache the PVC holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from git_mirror.config import load_config
from git_mirror.errors import GitMirrorError
from git_mirror.kube import jobs, render
from git_mirror.kube.jobs import run_job
from git_mirror.kube.result import MESSAGE_LIMIT, compact
from tests.support.cli import CliResult
from tests.support.fakekube import FakeKube
from tests.support.gitutil import Repo, run_git

NS = "devops-infra"


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.05)


@pytest.fixture
def applied(fake: FakeKube, kcli: Callable[..., CliResult]) -> FakeKube:
    r = kcli("--node", "D601", "apply", "--confirm")
    assert r.code == 0, r.stderr
    fake.add_secret(NS, "git-mirror-tokens", {"ci": "s3cr3t-token-value"})
    fake.calls.clear()
    return fake


def cache_repo(fake: FakeKube) -> Path:
    return fake.volume_dir(NS, "git-mirror-d601-cache") / "repos" / "hwlab.git"


def test_sync_dry_run_creates_no_job(fake: FakeKube, kcli: Callable[..., CliResult]) -> None:
    r = kcli("--node", "D601", "--json", "sync")
    assert r.code == 0, r.stdout
    d = r.json
    assert d["dryRun"] is True
    assert d["wouldCreate"]["kind"] == "Job"
    cmd = d["wouldCreate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[-4:] == ["--json", "sync", "--confirm", "--wait"]
    assert not fake.calls
    human = kcli("--node", "D601", "sync")
    assert "would create Job devops-infra/git-mirror-d601-sync-" in human.stdout


def test_sync_confirm_wait_really_syncs_in_the_pvc(applied: FakeKube,
                                                   kcli: Callable[..., CliResult],
                                                   upstream: Repo, kube_config: Path) -> None:
    r = kcli("--node", "D601", "--json", "sync", "--confirm", "--wait")
    assert r.code == 0, r.stdout + r.stderr
    d = r.json
    assert d["ok"] is True and d["dryRun"] is False and d["node"] == "D601"
    assert d["job"]["status"] == "succeeded" and d["executor"] == "kubernetes"
    main = upstream.rev("refs/heads/main")
    assert {"ref": f"refs/unidesk/snapshots/hwlab-node-runtime/main/{main}", "commit": main,
            "repository": "hwlab"} in d["snapshots"]
    assert any(u["ref"] == "refs/heads/main" for u in d["updated"])
    # the refs are in the cache the PVC holds, and nowhere near the operator's own cache
    out = run_git("--git-dir", str(cache_repo(applied)), "rev-parse",
                  "refs/heads/main").stdout.decode().strip()
    assert out == main
    assert not (kube_config.parent / ".git-mirror" / "repos").exists()
    # the pod ran the CLI with the ConfigMap's file, at the path the manifests give it
    pod = applied.list("v1", "Pod", NS, {"job-name": d["job"]["name"]})[0]
    assert pod["status"]["phase"] == "Succeeded"
    assert "/etc/git-mirror/git-mirror.yaml" in pod["spec"]["containers"][0]["command"]

    # status reads that cache through a Job too
    s = kcli("--node", "D601", "--json", "status")
    assert s.code == 0, s.stdout
    st = s.json
    assert st["node"] == "D601" and st["configApplied"] is True
    assert st["config"]["path"] == "/etc/git-mirror/git-mirror.yaml" or \
        st["config"]["path"].endswith("/etc/git-mirror/git-mirror.yaml")
    repo = st["repositories"][0]
    assert repo["sources"][0]["mirrorCommit"] == main
    assert st["githubInSync"] is True
    human = kcli("--node", "D601", "status")
    assert "node D601" in human.stdout and "hwlab" in human.stdout


def test_flush_confirm_wait_pushes_a_lane(applied: FakeKube, kcli: Callable[..., CliResult],
                                          upstream: Repo) -> None:
    assert kcli("--node", "D601", "sync", "--confirm", "--wait").code == 0
    mirror = cache_repo(applied)
    lane = upstream.rev("refs/heads/gitops/v03")
    assert lane
    tree = run_git("--git-dir", str(mirror), "rev-parse",
                   f"{lane}^{{tree}}").stdout.decode().strip()
    new = run_git("--git-dir", str(mirror), "commit-tree", tree, "-p", lane, "-m", "deploy",
                  env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                       "GIT_COMMITTER_EMAIL": "t@x"}).stdout.decode().strip()
    run_git("--git-dir", str(mirror), "update-ref", "refs/heads/gitops/v03", new, lane)
    r = kcli("--node", "D601", "--lane", "v03", "--json", "flush", "--confirm", "--wait")
    assert r.code == 0, r.stdout
    assert r.json["pendingFlush"] is False
    assert r.json["pushed"][0]["to"] == new
    assert upstream.rev("refs/heads/gitops/v03") == new
    pod = applied.list("v1", "Pod", NS, {"git-mirror/operation": "flush"})[0]
    cmd = pod["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--lane") + 1] == "v03"


def test_a_failing_job_fails_the_command(applied: FakeKube, kcli: Callable[..., CliResult],
                                         upstream: Repo) -> None:
    upstream.path.rename(upstream.path.with_name("gone.git"))
    r = kcli("--node", "D601", "--json", "sync", "--confirm", "--wait")
    assert r.code == 1
    assert r.json["ok"] is False and r.json["job"]["status"] == "failed"
    assert r.json["error"]["code"]


def test_no_wait_returns_the_running_job(fake: FakeKube, kcli: Callable[..., CliResult]) -> None:
    fake.autorun = False
    assert kcli("--node", "D601", "apply", "--confirm").code == 0
    r = kcli("--node", "D601", "--json", "sync", "--confirm")
    assert r.code == 0
    d = r.json
    assert d["status"] == "running" and d["job"]["status"] == "running"
    job = fake.get("batch/v1", "Job", d["job"]["name"], NS)
    assert job is not None and job["status"]["active"] == 1
    assert len(d["job"]["name"]) <= 63


def test_wait_is_bounded(fake: FakeKube, kube_config: Path) -> None:
    fake.autorun = False
    cfg = load_config(kube_config)
    from git_mirror.kube.apply import apply_kubernetes

    apply_kubernetes(cfg, node="D601", confirm=True)
    with pytest.raises(GitMirrorError) as err:
        run_job(cfg, node="D601", operation="sync", args=["--confirm", "--wait"], confirm=True,
                wait=True, timeout=0.3)
    assert err.value.code == "timeout"
    assert "kubectl --context d601 -n devops-infra logs job/" in (err.value.hint or "")


def test_not_applied_and_drift(fake: FakeKube, kcli: Callable[..., CliResult],
                               kube_config: Path) -> None:
    r = kcli("--node", "D601", "--json", "sync", "--confirm", "--wait")
    assert r.code == 1 and r.json["error"]["code"] == "not-applied"
    assert r.json["error"]["hint"] == "git-mirror --node D601 apply --confirm"
    s = kcli("--node", "D601", "--json", "status")
    assert s.code == 1 and s.json["error"]["code"] == "not-applied"
    assert kcli("--node", "D601", "apply", "--confirm").code == 0
    kube_config.write_text(kube_config.read_text() + "# changed\n")
    r = kcli("--node", "D601", "--json", "flush", "--confirm", "--wait")
    assert r.code == 1 and r.json["error"]["code"] == "drift"
    assert not fake.list("batch/v1", "Job", NS, {})


def test_missing_secret_leaves_the_pod_pending(fake: FakeKube, kube_config: Path) -> None:
    """No Secret git-mirror-tokens: the pod cannot start, the Job never ends, wait times out."""
    cfg = load_config(kube_config)
    from git_mirror.kube.apply import apply_kubernetes

    apply_kubernetes(cfg, node="D601", confirm=True)
    with pytest.raises(GitMirrorError) as err:
        run_job(cfg, node="D601", operation="sync", args=["--confirm", "--wait"], confirm=True,
                wait=True, timeout=1.0)
    assert err.value.code == "timeout"
    pods = fake.list("v1", "Pod", NS, {"git-mirror/operation": "sync"})
    assert pods and pods[0]["status"]["phase"] == "Pending"


def test_no_secret_value_in_job_or_output(applied: FakeKube,
                                          kcli: Callable[..., CliResult]) -> None:
    r = kcli("--node", "D601", "--json", "sync", "--confirm", "--wait")
    assert r.code == 0
    job = applied.list("batch/v1", "Job", NS, {})[0]
    assert "s3cr3t-token-value" not in str(job)
    assert "s3cr3t-token-value" not in r.stdout + r.stderr


def test_undeclared_repo_is_a_usage_error_before_any_job(applied: FakeKube,
                                                         kcli: Callable[..., CliResult]) -> None:
    r = kcli("--node", "D601", "--json", "sync", "--repo", "nope", "--confirm", "--wait")
    assert r.code == 2 and r.json["error"]["code"] == "usage"
    assert not applied.list("batch/v1", "Job", NS, {})


def test_sync_one_repo_passes_repo_to_the_job(applied: FakeKube,
                                              kcli: Callable[..., CliResult]) -> None:
    r = kcli("--node", "D601", "--json", "sync", "--repo", "hwlab", "--confirm", "--wait")
    assert r.code == 0, r.stdout
    assert [x["id"] for x in r.json["repositories"]] == ["hwlab"]
    job = applied.list("batch/v1", "Job", NS, {})[0]
    cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[-2:] == ["--repo", "hwlab"]


def test_local_node_sync_stays_local(fake: FakeKube, kcli: Callable[..., CliResult]) -> None:
    r = kcli("--json", "sync", "--confirm")
    assert r.code == 0 and "job" not in r.json
    assert not fake.calls


def test_the_result_is_the_termination_message(applied: FakeKube,
                                               kcli: Callable[..., CliResult]) -> None:
    r = kcli("--node", "D601", "--json", "sync", "--confirm", "--wait")
    assert r.code == 0, r.stdout + r.stderr
    pod = applied.list("v1", "Pod", NS, {"job-name": r.json["job"]["name"]})[0]
    container = pod["spec"]["containers"][0]
    assert container["terminationMessagePolicy"] == "File"
    assert {"name": "GIT_MIRROR_RESULT_FILE", "value": container["terminationMessagePath"]} \
        in container["env"]
    message = json.loads(pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    assert message["ok"] is True and message["updated"] == r.json["updated"]


def test_a_log_line_that_looks_like_a_result_is_not_one(applied: FakeKube,
                                                        kcli: Callable[..., CliResult],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod that prints ``{"ok": true}`` and dies without writing a result fails the command."""
    real = render.job_manifest  # what run_job calls, through jobs' own name for it

    def decoy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        job = real(*args, **kwargs)
        job["spec"]["template"]["spec"]["containers"][0]["command"] = [
            "sh", "-c", 'echo \'{"ok": true, "updated": []}\'; echo \'{"ok": true}\' >&2; exit 3']
        return job

    monkeypatch.setattr(jobs, "job_manifest", decoy)
    r = kcli("--node", "D601", "--json", "sync", "--confirm", "--wait")
    assert r.code == 1, r.stdout
    assert r.json["ok"] is False and r.json["error"]["code"] == "job-failed"
    assert "exitCode 3" in r.json["error"]["message"]
    assert "kubectl" in r.json["error"]["hint"] and "logs" in r.json["error"]["hint"]


def test_a_sync_result_over_4096_bytes_comes_back_shortened(applied: FakeKube,
                                                              kcli: Callable[..., CliResult],
                                                              upstream: Repo) -> None:
    main = upstream.rev("refs/heads/main")
    upstream.git("update-ref", "--stdin", input="".join(
        f"create refs/tags/t{i:03d} {main}\n" for i in range(120)).encode())
    r = kcli("--node", "D601", "--json", "sync", "--confirm", "--wait")
    assert r.code == 0, r.stdout
    assert r.json["ok"] is True and "updated" in r.json["truncated"]
    assert 0 < len(r.json["updated"]) < 120
    # the sync itself was complete: every tag is in the cache
    tags = run_git("--git-dir", str(cache_repo(applied)), "for-each-ref", "refs/tags/").stdout
    assert tags.decode().count("refs/tags/t") == 120


def test_a_large_result_fits_the_termination_message() -> None:
    big: dict[str, Any] = {
        "ok": True, "node": "D601", "pendingFlush": False,
        "updated": [{"ref": f"refs/heads/b{i}", "from": "0" * 40, "to": "1" * 40}
                    for i in range(200)],
        "snapshots": [{"ref": "refs/x", "commit": "2" * 40}]}
    text = compact(big)
    assert len(text.encode()) <= MESSAGE_LIMIT
    out = json.loads(text)
    assert out["ok"] is True and out["pendingFlush"] is False
    assert 0 < len(out["updated"]) < 200 and out["updated"] == big["updated"][:len(out["updated"])]
    assert out["truncated"] == ["updated"] and out["snapshots"] == big["snapshots"]
    assert compact({"ok": True, "x": 1}) == '{"ok":true,"x":1}'
    huge_error = {"ok": False, "error": {"code": "git", "message": "x" * 10000, "hint": "h"}}
    out = json.loads(compact(huge_error))
    assert out["error"]["code"] == "git" and len(compact(huge_error)) <= MESSAGE_LIMIT


def test_status_runs_despite_file_secrets_that_sync_refuses(applied: FakeKube, kube_config: Path,
                                                            kcli: Callable[..., CliResult]) -> None:
    """status is read-only: a {file:} secret it cannot mount is a warning, not a refusal."""
    kube_config.write_text(kube_config.read_text().replace(
        "push: true}\n", "push: true}\n  webhookSecret: {file: /etc/git-mirror/webhook-secret}\n"))
    s = kcli("--node", "D601", "--json", "status")
    assert s.code == 0, s.stdout
    assert s.json["ok"] is True and s.json["configApplied"] is False
    # no serve answers in the fake: a Job read the cache, and the result says so
    assert s.json["via"] == "job"
    [w, fallback] = s.json["warnings"]
    assert w["code"] == "secret-not-mountable" and w["key"] == "server.webhookSecret"
    assert fallback["code"] == "serve-not-running"
    human = kcli("--node", "D601", "status")
    assert human.code == 0
    assert "warning [secret-not-mountable]: " in human.stderr
    assert "server.webhookSecret" in human.stderr
    assert "warning [" not in human.stdout

    dry = kcli("--node", "D601", "--json", "sync")
    assert dry.code == 0 and [w["code"] for w in dry.json["warnings"]] == ["secret-not-mountable"]
    for op in ("sync", "flush"):
        r = kcli("--node", "D601", "--json", op, "--confirm", "--wait")
        assert r.code == 2 and r.json["error"]["code"] == "config"
        message = r.json["error"]["message"]
        assert message.count("server.webhookSecret") == 1, message
        assert message == (f"{kube_config}:10: server.webhookSecret: "
                           "file:/etc/git-mirror/webhook-secret is a file on this machine and "
                           "cannot be mounted into a pod")
    assert [p["metadata"]["labels"]["git-mirror/operation"]
            for p in applied.list("v1", "Pod", NS, {})] == ["status", "status"]


@pytest.mark.parametrize("node", ["D601", "local"])
def test_undeclared_lane_is_a_usage_error_before_anything(fake: FakeKube,
                                                          kcli: Callable[..., CliResult],
                                                          node: str) -> None:
    variants: tuple[list[str], ...] = ([], ["--confirm", "--wait"],
                                       ["--repo", "hwlab", "--confirm"])
    for command, extra in [(c, e) for c in ("flush", "sync") for e in variants]:
        r = kcli("--node", node, "--lane", "nope", "--json", command, *extra)
        assert r.code == 2, r.stdout
        err = r.json["error"]
        assert err["code"] == "usage" and "lane 'nope' is not declared" in err["message"]
        assert "(declared: v03)" in err["message"]
        assert "wouldCreate" not in r.json
    assert not fake.calls  # the cluster was never asked
    ok = kcli("--node", node, "--lane", "v03", "--json", "flush")
    assert ok.json["dryRun"] is True and ok.json.get("error", {}).get("code") != "usage"


def test_dry_run_hint_keeps_the_scope_and_does_it_confirmed(applied: FakeKube, kube_config: Path,
                                                            kcli: Callable[..., CliResult]) -> None:
    import shlex

    from tests.support.cli import run_cli

    dry = kcli("--node", "D601", "--json", "sync", "--repo", "hwlab")
    assert dry.code == 0
    assert dry.json["hint"] == (f"git-mirror --config {kube_config} --node D601 sync --repo hwlab "
                                "--confirm --wait")
    done = run_cli(*shlex.split(dry.json["hint"])[1:], "--json")
    assert done.code == 0, done.stdout
    assert done.json["dryRun"] is False
    assert [x["id"] for x in done.json["repositories"]] == ["hwlab"]

    dry = kcli("--node", "D601", "--lane", "v03", "--json", "flush", "--repo", "hwlab")
    assert dry.code == 0
    assert dry.json["hint"] == (f"git-mirror --config {kube_config} --node D601 --lane v03 flush "
                                "--repo hwlab --confirm --wait")
    done = run_cli(*shlex.split(dry.json["hint"])[1:], "--json")
    assert done.code == 0, done.stdout
    assert done.json["dryRun"] is False and done.json["lane"] == "v03"
    pod = applied.list("v1", "Pod", NS, {"git-mirror/operation": "flush"})[0]
    cmd = pod["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--lane") + 1] == "v03" and cmd[-2:] == ["--repo", "hwlab"]


def test_dry_run_hint_quotes_the_config_path(fake: FakeKube, write_config: Callable[..., Path],
                                             kube_config: Path) -> None:
    from tests.support.cli import run_cli

    path = write_config(kube_config.read_text(), name="my configs/k.yaml")
    r = run_cli("--config", path, "--node", "D601", "--json", "flush")
    assert r.code == 0
    assert r.json["hint"] == f"git-mirror --config '{path}' --node D601 flush --confirm --wait"
    # without --config the hint has none (the config is found the same way again)
    from git_mirror.kube.jobs import run_job

    plain = run_job(load_config(path), node="D601", operation="flush", args=["--confirm", "--wait"],
                    confirm=False, wait=False)
    assert plain["hint"] == "git-mirror --node D601 flush --confirm --wait"
