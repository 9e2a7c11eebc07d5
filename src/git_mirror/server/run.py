"""``serve`` (built by the server work)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from git_mirror.errors import GitMirrorError

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def serve(cfg: LoadedConfig, *, node: str = "local") -> dict[str, Any]:
    raise GitMirrorError("serve is not available yet", code="not-implemented")
