"""Which declared proxy a repository's upstream traffic goes through (R8).

Lives in the config layer because both the transport (which builds the tunnel) and the
mirror (which records the choice in each mirror's git config and reports it) need the same
answer, and the transport layer may not import the mirror layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


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
