"""``apply`` on a kubernetes node: converge the namespace to the rendered manifests (R3, R6, R9).

Dry run: every manifest is compared with what the API server has. An object that exists is
applied with server-side dry run and the answer compared with the live object, so the diff is
the one the server would make, defaults included. Nothing is written.

Confirm: every manifest is server-side applied (field manager ``git-mirror``, ownership
forced: the YAML is the single authority), then objects labeled as this node's and managed by
git-mirror that are no longer rendered are deleted and reported as ``pruned``. Two kinds are
never deleted: the Namespace (it may hold other things) and PersistentVolumeClaims (they hold
the cache); a PVC no longer rendered is reported as ``orphaned``. Jobs are run records and
expire by their own TTL.

Idempotent: a second apply changes nothing, and says so (``"changed": false``); an object is
``unchanged`` when its resourceVersion did not move.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code, ConfigError, GitMirrorError, WarningCode
from git_mirror.kube.render import L_INSTANCE, L_MANAGED, kube_node, manifests

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.kube.client import KubeClient, Manifest

# Kinds looked at for pruning (namespaced, in this node's namespace).
PRUNABLE = (("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("v1", "ConfigMap"),
            ("v1", "Service"), ("networking.k8s.io/v1", "NetworkPolicy"),
            ("networking.k8s.io/v1", "Ingress"), ("apps/v1", "Deployment"))
KEPT = (("v1", "PersistentVolumeClaim"),)
SERVER_META = ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp",
               "selfLink")


def comparable(obj: Manifest) -> Manifest:
    """``obj`` without what the server keeps for itself (versions, owners, status)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_META}
    return out


