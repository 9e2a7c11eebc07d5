"""The deployed revision of a follower's lane: its Argo CD Application's ``status.sync``.

Read-only: closeout records what Argo CD last synced (R12); git-mirror never syncs or
patches an Application. The Application is ``followers.<id>.argocd: {application,
namespace}`` (namespace default ``argocd``), in the node's cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from git_mirror.kube.client import KubeError

if TYPE_CHECKING:
    from git_mirror.config.models import ArgoCD
    from git_mirror.kube.client import KubeClient

API = "argoproj.io/v1alpha1"


def application_state(client: KubeClient, app: ArgoCD) -> dict[str, Any]:
    """``{"application", "namespace", "found", "revision", "syncStatus", "health", ...}``.

    ``revision`` is ``status.sync.revision`` (a multi-source Application's first
    ``revisions`` entry); None when the Application is missing or has not synced. An API
    error other than 404 is reported in ``error`` rather than raised: the revision is a
    record of the closeout, not one of its checks.
    """
    out: dict[str, Any] = {"application": app.application, "namespace": app.namespace,
                           "found": False, "revision": None, "syncStatus": None, "health": None,
                           "repoURL": None, "targetRevision": None}
    try:
        obj = client.get(API, "Application", app.application, app.namespace)
    except KubeError as exc:
        out["error"] = exc.to_json()
        return out
    if obj is None:
        return out
    spec = obj.get("spec") or {}
    source: dict[str, Any] = spec.get("source") or next(iter(spec.get("sources") or []), {})
    sync = (obj.get("status") or {}).get("sync") or {}
    revision = sync.get("revision") or next(iter(sync.get("revisions") or []), None)
    out.update(found=True, revision=revision, syncStatus=sync.get("status"),
               health=((obj.get("status") or {}).get("health") or {}).get("status"),
               repoURL=source.get("repoURL"), targetRevision=source.get("targetRevision"))
    return out
