"""``render``: manifests of a kubernetes node, validated offline for real with kubernetes-validate.

No API server is involved here (render is pure).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from git_mirror import __version__
from git_mirror.config import load_config
from git_mirror.kube.render import (
    MOUNT_ROOT,
    SHA_ANNOTATION,
    dns_label,
    job_manifest,
    manifests,
    render_node,
)
from tests.support.cli import CliResult, run_cli
from tests.support.fakekube import label_problem

# The oldest and the newest schemas the installed kubernetes-validate ships.
VERSIONS = [kubernetes_validate.utils.all_versions()[0], kubernetes_validate.utils.latest_version()]
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


SSH_REPO = """\
  infra:
    upstream: ssh://git@ssh.github.com:443/example/infra.git
    transport:
      mode: ssh
      identity: {kubernetes: {name: infra-ssh, key: id_ed25519}}
      knownHosts: {kubernetes: {name: infra-ssh, key: known_hosts}}
    sources:
      - branch: main
"""


@pytest.fixture
def ssh_config(write_config: Callable[..., Path], kube_config: Path) -> Path:
    """The kube config plus an SSH repository that goes through the node's proxy."""
    text = kube_config.read_text().replace("nodes:\n", SSH_REPO + "nodes:\n")
    return write_config(text, name="ssh/git-mirror.yaml")


def validate_all(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        assert label_problem(doc) is None, label_problem(doc)
        name = doc["metadata"]["name"]
        assert DNS1123.match(name) and len(name) <= 63, name


def test_every_manifest_validates(ssh_config: Path) -> None:
    data = render_node(load_config(ssh_config), node="D601")
    kinds = [m["kind"] for m in data["manifests"]]
    assert kinds == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap",
                     "PersistentVolumeClaim", "Service", "NetworkPolicy", "Deployment"]
    validate_all([*data["manifests"], data["jobTemplate"]])
    for m in [*data["manifests"], data["jobTemplate"]]:
        labels = m["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "git-mirror"
        assert labels["app.kubernetes.io/instance"] == "D601"
        assert labels["app.kubernetes.io/managed-by"] == "git-mirror"


def test_validation_is_real(kube_config: Path) -> None:
    """The validator rejects a broken manifest, so the test above can fail."""
    docs = manifests(load_config(kube_config), "D601")
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deploy, VERSIONS[-1], strict=True)
    deploy["spec"]["replica"] = 1  # unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deploy, VERSIONS[-1], strict=True)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def test_configmap_holds_the_file_and_its_sha(kube_config: Path) -> None:
    cfg = load_config(kube_config)
    docs = manifests(cfg, "D601")
    cm = by_kind(docs, "ConfigMap")
    text = cm["data"]["git-mirror.yaml"]
    assert text == kube_config.read_text()
    assert hashlib.sha256(text.encode()).hexdigest() == cfg.sha256
    assert cm["metadata"]["annotations"][SHA_ANNOTATION] == cfg.sha256
    pod = by_kind(docs, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"][SHA_ANNOTATION] == cfg.sha256


def test_pods_roll_when_the_config_changes(kube_config: Path) -> None:
    before = by_kind(manifests(load_config(kube_config), "D601"), "Deployment")
    text = kube_config.read_text()
    kube_config.write_text(text.replace("namespace: unidesk", "namespace: other"))
    after = by_kind(manifests(load_config(kube_config), "D601"), "Deployment")
    a1 = before["spec"]["template"]["metadata"]["annotations"][SHA_ANNOTATION]
    a2 = after["spec"]["template"]["metadata"]["annotations"][SHA_ANNOTATION]
    assert a1 != a2


def test_deterministic(kube_config: Path) -> None:
    cfg = load_config(kube_config)
    assert render_node(cfg, node="D601")["yaml"] == render_node(cfg, node="D601")["yaml"]


def test_deployment_serves_with_probes_grace_and_secret_mounts(kube_config: Path) -> None:
    docs = manifests(load_config(kube_config), "D601")
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == f"git-mirror:{__version__}"  # the tag scripts/build-image.sh gives
    assert c["command"][-1] == "serve" and "--node" in c["command"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["ports"][0]["containerPort"] == 8080
    assert pod["terminationGracePeriodSeconds"] >= 30
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert f"{MOUNT_ROOT}/git-mirror-tokens" in mounts
    secret_vol = next(v for v in pod["volumes"] if "secret" in v)
    assert secret_vol["secret"] == {"secretName": "git-mirror-tokens", "defaultMode": 0o440,
                                    "items": [{"key": "ci", "path": "ci"}]}
    # the cache: the PVC, where the config (at /etc/git-mirror) puts it by default
    cache = next(m for m in c["volumeMounts"] if m["name"] == "cache")
    assert cache["mountPath"] == "/etc/git-mirror/.git-mirror"
    assert by_kind(docs, "PersistentVolumeClaim")["spec"]["storageClassName"] == "fast"
    pvc = by_kind(docs, "PersistentVolumeClaim")["spec"]
    assert pvc["resources"]["requests"]["storage"] == "20Gi"
    svc = by_kind(docs, "Service")["spec"]
    assert svc["ports"][0]["port"] == 8080
    assert svc["selector"] == by_kind(docs, "Deployment")["spec"]["selector"]["matchLabels"]


def test_network_policy_allows_only_the_declared_proxy(ssh_config: Path, kube_config: Path) -> None:
    np = by_kind(manifests(load_config(ssh_config), "D601"), "NetworkPolicy")["spec"]
    assert np["policyTypes"] == ["Egress"]
    assert np["egress"] == [{"to": [{"ipBlock": {"cidr": "10.20.30.40/32"}}],
                             "ports": [{"protocol": "TCP", "port": 3128}]}]
    # a file:// upstream reaches nothing over the network: no policy to hold it to
    assert "NetworkPolicy" not in [m["kind"] for m in manifests(load_config(kube_config), "D601")]


def test_proxy_by_host_name_is_allowed_by_port_with_dns(write_config: Callable[..., Path],
                                                        ssh_config: Path) -> None:
    text = ssh_config.read_text().replace("http://10.20.30.40:3128", "http://proxy.corp.example:3128")
    warnings: list[dict[str, str]] = []
    docs = manifests(load_config(write_config(text, name="h/git-mirror.yaml")), "D601", warnings)
    validate_all(docs)
    egress = by_kind(docs, "NetworkPolicy")["spec"]["egress"]
    assert egress[0] == {"ports": [{"protocol": "TCP", "port": 3128}]}
    assert egress[1]["ports"][0]["port"] == 53
    assert [w["code"] for w in warnings] == ["egress-by-port"]


def test_no_proxy_no_network_policy(write_config: Callable[..., Path], ssh_config: Path) -> None:
    text = ssh_config.read_text().replace("    egressProxy: corp\n", "")
    cfg = load_config(write_config(text, name="n/git-mirror.yaml"))
    assert "NetworkPolicy" not in [m["kind"] for m in manifests(cfg, "D601")]


def test_secret_refs_file_warns_env_from_secret(write_config: Callable[..., Path],
                                                kube_config: Path) -> None:
    text = kube_config.read_text().replace(
        "    ci: {secretRef: {kubernetes: {name: git-mirror-tokens, key: ci}}, push: true}",
        "    ci: {secretRef: {file: /etc/git-mirror/ci-token}, push: true}\n"
        "  webhookSecret: {env: HOOK_SECRET}")
    cfg = load_config(write_config(text))
    warnings: list[dict[str, str]] = []
    docs = manifests(cfg, "D601", warnings)
    validate_all(docs)
    assert [w["code"] for w in warnings] == ["secret-not-mountable"]
    assert "server.tokens.ci.secretRef" in warnings[0]["message"]
    assert warnings[0]["at"].endswith(":9")
    env = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HOOK_SECRET", "valueFrom": {"secretKeyRef": {
        "name": "git-mirror-d601-env", "key": "HOOK_SECRET"}}} in env


