"""Applying a kubernetes node's manifests (built by the Kubernetes work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from git_mirror.errors import GitMirrorError

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


class KubeApplyResult:
    def to_json(self) -> dict[str, object]:
        return {"ok": True}


def apply_kubernetes(cfg: LoadedConfig, *, node: str, confirm: bool) -> KubeApplyResult:
    raise GitMirrorError("kubernetes nodes are not available yet", code="not-implemented",
                         hint="use a local node: git-mirror apply --confirm")
