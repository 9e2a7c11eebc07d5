"""A kubernetes node's manifests, rendered from the config alone (R3, R6, R8).

Pure and deterministic: the same config bytes and node give the same manifests, in the same
order, and nothing here calls the Kubernetes API (:mod:`git_mirror.kube.apply` does).

What a node gets, in apply order::

    Namespace              nodes.<n>.kubernetes.namespace; Pod Security "restricted" enforced
    ServiceAccount         no API token mounted: the pods never call the Kubernetes API
    Role, RoleBinding      no rules: the sync/flush/status Jobs need nothing from the API
    ConfigMap   -config    the YAML file itself (the single authority) and its sha256
    PVC         -cache     the mirror cache; storageClass/storageSize from the node
    Service                server.listen's port
    NetworkPolicy          egress only to the declared proxies (rendered when one is in use)
    Ingress                /hooks/github only, when nodes.<n>.kubernetes.ingress is declared
    Deployment             one `git-mirror serve` pod; rolls when the config's sha256 changes

The Job that ``sync``/``flush``/``status`` run on the node comes from :func:`job_manifest`;
it is shown by ``render --json`` as ``jobTemplate`` and never applied.

Secrets: a ``{kubernetes: {name, key}}`` ref is a read-only volume of Secret ``name`` mounted
at ``/var/run/git-mirror/secrets/<name>`` (where :mod:`git_mirror.config.secrets` reads
``<name>/<key>``); an ``{env: NAME}`` ref becomes env ``NAME`` from key ``NAME`` of the Secret
``<base>-env`` that the operator creates; a ``{file: PATH}`` ref cannot be mounted (the path
is on the operator's machine) and is reported in ``warnings``; apply refuses it.
"""


from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_mirror.config.secrets import MOUNT_ROOT
from git_mirror.errors import ConfigError, WarningCode
from git_mirror.kube import NODE_ENV
from git_mirror.kube.node import (
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_PATH,
    DEFAULT_IMAGE,
    JOB_DEADLINE_SECONDS,
    JOB_TTL_SECONDS,
    L_INSTANCE,
    L_MANAGED,
    L_NAME,
    SHA_ANNOTATION,
    UID,
    Names,
    NodeSecrets,
    dns_label,
    egress_rules,
    kube_node,
    labels,
    listen_port,
    node_secrets,
    pod_cache_dir,
)
from git_mirror.kube.result import MESSAGE_PATH, RESULT_ENV

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

__all__ = ["CONFIG_DIR", "JOB_DEADLINE_SECONDS", "L_INSTANCE", "L_MANAGED", "MOUNT_ROOT",
           "SHA_ANNOTATION", "Names", "dns_label", "job_manifest", "kube_node", "manifests",
           "node_secrets", "render_node", "to_yaml"]


@dataclass
class PodParts:
    """What every pod of the node shares: volumes, mounts, env, security."""

    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    env: list[dict[str, Any]]


def pod_parts(cfg: LoadedConfig, node: str, names: Names, secrets: NodeSecrets) -> PodParts:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": names.config}},
        {"name": "cache", "persistentVolumeClaim": {"claimName": names.cache}},
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
    ]
    # The config is one file (subPath), so that a default cache beside it can be a mount too.
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_PATH, "subPath": CONFIG_FILE, "readOnly": True},
        {"name": "cache", "mountPath": pod_cache_dir(cfg)},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    for i, secret in enumerate(sorted(secrets.mounts)):
        vol = f"secret-{i}"
        volumes.append({"name": vol, "secret": {
            "secretName": secret, "defaultMode": 0o440,
            "items": [{"key": k, "path": k} for k in sorted(secrets.mounts[secret])]}})
        mounts.append({"name": vol, "mountPath": f"{MOUNT_ROOT}/{secret}", "readOnly": True})
    env: list[dict[str, Any]] = [
        {"name": NODE_ENV, "value": node},
        {"name": "HOME", "value": "/tmp"},
    ]
    env += [{"name": var, "valueFrom": {"secretKeyRef": {"name": names.env_secret, "key": var}}}
            for var in sorted(secrets.env)]
    return PodParts(volumes, mounts, env)


# Every container (init containers too: a ResourceQuota refuses a pod with one that lacks them).
_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
             "limits": {"memory": "2Gi", "ephemeral-storage": "2Gi"}}
TMP_SIZE = "1Gi"
READ_ONLY_TTL_SECONDS = 600


def resources() -> dict[str, Any]:
    return copy.deepcopy(_RESOURCES)
# The namespace admits only pods of the "restricted" Pod Security Standard, which ours meet.
POD_SECURITY = {f"pod-security.kubernetes.io/{mode}": "restricted"
                for mode in ("enforce", "audit", "warn")}


