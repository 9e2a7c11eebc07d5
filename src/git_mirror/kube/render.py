"""Rendering a kubernetes node's manifests (built by the Kubernetes work)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from git_mirror.errors import GitMirrorError

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def render_node(cfg: LoadedConfig, *, node: str) -> dict[str, Any]:
    raise GitMirrorError("render is not available yet", code="not-implemented",
                         hint="use a local node: git-mirror apply --confirm")
