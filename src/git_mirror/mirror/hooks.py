"""Git hooks installed into the mirror by apply (the ref protection hook comes with flush)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def install_hooks(cfg: LoadedConfig) -> bool:
    """Install or refresh the mirror's hooks; True when something changed."""
    return False
