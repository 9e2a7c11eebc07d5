"""The ssh and https transports, exactly as declared: the repository's proxy, else the node's.

A proxy declared with ``mode: none`` means a direct connection, as declared. There is no
other way in: an undeclared proxy, agent, ssh config or credential helper of the host is
never used, and a failure of the declared path is an error, never a fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_mirror.config.egress import effective_proxy_name, secret_uses
from git_mirror.config.secrets import resolve_secret
from git_mirror.transport.fingerprint import text_fingerprint

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Proxy
    from git_mirror.git.remote import RemoteEnv


def declared_proxy(cfg: LoadedConfig, rid: str,
                   node: str | None = None) -> tuple[str | None, Proxy | None]:
    """The effective proxy's name and definition; ``(name, None)`` for a ``mode: none`` one."""
    name = effective_proxy_name(cfg, rid, node)
    if name is None:
        return None, None
    proxy = cfg.model.proxies[name]
    return name, (proxy if proxy.mode == "http-connect" else None)


log = logging.getLogger("git_mirror.transport")


@dataclass(frozen=True)
class DeclaredSecret:
    """A secret the transport uses: its role, where the YAML says it is, its fingerprint."""

    role: str
    source_ref: str
    fingerprint: str

    def to_json(self) -> dict[str, str]:
        """``{"role", "sourceRef", "fingerprint"}``."""
        return {"role": self.role, "sourceRef": self.source_ref, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class Disclosure:
    """How a repository is reached, as the logs say it (R8): never a secret's value."""

    repository: str
    mode: str
    url: str
    proxy_name: str | None
    proxy_mode: str
    proxy_url: str | None
    secrets: tuple[DeclaredSecret, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``transport`` object of the log line (``source`` is always ``yaml``)."""
        return {"repository": self.repository, "mode": self.mode, "url": self.url,
                "source": "yaml",
                "proxy": {"name": self.proxy_name, "mode": self.proxy_mode,
                          "url": self.proxy_url},
                "secrets": [s.to_json() for s in self.secrets]}


def disclosure(cfg: LoadedConfig, rid: str, node: str | None = None) -> Disclosure:
    """What the logs say about how ``rid`` is reached (R8): never a secret's value."""
    repo = cfg.model.repositories[rid]
    t = repo.transport
    name, proxy = declared_proxy(cfg, rid, node)
    secrets = []
    for use in secret_uses(cfg, rid, node):
        value = resolve_secret(use.ref, cfg, role=use.role, key=use.key).reveal()
        secrets.append(DeclaredSecret(use.role, use.ref.describe(),
                                      text_fingerprint(value, use.role)))
    return Disclosure(rid, t.mode, repo.upstream, name,
                      proxy.mode if proxy is not None else "none",
                      proxy.url if proxy is not None else None, tuple(secrets))


def remote_env(cfg: LoadedConfig, rid: str, node: str | None = None) -> RemoteEnv:
    """The :class:`RemoteEnv` of an ssh or https repository."""
    mode = cfg.model.repositories[rid].transport.mode
    name, proxy = declared_proxy(cfg, rid, node)
    if log.isEnabledFor(logging.INFO):
        info = disclosure(cfg, rid, node)
        secrets = ", ".join(f"{s.role}={s.source_ref} {s.fingerprint}" for s in info.secrets)
        log.info("%s: transport %s %s, proxy %s (%s), source=yaml; %s", rid, mode, info.url,
                 name or "none", info.proxy_mode, secrets, extra={"transport": info.to_json()})
    if mode == "ssh":
        from git_mirror.transport.ssh import ssh_remote

        return ssh_remote(cfg, rid, name, proxy)
    from git_mirror.transport.https import https_remote

    return https_remote(cfg, rid, name, proxy)