def test_yaml_stream_round_trips(kube_config: Path) -> None:
    data = render_node(load_config(kube_config), node="D601")
    docs = list(YAML(typ="safe").load_all(data["yaml"]))
    assert docs == data["manifests"]


def test_job_template(kube_config: Path) -> None:
    job = job_manifest(load_config(kube_config), "D601", "flush", ["--confirm", "--wait"],
                       "git-mirror-d601-flush-x", global_args=["--lane", "v03"])
    validate_all([job])
    cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--lane") + 1] == "v03" and cmd.index("--lane") < cmd.index("flush")
    assert cmd[-3:] == ["flush", "--confirm", "--wait"] and "--json" in cmd
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_names_are_dns_labels() -> None:
    assert dns_label("D601") == "d601"
    assert dns_label("a_b") != dns_label("a.b")
    long = dns_label("x" * 100, 32)
    assert len(long) <= 32 and DNS1123.match(long)


def test_cli_render_yaml_and_json(ssh_config: Path) -> None:
    def kcli(*args: str) -> CliResult:
        return run_cli("--config", ssh_config, *args)
    human = kcli("--node", "D601", "render")
    assert human.code == 0, human.stderr
    assert human.stdout.startswith("apiVersion: v1\nkind: Namespace")
    as_json = kcli("--node", "D601", "--json", "render")
    assert as_json.code == 0
    d = as_json.json
    assert d["ok"] is True and d["node"] == "D601" and len(d["manifests"]) == 9
    assert "yaml" not in d