def diff_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Key paths whose values differ between two objects (lists compared whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(diff_paths(old[key], new[key], path))
        return out
    return [] if old == new else [prefix or "."]


@dataclass
class ManifestChange:
    """What ``apply`` does (or would do) to one object: create, update, unchanged."""

    kind: str
    name: str
    namespace: str | None
    action: str  # create | update | unchanged | unknown (dry run, cluster unreachable)
    changes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The object's entry in ``manifests``."""
        return {"kind": self.kind, "name": self.name, "namespace": self.namespace,
                "action": self.action, "changes": self.changes}


@dataclass
class KubeApplyResult:
    """``apply`` on a kubernetes node: every object's change, what was pruned, warnings."""

    node: str
    context: str | None
    namespace: str
    dry_run: bool
    config_sha256: str
    manifests: list[ManifestChange]
    pruned: list[dict[str, str]]
    orphaned: list[str]
    warnings: list[dict[str, str]]
    cluster_error: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        """True when an object was (or would be) created, updated or pruned."""
        return bool(self.pruned) or any(m.action != "unchanged" for m in self.manifests)

    def to_json(self) -> dict[str, Any]:
        """The ``apply`` object of a kubernetes node."""
        return {"ok": True, "node": self.node, "executor": "kubernetes", "dryRun": self.dry_run,
                "changed": self.changed, "context": self.context, "namespace": self.namespace,
                "config": {"sha256": self.config_sha256},
                "manifests": [m.to_json() for m in self.manifests],
                "pruned": self.pruned, "orphaned": self.orphaned, "warnings": self.warnings,
                "cluster": {"reachable": self.cluster_error is None, "error": self.cluster_error},
                "repositories": []}


def refuse_unmountable(cfg: LoadedConfig, warnings: list[dict[str, str]]) -> None:
    """A pod that cannot read a declared secret is not converged; say which key and where."""
    bad = [w for w in warnings if w["code"] == WarningCode.SECRET_NOT_MOUNTABLE]
    if bad:
        first = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        # The error names the key path itself: the message without its leading "KEY: ".
        reason = first["message"].removeprefix(f"{first['key']}: ")
        raise ConfigError(reason + more, file=str(cfg.path), key=first["key"],
                          line=int(first["line"]) if first["line"] else None, hint=first["hint"])


def _ident(m: Manifest) -> tuple[str, str, str]:
    return m["apiVersion"], m["kind"], m["metadata"]["name"]


def plan_one(client: KubeClient, m: Manifest) -> ManifestChange:
    """What applying ``m`` would change, asked of the API server (a server-side dry run)."""
    meta = m["metadata"]
    live = client.get(m["apiVersion"], m["kind"], meta["name"], meta.get("namespace"))
    if live is None:
        return ManifestChange(m["kind"], meta["name"], meta.get("namespace"), "create")
    would = client.apply(m, dry_run=True)
    changes = diff_paths(comparable(live), comparable(would))
    return ManifestChange(m["kind"], meta["name"], meta.get("namespace"),
                          "update" if changes else "unchanged", changes)


def apply_one(client: KubeClient, m: Manifest) -> ManifestChange:
    """Apply ``m`` (server-side apply) and say whether it was created, updated or unchanged."""
    meta = m["metadata"]
    live = client.get(m["apiVersion"], m["kind"], meta["name"], meta.get("namespace"))
    result = client.apply(m)
    if live is None:
        return ManifestChange(m["kind"], meta["name"], meta.get("namespace"), "create")
    before = (live.get("metadata") or {}).get("resourceVersion")
    after = (result.get("metadata") or {}).get("resourceVersion")
    changes = diff_paths(comparable(live), comparable(result))
    action = "unchanged" if before == after else "update"
    return ManifestChange(m["kind"], meta["name"], meta.get("namespace"), action,
                          changes if action == "update" else [])


def stale_objects(client: KubeClient, node: str, namespace: str,
                  rendered: set[tuple[str, str, str]]) -> tuple[list[Manifest], list[Manifest]]:
    """(prunable, kept) objects of this node that are no longer rendered."""
    selector = {L_INSTANCE: node, L_MANAGED: "git-mirror"}
    prune: list[Manifest] = []
    kept: list[Manifest] = []
    for kinds, bucket in ((PRUNABLE, prune), (KEPT, kept)):
        for api_version, kind in kinds:
            for obj in client.list(api_version, kind, namespace, selector):
                name = obj["metadata"]["name"]
                if (api_version, kind, name) not in rendered:
                    bucket.append({"apiVersion": api_version, "kind": kind, "name": name})
    return prune, kept


def apply_kubernetes(cfg: LoadedConfig, *, node: str, confirm: bool,
                     client: KubeClient | None = None) -> KubeApplyResult:
    """Converge the kubernetes node ``node`` to the YAML (dry run unless ``confirm``)."""
    from git_mirror.kube.client import client_for

    target = kube_node(cfg, node)
    warnings: list[dict[str, str]] = []
    docs = manifests(cfg, node, warnings)
    if confirm:
        refuse_unmountable(cfg, warnings)
    try:
        client = client or client_for(cfg, node)
        return converge(client, cfg, node, docs, warnings, confirm=confirm)
    except GitMirrorError as exc:
        if confirm or exc.code != Code.KUBE_UNREACHABLE:
            raise
        # A dry run changes nothing and exits 0 (CONTRACT 3): without a cluster to compare
        # with, the plan is the rendered objects, each to be applied, and says why.
        warnings.append({"code": WarningCode.CLUSTER_UNREACHABLE, "message": exc.message,
                         "hint": exc.hint or ""})
        return KubeApplyResult(
            node=node, context=target.context, namespace=target.namespace, dry_run=True,
            config_sha256=cfg.sha256,
            manifests=[ManifestChange(m["kind"], m["metadata"]["name"],
                                      m["metadata"].get("namespace"), "unknown") for m in docs],
            pruned=[], orphaned=[], warnings=warnings, cluster_error=exc.to_json())


def converge(client: KubeClient, cfg: LoadedConfig, node: str, docs: list[Manifest],
             warnings: list[dict[str, str]], *, confirm: bool) -> KubeApplyResult:
    """Plan (dry run) or apply and prune ``docs`` on the cluster."""
    target = kube_node(cfg, node)
    ns = target.namespace
    namespace_exists = client.get("v1", "Namespace", ns, None) is not None
    changes: list[ManifestChange] = []
    for m in docs:
        if confirm:
            changes.append(apply_one(client, m))
        elif m["kind"] != "Namespace" and not namespace_exists:
            # Nothing can exist in a namespace that does not; the server would say 404.
            changes.append(ManifestChange(m["kind"], m["metadata"]["name"], ns, "create"))
        else:
            changes.append(plan_one(client, m))
    rendered = {_ident(m) for m in docs}
    prune, kept = stale_objects(client, node, ns, rendered) if namespace_exists else ([], [])
    if confirm:
        for obj in prune:
            client.delete(obj["apiVersion"], obj["kind"], obj["name"], ns)
    return KubeApplyResult(
        node=node, context=target.context, namespace=ns, dry_run=not confirm,
        config_sha256=cfg.sha256, manifests=changes,
        pruned=[{"kind": o["kind"], "name": o["name"]} for o in prune],
        orphaned=[f"{o['kind']}/{o['name']}" for o in kept], warnings=warnings)
