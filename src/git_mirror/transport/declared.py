"""The ssh and https transports, exactly as declared: the repository's proxy, else the node's.

A proxy declared with ``mode: none`` means a direct connection, as declared. There is no
other way in: an undeclared proxy, agent, ssh config or credential helper of the host is
never used, and a failure of the declared path is an error, never a fallback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from git_mirror.config.egress import effective_proxy_name

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Proxy
    from git_mirror.git.remote import RemoteEnv


def declared_proxy(cfg: LoadedConfig, rid: str, node: str | None = None) -> tuple[str | None, Proxy | None]:
    """The effective proxy's name and definition; ``(name, None)`` for a ``mode: none`` one."""
    name = effective_proxy_name(cfg, rid, node)
    if name is None:
        return None, None
    proxy = cfg.model.proxies[name]
    return name, (proxy if proxy.mode == "http-connect" else None)


def remote_env(cfg: LoadedConfig, rid: str, node: str | None = None) -> RemoteEnv:
    """The :class:`RemoteEnv` of an ssh or https repository."""
    mode = cfg.model.repositories[rid].transport.mode
    name, proxy = declared_proxy(cfg, rid, node)
    if mode == "ssh":
        from git_mirror.transport.ssh import ssh_remote

        return ssh_remote(cfg, rid, name, proxy)
    from git_mirror.transport.https import https_remote

    return https_remote(cfg, rid, name, proxy)
