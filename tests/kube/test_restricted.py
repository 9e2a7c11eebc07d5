"""The rendered manifests are what a restricted cluster admits (validated offline, no cluster).

- Pod Security "restricted" (the Pod Security Standards, checked here rule by rule as the
  admission controller checks them) for the serve Deployment's pod and the Job template, and
  the Namespace enforces it;
- requests and limits on every container, init containers included (a ResourceQuota refuses
  a pod with a container without them);
- the NetworkPolicy's egress: the declared proxy and DNS, nothing else;
- the optional Ingress: ``/hooks/github`` and nothing else;
- every object valid for each Kubernetes version the README names (kubernetes-validate, strict).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from git_mirror.config import load_config
from git_mirror.kube.render import render_node
from tests.kube.test_render import SSH_REPO
from tests.support.cli import CliResult

# The versions docs/kubernetes.md names ("Kubernetes 1.30 to 1.37").
SUPPORTED = [f"1.{minor}.0" for minor in range(30, 38)]
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the "restricted" Pod Security Standard (v1.30+) refuses in a pod spec."""
    out: list[str] = []
    psc = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            out.append(flag)
    for vol in pod.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            out.append(f"volume {vol['name']}: {sorted(kinds)}")
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation != false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities.drop lacks ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: capabilities.add {caps.get('add')}")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"{name}: runAsNonRoot != true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile {seccomp}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{name}: hostPort")
    return out


def pod_specs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deploy = next(m for m in data["manifests"] if m["kind"] == "Deployment")
    return {"Deployment": deploy["spec"]["template"]["spec"],
            "Job": data["jobTemplate"]["spec"]["template"]["spec"]}


INGRESS = ", ingress: {host: git-mirror.example.com, className: nginx, tlsSecret: git-mirror-tls}}"


@pytest.fixture
def ssh_config(write_config: Callable[..., Path], kube_config: Path) -> Path:
    """The kube config plus an SSH repository that goes through the node's proxy."""
    text = kube_config.read_text().replace("nodes:\n", SSH_REPO + "nodes:\n")
    return write_config(text, name="ssh/git-mirror.yaml")


@pytest.fixture
def ingress_config(write_config: Callable[..., Path], ssh_config: Path) -> Path:
    text = ssh_config.read_text().replace("storageSize: 20Gi}", "storageSize: 20Gi" + INGRESS)
    return write_config(text, name="ingress/git-mirror.yaml")


def test_pods_meet_the_restricted_standard(kube_config: Path) -> None:
    data = render_node(load_config(kube_config), node="D601")
    for kind, pod in pod_specs(data).items():
        assert restricted_violations(pod) == [], kind
    ns = data["manifests"][0]
    assert ns["kind"] == "Namespace"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_restricted_check_can_fail(kube_config: Path) -> None:
    pod = pod_specs(render_node(load_config(kube_config), node="D601"))["Deployment"]
    pod["initContainers"][0]["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}
    pod["securityContext"].pop("seccompProfile")
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}})
    found = restricted_violations(pod)
    assert "apply: capabilities.drop lacks ALL" in found
    assert "git-mirror: seccompProfile None" in found
    assert any(v.startswith("volume host") for v in found)


def test_every_container_has_requests_and_limits(kube_config: Path) -> None:
    for kind, pod in pod_specs(render_node(load_config(kube_config), node="D601")).items():
        for c in [*(pod.get("initContainers") or []), *pod["containers"]]:
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]), (kind, c["name"])
            assert "memory" in res["limits"], (kind, c["name"])
        tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
        assert tmp["emptyDir"]["sizeLimit"]


