"""The real client (lightkube) over HTTP, against a tiny recording HTTP endpoint on 127.0.0.1.

The endpoint is a stub, not an API server: it records each request and answers with the
object it was sent (or a 404 Status). What is tested is the request lightkube makes for
git-mirror: verbs, paths, the server-side apply content type, field manager and force.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from lightkube.codecs import from_dict

from git_mirror.config import load_config
from git_mirror.kube.client import KubeError, LightkubeClient
from git_mirror.kube.render import render_node


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        parts = urlsplit(self.path)
        entry = {"method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                 "contentType": self.headers.get("Content-Type"), "body": body}
        self.seen.append(entry)
        return entry

    def do_GET(self) -> None:
        self._record()
        self._answer(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "message": "not found", "reason": "NotFound", "code": 404})

    def do_DELETE(self) -> None:
        self._record()
        self._answer(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def do_PATCH(self) -> None:
        entry = self._record()
        obj = dict(entry["body"])
        obj["metadata"] = {**obj["metadata"], "resourceVersion": "7"}
        self._answer(200, obj)


@pytest.fixture
def endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    handler = type("H", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{server.server_port}'}}}}]\n"
        "contexts: [{name: d601, context: {cluster: c, user: u}},\n"
        "           {name: other, context: {cluster: x, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    yield seen
    server.shutdown()
    thread.join(10)


def test_server_side_apply_request(endpoint: list[dict[str, Any]], kube_config: Path) -> None:
    docs = render_node(load_config(kube_config), node="D601")["manifests"]
    client = LightkubeClient(context="d601", namespace="devops-infra")
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    out = client.apply(deploy, dry_run=True)
    assert out["metadata"]["resourceVersion"] == "7"
    req = endpoint[-1]
    assert req["method"] == "PATCH"
    assert req["path"] == "/apis/apps/v1/namespaces/devops-infra/deployments/git-mirror-d601"
    assert req["contentType"] == "application/apply-patch+yaml"
    assert req["query"]["fieldManager"] == ["git-mirror"]
    assert req["query"]["force"] == ["true"]
    assert req["query"]["dryRun"] == ["All"]
    assert req["body"] == deploy
    ns = client.apply(docs[0])
    assert endpoint[-1]["path"] == "/api/v1/namespaces/devops-infra"
    assert "dryRun" not in endpoint[-1]["query"]
    assert ns["kind"] == "Namespace"


def test_get_404_is_none(endpoint: list[dict[str, Any]]) -> None:
    client = LightkubeClient(context="d601", namespace="devops-infra")
    assert client.get("v1", "ConfigMap", "git-mirror-d601-config", "devops-infra") is None
    assert endpoint[-1]["path"] == ("/api/v1/namespaces/devops-infra/configmaps/"
                                    "git-mirror-d601-config")
    with pytest.raises(KubeError) as err:
        client.create({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "x", "namespace": "devops-infra"}})
    assert err.value.status == 501  # the stub has no POST


def test_every_rendered_object_is_a_lightkube_model(kube_config: Path) -> None:
    data = render_node(load_config(kube_config), node="D601")
    for doc in [*data["manifests"], data["jobTemplate"]]:
        assert from_dict(doc).to_dict() == doc


def test_custom_resources_paths(endpoint: list[dict[str, Any]]) -> None:
    """Tekton and Argo CD kinds are known to the real client (generic resources)."""
    client = LightkubeClient(context="d601", namespace="devops-infra")
    assert client.get("tekton.dev/v1", "PipelineRun", "run-1", "devops-infra") is None
    assert endpoint[-1]["path"] == "/apis/tekton.dev/v1/namespaces/devops-infra/pipelineruns/run-1"
    assert client.get("argoproj.io/v1alpha1", "Application", "app", "argocd") is None
    assert endpoint[-1]["path"] == "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/app"
    client.delete("tekton.dev/v1", "TaskRun", "run-1-build", "devops-infra")
    assert endpoint[-1]["method"] == "DELETE"
    assert endpoint[-1]["path"] == ("/apis/tekton.dev/v1/namespaces/devops-infra/taskruns/"
                                    "run-1-build")
    run = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
           "metadata": {"name": "run-1", "namespace": "devops-infra"},
           "spec": {"pipelineRef": {"name": "p"}, "params": [{"name": "commit", "value": "abc"}]}}
    assert from_dict(run).to_dict() == run