def namespace_meta(ns: str, node: str) -> dict[str, Any]:
    out = meta(ns, None, node)
    out["labels"] = {**out["labels"], **POD_SECURITY}
    return out


def ingress(cfg: LoadedConfig, node: str, names: Names,
            warnings: list[dict[str, str]]) -> dict[str, Any] | None:
    """The optional Ingress (``kubernetes.ingress``): ``/hooks/github`` and nothing else."""
    spec_in = kube_node(cfg, node).ingress
    if spec_in is None:
        return None
    if cfg.model.server.webhook_secret is None:
        warnings.append({"code": WarningCode.INGRESS_WITHOUT_WEBHOOK_SECRET,
                         "at": cfg.where("nodes", node, "kubernetes", "ingress"),
                         "message": "an Ingress exposes /hooks/github, and no server.webhookSecret "
                                    "checks who calls it: anyone who reaches it can start syncs",
                         "hint": "server: {webhookSecret: {kubernetes: {name: SECRET, key: KEY}}}"})
    path = {"path": "/hooks/github", "pathType": "Exact",
            "backend": {"service": {"name": names.base, "port": {"name": "http"}}}}
    spec: dict[str, Any] = {"rules": [{"host": spec_in.host, "http": {"paths": [path]}}]}
    if spec_in.class_name:
        spec = {"ingressClassName": spec_in.class_name, **spec}
    if spec_in.tls_secret:
        spec["tls"] = [{"hosts": [spec_in.host], "secretName": spec_in.tls_secret}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": meta(names.base, names.namespace, node), "spec": spec}


def _container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}


def _pod_security() -> dict[str, Any]:
    return {"runAsUser": UID, "runAsGroup": UID, "fsGroup": UID, "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"}}


def cli_args(node: str, *args: str) -> list[str]:
    return ["git-mirror", "--config", CONFIG_PATH, "--node", node, *args]


def meta(name: str, namespace: str | None, node: str, component: str | None = None,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    out["labels"] = labels(node, component)
    if annotations:
        out["annotations"] = annotations
    return out


def config_text(cfg: LoadedConfig) -> str:
    """The config file's text, exactly the bytes whose sha256 the loader recorded."""
    raw = cfg.path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != cfg.sha256:
        raise ConfigError("the config file changed while this command ran", file=str(cfg.path),
                          hint="run the command again")
    return raw.decode("utf-8")


def manifests(cfg: LoadedConfig, node: str,
              warnings: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """The node's manifests, in apply order."""
    target = kube_node(cfg, node)
    warnings = warnings if warnings is not None else []
    ns = target.namespace
    names = Names(node, ns)
    secrets = node_secrets(cfg, node)
    warnings.extend(secrets.unmountable)
    host, port = listen_port(cfg)
    if host in ("127.0.0.1", "localhost", "::1"):
        warnings.append({"code": WarningCode.LISTEN_LOOPBACK,
                         "at": cfg.where("server", "listen"), "message":
                         f"server.listen is {cfg.model.server.listen}: in a pod, the Service and "
                         "the probes cannot reach a loopback address",
                         "hint": f"server: {{listen: 0.0.0.0:{port}}}"})
    sha = {SHA_ANNOTATION: cfg.sha256}
    parts = pod_parts(cfg, node, names, secrets)
    grace = cfg.model.server.shutdown_grace_seconds
    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": namespace_meta(ns, node)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(names.base, ns, node),
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": meta(names.base, ns, node), "rules": []},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": meta(names.base, ns, node),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.base},
         "subjects": [{"kind": "ServiceAccount", "name": names.base, "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": meta(names.config, ns, node, annotations=sha),
         "data": {CONFIG_FILE: config_text(cfg)}},
    ]
    pvc_spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": target.storage_size}}}
    if target.storage_class:
        pvc_spec["storageClassName"] = target.storage_class
    out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": meta(names.cache, ns, node), "spec": pvc_spec})
    out.append({"apiVersion": "v1", "kind": "Service", "metadata": meta(names.base, ns, node),
                "spec": {"type": "ClusterIP", "selector": labels(node, "server"),
                         "ports": [{"name": "http", "port": port, "targetPort": "http",
                                    "protocol": "TCP"}]}})
    rules = egress_rules(cfg, node, warnings)
    if rules is not None:
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": meta(names.base, ns, node),
                    "spec": {"podSelector": {"matchLabels": {L_NAME: "git-mirror",
                                                             L_INSTANCE: node}},
                             "policyTypes": ["Egress"], "egress": rules}})
    hooks = ingress(cfg, node, names, warnings)
    if hooks is not None:
        out.append(hooks)
    image = target.image or DEFAULT_IMAGE
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10,
             "timeoutSeconds": 5, "failureThreshold": 6}
    container = {
        "name": "git-mirror", "image": image, "imagePullPolicy": "IfNotPresent",
        "command": cli_args(node, "serve"),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": parts.env, "volumeMounts": parts.mounts,
        "livenessProbe": probe,
        "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": "http"},
                           "failureThreshold": 3},
        "resources": resources(),
        "securityContext": _container_security(),
    }
    # Creates the bare repositories and their hooks in the cache before serve starts.
    init = {"name": "apply", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": cli_args(node, "--json", "apply", "--confirm"),
            "env": parts.env, "volumeMounts": parts.mounts, "resources": resources(),
            "securityContext": _container_security()}
    out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": meta(names.base, ns, node),
                "spec": {
                    "replicas": 1,
                    # One writer of a ReadWriteOnce cache: the old pod goes before the new one.
                    "strategy": {"type": "Recreate"},
                    "selector": {"matchLabels": labels(node, "server")},
                    "template": {
                        "metadata": {"labels": labels(node, "server"), "annotations": sha},
                        "spec": {
                            "serviceAccountName": names.base,
                            "automountServiceAccountToken": False,
                            # SIGTERM starts serve's staged shutdown; the kill comes after it.
                            "terminationGracePeriodSeconds": grace + 5,
                            "securityContext": _pod_security(),
                            "initContainers": [init],
                            "containers": [container],
                            "volumes": parts.volumes}}}})
    return out


