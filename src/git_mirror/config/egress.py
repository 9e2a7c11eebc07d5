"""Which declared proxy a repository's upstream traffic goes through, and which secrets it
uses on the way (R8).

Lives in the config layer because both the transport (which builds the tunnel) and the
mirror (which records the choice in each mirror's git config and reports it) need the same
answer, and the transport layer may not import the mirror layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import SecretRef


def effective_proxy_name(cfg: LoadedConfig, rid: str, node: str | None = None) -> str | None:
    """The repository's own proxy, else the node's ``egressProxy``, else none."""
    repo = cfg.model.repositories[rid]
    if repo.transport.mode == "file":
        return None
    if repo.transport.proxy:
        return repo.transport.proxy
    nodes = cfg.model.nodes
    if node and node in nodes:
        return nodes[node].egress_proxy
    if not node and "local" in nodes:
        return nodes["local"].egress_proxy
    return None


class SecretUse(NamedTuple):
    """A secret a repository's transport uses: its role, its reference, and the key path of
    that reference in the YAML."""

    role: str
    ref: SecretRef
    key: tuple[str, ...]


def secret_uses(cfg: LoadedConfig, rid: str, node: str | None = None) -> list[SecretUse]:
    """Every secret reaching ``rid``'s upstream takes: the transport's ``identity``,
    ``knownHosts`` and ``token``, then the effective proxy's ``auth``, those that are set."""
    t = cfg.model.repositories[rid].transport
    uses = [SecretUse(role, ref, ("repositories", rid, "transport", role))
            for role, ref in (("identity", t.identity), ("knownHosts", t.known_hosts),
                              ("token", t.token)) if ref is not None]
    proxy_name = effective_proxy_name(cfg, rid, node)
    auth = cfg.model.proxies[proxy_name].auth if proxy_name else None
    if proxy_name and auth is not None:
        uses.append(SecretUse("proxyAuth", auth, ("proxies", proxy_name, "auth")))
    return uses
