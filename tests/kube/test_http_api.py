"""The real client (lightkube, through a kubeconfig) against the FAKE API server over HTTP.

The API server is :mod:`tests.support.kubehttp` (the fake of tests/support/fakekube.py served
on 127.0.0.1), not a cluster. What runs for real here is lightkube's HTTP path: server-side
apply requests and their answers, ``Status`` error bodies mapped to :class:`KubeError`
(404, 409, 422), the pod's termination message read back, the service proxy.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from git_mirror.config import load_config
from git_mirror.kube import jobs
from git_mirror.kube.client import KubeError, LightkubeClient
from git_mirror.kube.render import render_node
from tests.support.cli import CliResult
from tests.support.gitutil import Repo
from tests.support.kubehttp import KubeHttp
from tests.support.server import serve_in_thread

NS = "devops-infra"
DEPLOY = "/apis/apps/v1/namespaces/devops-infra/deployments/git-mirror-d601"


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.05)


@pytest.fixture
def applied(kube_http: KubeHttp, kcli: Callable[..., CliResult]) -> KubeHttp:
    r = kcli("--node", "D601", "--json", "apply", "--confirm")
    assert r.code == 0, r.stdout + r.stderr
    kube_http.fake.add_secret(NS, "git-mirror-tokens", {"ci": "s3cr3t-token-value"})
    return kube_http


def client() -> LightkubeClient:
    return LightkubeClient(context="d601", namespace=NS)


def managers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["manager"]: m for m in obj["metadata"].get("managedFields") or []}


def test_apply_twice_over_http_changes_nothing_the_second_time(
        kube_http: KubeHttp, kcli: Callable[..., CliResult]) -> None:
    first = kcli("--node", "D601", "--json", "apply", "--confirm")
    assert first.code == 0, first.stdout + first.stderr
    assert first.json["changed"] is True
    assert {m["action"] for m in first.json["manifests"]} == {"create"}
    second = kcli("--node", "D601", "--json", "apply", "--confirm")
    assert second.code == 0, second.stdout
    assert second.json["changed"] is False, second.json["manifests"]
    patches = [(p, parse_qs(q)) for m, p, q in kube_http.requests if m == "PATCH"]
    assert (DEPLOY, {"fieldManager": ["git-mirror"], "force": ["true"]}) in patches
    deploy = client().get("apps/v1", "Deployment", "git-mirror-d601", NS)
    assert deploy is not None
    mine = managers(deploy)["git-mirror"]
    assert mine["operation"] == "Apply" and "f:replicas" in mine["fieldsV1"]["f:spec"]
    dry = kcli("--node", "D601", "--json", "apply", "--dry-run")
    assert dry.code == 0 and dry.json["changed"] is False
    assert any("dryRun=All" in q for m, _, q in kube_http.requests if m == "PATCH")


def test_a_field_another_manager_owns_is_a_conflict_unless_forced(
        applied: KubeHttp, kcli: Callable[..., CliResult], kube_config: Path) -> None:
    # Another manager (an autoscaler, a person with kubectl) takes spec.replicas.
    scale = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "git-mirror-d601", "namespace": NS}, "spec": {"replicas": 3}}
    resp = httpx.patch(applied.url + DEPLOY, params={"fieldManager": "scaler", "force": "true"},
                       json=scale, headers={"Content-Type": "application/apply-patch+yaml"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["spec"]["replicas"] == 3
    deploy = next(d for d in render_node(load_config(kube_config), node="D601")["manifests"]
                  if d["kind"] == "Deployment")
    with pytest.raises(KubeError) as err:
        client().apply(deploy, force=False)
    assert err.value.status == 409 and err.value.reason == "Conflict"
    assert "scaler" in err.value.message and "spec.replicas" in err.value.message
    # apply --confirm forces: the YAML is the single authority, and owns the field again.
    r = kcli("--node", "D601", "--json", "apply", "--confirm")
    assert r.code == 0, r.stdout
    live = client().get("apps/v1", "Deployment", "git-mirror-d601", NS)
    assert live is not None and live["spec"]["replicas"] == 1
    owners = managers(live)
    assert "f:replicas" not in (owners.get("scaler", {}).get("fieldsV1", {}).get("f:spec") or {})


def test_resource_version_is_a_precondition(applied: KubeHttp) -> None:
    live = client().get("v1", "ConfigMap", "git-mirror-d601-config", NS)
    assert live is not None
    patch: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "git-mirror-d601-config", "namespace": NS,
                                          "labels": {"team": "infra"}, "resourceVersion": "1"}}
    with pytest.raises(KubeError) as err:
        client().apply(patch)
    assert err.value.status == 409 and "has been modified" in err.value.message
    patch["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    out = client().apply(patch)
    assert out["metadata"]["labels"]["team"] == "infra"
    assert out["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"]


def test_a_replace_with_a_stale_resource_version_is_a_conflict(applied: KubeHttp) -> None:
    url = applied.url + "/api/v1/namespaces/devops-infra/configmaps/git-mirror-d601-config"
    live = httpx.get(url).json()
    edited = {**live, "data": {**live["data"], "extra": "x"}}
    first = httpx.put(url, json=edited)
    assert first.status_code == 200 and first.json()["data"]["extra"] == "x"
    stale = httpx.put(url, json={**edited, "data": {**live["data"], "extra": "y"}})
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    assert httpx.get(url).json()["data"]["extra"] == "x"


def test_404_and_422_are_status_bodies(applied: KubeHttp) -> None:
    missing = applied.url + "/api/v1/namespaces/devops-infra/configmaps/nope"
    resp = httpx.delete(missing)
    assert resp.status_code == 404
    body = resp.json()
    assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404
    c = client()
    assert c.get("v1", "ConfigMap", "nope", NS) is None
    c.delete("v1", "ConfigMap", "nope", NS)  # gone already is fine
    with pytest.raises(KubeError) as err:
        c.create({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "git-mirror-d601-config", "namespace": NS}})
    assert err.value.status == 409 and err.value.reason == "AlreadyExists"
    bad = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "x", "namespace": NS, "labels": {"team": "not a label"}}}
    with pytest.raises(KubeError) as err:
        c.apply(bad)
    assert err.value.status == 422 and err.value.reason == "Invalid"
    assert "not a label" in err.value.message
    # the schema's own message, for a field of the wrong type (lightkube would refuse to
    # send it, so it goes as another client would send it)
    bad_deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "z", "namespace": NS},
                  "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}},
                           "template": {"metadata": {"labels": {"a": "b"}},
                                        "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    resp = httpx.patch(applied.url + "/apis/apps/v1/namespaces/devops-infra/deployments/z",
                       params={"fieldManager": "other"}, json=bad_deploy,
                       headers={"Content-Type": "application/apply-patch+yaml"})
    assert resp.status_code == 422
    body = resp.json()
    assert body["kind"] == "Status" and body["reason"] == "Invalid" and body["code"] == 422
    assert "spec.replicas" in body["message"]
    assert "'two' is not of type 'integer'" in body["message"]
    with pytest.raises(KubeError) as err:
        c.apply({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "y", "namespace": "no-such-namespace"}})
    assert err.value.status == 404
    resp = httpx.patch(applied.url + DEPLOY, params={"fieldManager": "x"}, json={},
                       headers={"Content-Type": "application/merge-patch+json"})
    assert resp.status_code == 415 and resp.json()["kind"] == "Status"


def test_sync_job_result_and_status_from_serve(applied: KubeHttp, kcli: Callable[..., CliResult],
                                               upstream: Repo, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake = applied.fake
    r = kcli("--node", "D601", "--json", "sync", "--confirm", "--wait")
    assert r.code == 0, r.stdout + r.stderr
    main = upstream.rev("refs/heads/main")
    assert {"ref": "refs/heads/main", "from": None, "to": main} in \
        [{k: u.get(k) for k in ("ref", "from", "to")} for u in r.json["updated"]]

    # Nothing serves the Service yet: a Job reads the status, and says so.
    jobs_before = len(fake.list("batch/v1", "Job", NS, {}))
    s = kcli("--node", "D601", "--json", "status")
    assert s.code == 0, s.stdout
    assert s.json["via"] == "job" and s.json["configApplied"] is True
    assert [w["code"] for w in s.json["warnings"]] == ["serve-not-running"]
    assert len(fake.list("batch/v1", "Job", NS, {})) == jobs_before + 1

    # serve runs (here, in a thread, on the pod's files: the ConfigMap's config, the PVC).
    pod = tmp_path / "serve-pod"
    pod.mkdir()
    cm = fake.get("v1", "ConfigMap", "git-mirror-d601-config", NS)
    assert cm is not None
    (pod / "git-mirror.yaml").write_text(cm["data"]["git-mirror.yaml"])
    os.symlink(fake.volume_dir(NS, "git-mirror-d601-cache"), pod / ".git-mirror")
    (pod / "secrets" / "git-mirror-tokens").mkdir(parents=True)
    (pod / "secrets" / "git-mirror-tokens" / "ci").write_text("s3cr3t-token-value")
    monkeypatch.setenv("GIT_MIRROR_SECRETS_DIR", str(pod / "secrets"))
    with serve_in_thread(pod / "git-mirror.yaml") as served:
        fake.service_backends[(NS, "git-mirror-d601")] = served.url
        s = kcli("--node", "D601", "--json", "status", "--repo", "hwlab")
    assert s.code == 0, s.stdout
    assert s.json["via"] == "serve" and s.json["configApplied"] is True
    assert "warnings" not in s.json or not s.json["warnings"]
    assert s.json["repositories"][0]["sources"][0]["mirrorCommit"] == main
    assert len(fake.list("batch/v1", "Job", NS, {})) == jobs_before + 1  # no new Job
    proxied = "/services/git-mirror-d601:http/proxy/api/status"
    assert any(proxied in p for _, p, _ in applied.requests)
    shutil.rmtree(pod)


def test_a_failed_status_from_serve_is_the_result(applied: KubeHttp,
                                                  kcli: Callable[..., CliResult]) -> None:
    """serve answers /api/status with 500 and its own error: that is the status, not an API
    error, and no Job runs instead."""
    body = json.dumps({"ok": False, "error": {"code": "integrity", "message": "hook replaced",
                                              "hint": "git-mirror apply --confirm"}}).encode()

    class Failing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    backend = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=backend.serve_forever, daemon=True)
    thread.start()
    try:
        applied.fake.service_backends[(NS, "git-mirror-d601")] = f"http://127.0.0.1:{backend.server_port}"
        s = kcli("--node", "D601", "--json", "status")
    finally:
        backend.shutdown()
        thread.join(10)
    assert s.code == 1, s.stdout
    assert s.json["ok"] is False and s.json["error"]["code"] == "integrity"
    assert s.json["via"] == "serve"
    assert applied.fake.list("batch/v1", "Job", NS, {}) == []


def test_a_failure_inside_the_fake_reaches_the_test(kube_http: KubeHttp,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in the fake")

    monkeypatch.setattr(kube_http.fake, "list", broken)
    with pytest.raises(KubeError) as err:
        client().list("v1", "ConfigMap", NS, {})
    assert err.value.status == 500
    assert len(kube_http.fake.errors) == 1 and "bug in the fake" in kube_http.fake.errors[0]
    with pytest.raises(AssertionError, match="bug in the fake"):
        kube_http.fake.check()
    kube_http.fake.errors.clear()