def job_manifest(cfg: LoadedConfig, node: str, operation: str, args: list[str], name: str,
                 *, global_args: list[str] | None = None) -> dict[str, Any]:
    """A Job that runs ``git-mirror [GLOBAL_ARGS] --json <operation> ARGS`` on the node."""
    target = kube_node(cfg, node)
    names = Names(node, target.namespace)
    parts = pod_parts(cfg, node, names, node_secrets(cfg, node))
    image = target.image or DEFAULT_IMAGE
    pod_labels = {**labels(node, "job"), "git-mirror/operation": operation}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {**meta(name, target.namespace, node, "job",
                            {SHA_ANNOTATION: cfg.sha256}),
                     "labels": pod_labels},
        "spec": {
            # a failed sync or flush is reported, not retried behind a person's back
            "backoffLimit": 0,
            "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
            # sync and flush Jobs are run records (a day); a read-only one only carries its
            # result back to the CLI that waits for it.
            "ttlSecondsAfterFinished": READ_ONLY_TTL_SECONDS if operation in ("status", "closeout")
            else JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": names.base,
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    # The cache is ReadWriteOnce: run beside the serve pod that holds it.
                    "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": labels(node, "server")},
                         "topologyKey": "kubernetes.io/hostname"}]}},
                    "containers": [{
                        "name": "git-mirror", "image": image, "imagePullPolicy": "IfNotPresent",
                        "command": cli_args(node, *(global_args or []), "--json", operation, *args),
                        # The result comes back as the termination message, never from the log.
                        "terminationMessagePath": MESSAGE_PATH,
                        "terminationMessagePolicy": "File",
                        "env": [*parts.env, {"name": RESULT_ENV, "value": MESSAGE_PATH}],
                        "volumeMounts": parts.mounts,
                        "resources": resources(),
                        "securityContext": _container_security()}],
                    "volumes": parts.volumes}}}}


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """A YAML stream of ``docs``; multi-line strings (the config) as literal blocks."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import LiteralScalarString

    def lit(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: lit(v) for k, v in value.items()}
        if isinstance(value, list):
            return [lit(v) for v in value]
        if isinstance(value, str) and "\n" in value and not re.search(r"[ \t]\n|[^\S\n]$", value):
            return LiteralScalarString(value)
        return value

    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump_all([lit(d) for d in docs], buf)
    return buf.getvalue()


def render_node(cfg: LoadedConfig, *, node: str) -> dict[str, Any]:
    """``render``: the manifests apply would apply, as data and as a YAML stream."""
    warnings: list[dict[str, str]] = []
    docs = manifests(cfg, node, warnings)
    target = kube_node(cfg, node)
    job = job_manifest(cfg, node, "sync", ["--confirm", "--wait"],
                       Names(node, target.namespace).base + "-sync")
    return {"ok": True, "node": node, "executor": "kubernetes",
            "context": target.context, "namespace": target.namespace,
            "config": {"path": str(cfg.path), "sha256": cfg.sha256},
            "manifests": docs, "jobTemplate": job, "warnings": warnings,
            "yaml": to_yaml(docs)}
