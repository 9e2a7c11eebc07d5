"""``apply`` on a kubernetes node, against the FAKE API server of tests/support/fakekube.py.

The fake keeps objects, resourceVersions and per-manager field ownership like the API server
does for server-side apply; it is not a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from git_mirror.config import load_config
from git_mirror.errors import GitMirrorError
from git_mirror.kube.apply import apply_kubernetes, diff_paths
from git_mirror.kube.client import FIELD_MANAGER, KubeError, LightkubeClient
from tests.support.cli import CliResult
from tests.support.fakekube import FakeKube

NS = "devops-infra"


def test_dry_run_on_an_empty_cluster_creates_nothing(fake: FakeKube,
                                                     kcli: Callable[..., CliResult]) -> None:
    r = kcli("--node", "D601", "--json", "apply")
    assert r.code == 0, r.stdout
    d = r.json
    assert d["dryRun"] is True and d["changed"] is True and d["executor"] == "kubernetes"
    assert {m["action"] for m in d["manifests"]} == {"create"}
    assert fake.get("v1", "Namespace", NS, None) is None
    assert not [c for c in fake.calls if c[0] in ("apply", "create", "delete")]


def test_confirm_creates_everything_then_second_apply_changes_nothing(
        fake: FakeKube, kcli: Callable[..., CliResult]) -> None:
    first = kcli("--node", "D601", "--json", "apply", "--confirm")
    assert first.code == 0, first.stdout
    assert first.json["dryRun"] is False
    assert {m["action"] for m in first.json["manifests"]} == {"create"}
    deploy = fake.get("apps/v1", "Deployment", "git-mirror-d601", NS)
    assert deploy is not None
    assert deploy["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "serve"
    cm = fake.get("v1", "ConfigMap", "git-mirror-d601-config", NS)
    assert cm is not None and "repositories:" in cm["data"]["git-mirror.yaml"]
    versions = {m["name"] + m["kind"]: fake.get("apps/v1" if m["kind"] == "Deployment" else "v1",
                                               m["kind"], m["name"], m["namespace"])
                for m in first.json["manifests"] if m["kind"] in ("Deployment", "ConfigMap")}

    second = kcli("--node", "D601", "--json", "apply", "--confirm")
    assert second.json["changed"] is False
    assert {m["action"] for m in second.json["manifests"]} == {"unchanged"}
    for key, before in versions.items():
        assert before is not None
        kind = before["kind"]
        after = fake.get(before["apiVersion"], kind, before["metadata"]["name"], NS)
        assert after is not None, key
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    dry = kcli("--node", "D601", "--json", "apply", "--dry-run")
    assert dry.json["changed"] is False
    human = kcli("--node", "D601", "apply")
    assert "Deployment/git-mirror-d601: unchanged" in human.stdout


def test_config_change_is_an_update_of_configmap_and_deployment(
        fake: FakeKube, kcli: Callable[..., CliResult], kube_config: Path) -> None:
    assert kcli("--node", "D601", "apply", "--confirm").code == 0
    kube_config.write_text(kube_config.read_text().replace("storageSize: 20Gi", "storageSize: 30Gi")
                           .replace("namespace: unidesk", "namespace: unidesk2"))
    dry = kcli("--node", "D601", "--json", "apply").json
    actions = {m["kind"]: m for m in dry["manifests"]}
    assert actions["ConfigMap"]["action"] == "update"
    assert "data.git-mirror.yaml" in actions["ConfigMap"]["changes"]
    assert actions["Deployment"]["action"] == "update"
    assert any("annotations" in c for c in actions["Deployment"]["changes"])
    assert actions["PersistentVolumeClaim"]["changes"] == ["spec.resources.requests.storage"]
    assert actions["Service"]["action"] == "unchanged"
    cm_before = fake.get("v1", "ConfigMap", "git-mirror-d601-config", NS)
    # the dry run wrote nothing
    assert cm_before is not None and "unidesk2" not in cm_before["data"]["git-mirror.yaml"]

    done = kcli("--node", "D601", "--json", "apply", "--confirm").json
    assert {m["kind"] for m in done["manifests"] if m["action"] == "update"} == {
        "ConfigMap", "Deployment", "PersistentVolumeClaim"}
    cm = fake.get("v1", "ConfigMap", "git-mirror-d601-config", NS)
    assert cm is not None and "unidesk2" in cm["data"]["git-mirror.yaml"]


def test_labels_of_other_managers_survive_and_dropped_fields_go(
        fake: FakeKube, kcli: Callable[..., CliResult], kube_config: Path) -> None:
    assert kcli("--node", "D601", "apply", "--confirm").code == 0
    svc = fake.get("v1", "Service", "git-mirror-d601", NS)
    assert svc is not None
    fake.apply({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "git-mirror-d601", "namespace": NS,
                             "labels": {"team": "platform"}}}, manager="kubectl")
    kube_config.write_text(kube_config.read_text().replace("8080", "8081"))
    assert kcli("--node", "D601", "apply", "--confirm").code == 0
    svc = fake.get("v1", "Service", "git-mirror-d601", NS)
    assert svc is not None and svc["metadata"]["labels"]["team"] == "platform"
    assert svc["spec"]["ports"][0]["port"] == 8081
    assert svc["metadata"]["labels"]["app.kubernetes.io/instance"] == "D601"
    # a field git-mirror no longer declares goes (server-side apply semantics in the fake)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y", "namespace": NS},
          "data": {"a": "1", "b": "2"}}
    fake.apply(cm)
    fake.apply({**cm, "data": {"a": "1"}})
    live = fake.get("v1", "ConfigMap", "y", NS)
    assert live is not None and live["data"] == {"a": "1"}
    kube_config.write_text(kube_config.read_text().replace("storageClass: fast, ", ""))
    # storageClassName is immutable on a PVC: the server says so, and apply reports it
    r = kcli("--node", "D601", "--json", "apply", "--confirm")
    assert r.code == 1
    assert r.json["error"]["code"] == "kubernetes" and r.json["error"]["status"] == 422
    assert "immutable" in r.json["error"]["message"]


def test_prune_removes_what_is_no_longer_rendered_but_keeps_pvcs(
        fake: FakeKube, kcli: Callable[..., CliResult]) -> None:
    assert kcli("--node", "D601", "apply", "--confirm").code == 0
    labels = {"app.kubernetes.io/instance": "D601", "app.kubernetes.io/managed-by": "git-mirror",
              "app.kubernetes.io/name": "git-mirror"}
    fake.apply({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "git-mirror-d601-old", "namespace": NS, "labels": labels}})
    fake.apply({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "someone-elses", "namespace": NS}})
    fake.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "git-mirror-d601-oldcache", "namespace": NS, "labels": labels},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}})
    dry = kcli("--node", "D601", "--json", "apply").json
    assert dry["pruned"] == [{"kind": "ConfigMap", "name": "git-mirror-d601-old"}]
    assert fake.get("v1", "ConfigMap", "git-mirror-d601-old", NS) is not None
    done = kcli("--node", "D601", "--json", "apply", "--confirm").json
    assert done["pruned"] == [{"kind": "ConfigMap", "name": "git-mirror-d601-old"}]
    assert done["orphaned"] == ["PersistentVolumeClaim/git-mirror-d601-oldcache"]
    assert fake.get("v1", "ConfigMap", "git-mirror-d601-old", NS) is None
    assert fake.get("v1", "ConfigMap", "someone-elses", NS) is not None
    assert fake.get("v1", "PersistentVolumeClaim", "git-mirror-d601-oldcache", NS) is not None


def test_file_secret_refs_block_confirm_only(fake: FakeKube, write_config: Callable[..., Path],
                                            kube_config: Path) -> None:
    from tests.support.cli import run_cli

    text = kube_config.read_text().replace("{kubernetes: {name: git-mirror-tokens, key: ci}}",
                                           "{file: /etc/git-mirror/ci-token}")
    path = write_config(text, name="f/git-mirror.yaml")
    dry = run_cli("--config", path, "--node", "D601", "--json", "apply")
    assert dry.code == 0
    assert [w["code"] for w in dry.json["warnings"]] == ["secret-not-mountable"]
    r = run_cli("--config", path, "--node", "D601", "--json", "apply", "--confirm")
    assert r.code == 2
    assert "cannot be mounted" in r.json["error"]["message"]
    assert r.json["error"]["message"].count("server.tokens.ci.secretRef") == 1
    assert "kubernetes" in r.json["error"]["hint"]
    assert fake.get("v1", "Namespace", NS, None) is None


def test_local_node_apply_is_untouched(fake: FakeKube, kcli: Callable[..., CliResult]) -> None:
    r = kcli("--json", "apply", "--confirm")
    assert r.code == 0 and r.json["executor"] == "local"
    assert not fake.calls


def test_diff_paths() -> None:
    assert diff_paths({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 4}}) == ["a.c", "a.d"]
    assert diff_paths({"a": [1]}, {"a": [1]}) == []


def test_real_client_reports_an_unreachable_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     kube_config: Path) -> None:
    """lightkube itself, against a kubeconfig whose server is a closed local port."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: d601\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: d601, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    client = LightkubeClient(context="d601", namespace=NS)
    with pytest.raises(GitMirrorError) as err:
        client.get("v1", "ConfigMap", "x", NS)
    assert err.value.code == "kube-unreachable"
    with pytest.raises(GitMirrorError) as err2:
        LightkubeClient(context="nope", namespace=NS)
    assert err2.value.code == "kube-unreachable"
    # a dry run still prints its plan and exits 0 (CONTRACT 3), saying the cluster is unknown
    dry = apply_kubernetes(load_config(kube_config), node="D601", confirm=False).to_json()
    assert dry["ok"] is True and dry["dryRun"] is True
    assert dry["cluster"]["reachable"] is False
    assert dry["cluster"]["error"]["code"] == "kube-unreachable"
    assert {m["action"] for m in dry["manifests"]} == {"unknown"}
    with pytest.raises(GitMirrorError) as err3:
        apply_kubernetes(load_config(kube_config), node="D601", confirm=True)
    assert err3.value.code == "kube-unreachable"


def test_fake_rejects_what_the_server_would(fake: FakeKube) -> None:
    with pytest.raises(KubeError) as e404:
        fake.apply({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "x", "namespace": "nope"}})
    assert e404.value.status == 404
    with pytest.raises(KubeError) as e422:
        fake.apply({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "x", "namespace": "other"}, "data": {"k": 1}})
    assert e422.value.status == 422
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "x", "namespace": "other"}}
    fake.create(config_map)
    with pytest.raises(KubeError) as e409:
        fake.create(config_map)
    assert e409.value.status == 409
    assert FIELD_MANAGER == "git-mirror"


def test_fake_refuses_a_label_value_an_api_server_refuses(fake: FakeKube) -> None:
    """Why a kubernetes node may not be named D601_: its label value would be refused."""
    from git_mirror.kube.client import KubeError

    with pytest.raises(KubeError) as err:
        fake.apply({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "x", "labels": {"app.kubernetes.io/instance": "D601_"}}})
    assert err.value.status == 422 and "'D601_'" in str(err.value)
    assert fake.get("v1", "Namespace", "x", None) is None
