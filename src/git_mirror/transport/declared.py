"""SSH and HTTPS transports (filled in by the transports work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from git_mirror.errors import TransportError

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.git.remote import RemoteEnv


def remote_env(cfg: LoadedConfig, rid: str) -> RemoteEnv:
    mode = cfg.model.repositories[rid].transport.mode
    raise TransportError(f"transport mode {mode} is not available in this build",
                         hint="use transport.mode: file")
