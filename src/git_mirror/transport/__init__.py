"""How upstream is reached: the one seam between "what YAML declares" and git's environment.

:func:`remote_for` turns a repository's declared transport into a
:class:`~git_mirror.git.remote.RemoteEnv` (URL, allowed protocol, ``-c`` options, env).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from git_mirror.git.remote import RemoteEnv

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def file_url(url: str) -> str:
    return url if "://" in url else "file://" + url


def remote_for(cfg: LoadedConfig, rid: str, node: str | None = None) -> RemoteEnv:
    """The environment in which git reaches repository ``rid``'s upstream, exactly as declared.

    ``node`` picks the node whose ``egressProxy`` applies when the repository declares no
    proxy of its own (default: the ``local`` node).
    """
    repo = cfg.model.repositories[rid]
    mode = repo.transport.mode
    if mode == "file":
        return RemoteEnv(url=file_url(repo.upstream), allow_protocol="file")
    from git_mirror.transport.declared import remote_env

    return remote_env(cfg, rid, node)