def test_cli_render_prints_warnings_on_stderr(write_config: Callable[..., Path],
                                              kube_config: Path) -> None:
    """Human mode: stdout is the manifests only, each warning goes to stderr with where it is."""
    text = kube_config.read_text().replace(
        "listen: 0.0.0.0:8080", "listen: 127.0.0.1:8080").replace(
        "{kubernetes: {name: git-mirror-tokens, key: ci}}", "{file: /etc/git-mirror/ci-token}")
    path = write_config(text, name="w/git-mirror.yaml")
    r = run_cli("--config", path, "--node", "D601", "render")
    assert r.code == 0, r.stderr
    docs = list(YAML(typ="safe").load_all(r.stdout))
    assert docs == render_node(load_config(path), node="D601")["manifests"]
    assert "warning [listen-loopback]: " + f"{path}:7: server.listen is 127.0.0.1:8080" in r.stderr
    assert f"warning [secret-not-mountable]: {path}:9: server.tokens.ci.secretRef: " in r.stderr
    assert "  hint: server: {listen: 0.0.0.0:8080}" in r.stderr
    assert "warning [" not in r.stdout
    as_json = run_cli("--config", path, "--node", "D601", "--json", "render")
    codes = [w["code"] for w in as_json.json["warnings"]]
    assert codes == ["secret-not-mountable", "listen-loopback"]
    assert as_json.stderr == ""


def test_cli_render_local_node_is_usage_error(kcli: Callable[..., CliResult]) -> None:
    r = kcli("--node", "local", "--json", "render")
    assert r.code == 2
    assert r.json["error"]["code"] == "usage"


def test_cli_render_no_secret_values(kube_config: Path) -> None:
    """Only references reach manifests; a value planted in a secret file never does."""
    r = run_cli("--config", kube_config, "--node", "D601", "render")
    assert "kind: Secret\n" not in r.stdout
    assert "secretName: git-mirror-tokens" in r.stdout


@pytest.mark.parametrize("name", ["D601_", "D601-", "d601."])
def test_kubernetes_node_name_must_be_a_label_value(write_config: Callable[..., Path],
                                                    kube_config: Path, name: str) -> None:
    """The name is app.kubernetes.io/instance as is; a value an API server refuses is a config
    error."""
    text = kube_config.read_text().replace("  D601:\n", f"  {name}:\n")
    path = write_config(text, name="bad/git-mirror.yaml")
    line = text.splitlines().index(f"  {name}:") + 1
    for args in (["validate"], ["--node", name, "render"]):
        r = run_cli("--config", path, "--json", *args)
        assert r.code == 2, r.stdout
        err = r.json["error"]
        assert err["code"] == "config" and err["key"] == f"nodes.{name}" and err["line"] == line
        assert err["message"].startswith(f"{path}:{line}: nodes.{name}: ")
        assert "must begin and end with a letter or digit" in err["message"]
        assert "'D601'" in err["hint"] or "'d601'" in err["hint"]


def test_node_names_that_are_label_values_render(write_config: Callable[..., Path],
                                                 kube_config: Path) -> None:
    text = kube_config.read_text().replace("  D601:\n", "  d.601_x-Y:\n").replace(
        "  local: {executor: local}\n", "  local_: {executor: local}\n")
    cfg = load_config(write_config(text, name="ok/git-mirror.yaml"))
    docs = manifests(cfg, "d.601_x-Y")
    validate_all(docs)
    assert {d["metadata"]["labels"]["app.kubernetes.io/instance"] for d in docs} == {"d.601_x-Y"}


@pytest.mark.parametrize(("url", "codes"), [
    ("http://127.0.0.1:3128", ["proxy-loopback"]),
    ("http://127.8.9.10:3128", ["proxy-loopback"]),
    ("http://[::1]:3128", ["proxy-loopback"]),
    ("http://localhost:3128", ["proxy-loopback", "egress-by-port"]),
])
def test_loopback_proxy_warns(write_config: Callable[..., Path], ssh_config: Path, url: str,
                              codes: list[str]) -> None:
    """In a pod, a loopback proxy is the pod itself: the NetworkPolicy would hold egress to it."""
    path = write_config(ssh_config.read_text().replace("http://10.20.30.40:3128", f'"{url}"'),
                        name="l/git-mirror.yaml")
    data = render_node(load_config(path), node="D601")
    assert [w["code"] for w in data["warnings"]] == codes
    w = data["warnings"][0]
    assert w["at"] == f"{path}:5" and w["key"] == "proxies.corp.url"
    assert w["message"].startswith(f"proxies.corp.url is {url}: in a pod, ")
    human = run_cli("--config", path, "--node", "D601", "render")
    assert human.code == 0
    assert f"warning [proxy-loopback]: {path}:5: proxies.corp.url is {url}" in human.stderr


def test_proxy_reached_by_address_does_not_warn(ssh_config: Path) -> None:
    assert render_node(load_config(ssh_config), node="D601")["warnings"] == []
