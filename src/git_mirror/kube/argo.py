"""The deployed revision of a follower's lane: its Argo CD Application's ``status.sync``.

Read-only: closeout records what Argo CD last synced (R12); git-mirror never syncs or
patches an Application. The Application is ``followers.<id>.argocd: {application,
namespace}`` (namespace default ``argocd``), in the node's cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_mirror.kube.client import KubeError

if TYPE_CHECKING:
    from git_mirror.config.models import ArgoCD
    from git_mirror.kube.client import KubeClient

API = "argoproj.io/v1alpha1"


@dataclass(frozen=True)
class ArgoApplication:
    """A follower's Argo CD Application as last read: whether it exists, the revision it
    synced, its sync and health status and source. ``error`` is an API error other than 404
    (reported, not raised: the revision is a record of the closeout, not one of its
    checks)."""

    application: str
    namespace: str
    found: bool = False
    revision: str | None = None  # status.sync.revision (a multi-source one's first)
    sync_status: str | None = None
    health: str | None = None
    repo_url: str | None = None
    target_revision: str | None = None
    error: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """``<namespace>/<application>``."""
        return f"{self.namespace}/{self.application}"

    def to_json(self) -> dict[str, Any]:
        """The closeout's ``argocd`` object."""
        out: dict[str, Any] = {
            "application": self.application, "namespace": self.namespace, "found": self.found,
            "revision": self.revision, "syncStatus": self.sync_status, "health": self.health,
            "repoURL": self.repo_url, "targetRevision": self.target_revision}
        if self.error is not None:
            out["error"] = self.error
        return out


def application_state(client: KubeClient, app: ArgoCD) -> ArgoApplication:
    """The Application ``app`` names, read from the cluster; not found when it is missing,
    its revision None when it has not synced."""
    try:
        obj = client.get(API, "Application", app.application, app.namespace)
    except KubeError as exc:
        return ArgoApplication(app.application, app.namespace, error=exc.to_json())
    if obj is None:
        return ArgoApplication(app.application, app.namespace)
    spec = obj.get("spec") or {}
    source: dict[str, Any] = spec.get("source") or next(iter(spec.get("sources") or []), {})
    status = obj.get("status") or {}
    sync = status.get("sync") or {}
    revision = sync.get("revision") or next(iter(sync.get("revisions") or []), None)
    return ArgoApplication(app.application, app.namespace, found=True, revision=revision,
                           sync_status=sync.get("status"),
                           health=(status.get("health") or {}).get("status"),
                           repo_url=source.get("repoURL"),
                           target_revision=source.get("targetRevision"))