def test_egress_is_the_proxy_and_nothing_else(ssh_config: Path) -> None:
    data = render_node(load_config(ssh_config), node="D601")
    policy = next(m for m in data["manifests"] if m["kind"] == "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "10.20.30.40/32"}}],
         "ports": [{"protocol": "TCP", "port": 3128}]}]
    # the Jobs' pods are selected too
    selector = policy["spec"]["podSelector"]["matchLabels"]
    job_labels = data["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert all(job_labels.get(k) == v for k, v in selector.items())


def test_a_proxy_by_name_adds_dns_only(write_config: Callable[..., Path], ssh_config: Path) -> None:
    text = ssh_config.read_text().replace("http://10.20.30.40:3128", "http://proxy.corp.example:3128")
    data = render_node(load_config(write_config(text, name="named/git-mirror.yaml")), node="D601")
    egress = next(m for m in data["manifests"] if m["kind"] == "NetworkPolicy")["spec"]["egress"]
    assert egress[0] == {"ports": [{"protocol": "TCP", "port": 3128}]}
    assert egress[1]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert len(egress) == 2


def test_optional_ingress_exposes_the_webhook_only(ingress_config: Path,
                                                   kcli: Callable[..., CliResult]) -> None:
    data = render_node(load_config(ingress_config), node="D601")
    ing = next(m for m in data["manifests"] if m["kind"] == "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    [rule] = ing["spec"]["rules"]
    assert rule["host"] == "git-mirror.example.com"
    assert rule["http"]["paths"] == [{"path": "/hooks/github", "pathType": "Exact", "backend": {
        "service": {"name": "git-mirror-d601", "port": {"name": "http"}}}}]
    assert ing["spec"]["tls"] == [{"hosts": ["git-mirror.example.com"],
                                   "secretName": "git-mirror-tls"}]
    assert [w["code"] for w in data["warnings"]] == ["ingress-without-webhook-secret"]
    bad = ingress_config.read_text().replace("host: git-mirror.example.com", "host: Not_A_Host")
    ingress_config.write_text(bad)
    r = kcli("--config", ingress_config, "--json", "validate")
    assert r.code == 2 and "ingress.host" in r.json["error"]["message"] + str(r.json["error"])


@pytest.mark.parametrize("version", SUPPORTED)
def test_valid_for_every_supported_version(ingress_config: Path, version: str) -> None:
    data = render_node(load_config(ingress_config), node="D601")
    kinds = set()
    for doc in [*data["manifests"], data["jobTemplate"]]:
        kubernetes_validate.validate(doc, version, strict=True)
        kinds.add(doc["kind"])
    assert {"Ingress", "NetworkPolicy", "Deployment", "Job"} <= kinds


def test_readme_names_the_supported_versions() -> None:
    readme = (Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md").read_text()
    assert f"Kubernetes {SUPPORTED[0][:-2]} to {SUPPORTED[-1][:-2]}" in readme


def test_image_pinned_by_digest(write_config: Callable[..., Path], kube_config: Path) -> None:
    """``kubernetes.image`` may name the built image by the digest build-image.sh prints."""
    image = "registry.example/git-mirror:0.1.0@sha256:" + "ab" * 32
    text = kube_config.read_text().replace("storageSize: 20Gi}",
                                           f"storageSize: 20Gi, image: '{image}'}}")
    data = render_node(load_config(write_config(text, name="pinned/git-mirror.yaml")), node="D601")
    for kind, pod in pod_specs(data).items():
        for c in [*(pod.get("initContainers") or []), *pod["containers"]]:
            assert c["image"] == image, kind
    kubernetes_validate.validate(data["jobTemplate"], SUPPORTED[-1], strict=True)


def test_read_only_jobs_do_not_stay_a_day(kube_config: Path) -> None:
    from git_mirror.kube.render import job_manifest

    cfg = load_config(kube_config)
    ttl = {op: job_manifest(cfg, "D601", op, [], f"x-{op}")["spec"]["ttlSecondsAfterFinished"]
           for op in ("sync", "flush", "status", "closeout")}
    assert ttl["sync"] == ttl["flush"] == 86400
    assert ttl["status"] == ttl["closeout"] <= 600
