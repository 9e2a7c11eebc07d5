"""How upstream is reached: the one seam between "what YAML declares" and git's environment.

:func:`remote_for` turns a repository's declared transport into a
:class:`~git_mirror.git.remote.RemoteEnv` (URL, allowed protocol, ``-c`` options, env).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from git_mirror.config.urls import file_url
from git_mirror.errors import GitError, GitMirrorError, UpstreamUnreachable
from git_mirror.git.remote import RemoteEnv

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def remote_for(cfg: LoadedConfig, rid: str, node: str | None = None) -> RemoteEnv:
    """The environment in which git reaches repository ``rid``'s upstream, exactly as declared.

    ``node`` picks the node whose ``egressProxy`` applies when the repository declares no
    proxy of its own (default: the ``local`` node).
    """
    repo = cfg.model.repositories[rid]
    mode = repo.transport.mode
    if mode == "file":
        url = file_url(repo.upstream)
        return RemoteEnv(url=url, allow_protocol="file",
                         explain=lambda exc: explain_file(exc, rid=rid, url=url,
                                                          config=str(cfg.path)))
    from git_mirror.transport.declared import remote_env

    return remote_env(cfg, rid, node)


# What git says when a file:// upstream is not a repository (gone, moved, unreadable).
FILE_FAILURES = ("does not appear to be a git repository", "No such file",
                 "Could not read from remote repository", "not a git repository")


def explain_file(exc: GitError, *, rid: str, url: str, config: str) -> GitMirrorError:
    """A failed git process on a ``file://`` upstream: a path that is not a repository (gone,
    moved, unreadable) is ``upstream-unreachable``, naming the URL and the transport."""
    from git_mirror.transport.failures import retry_command, with_retry_hint

    text = exc.stderr or ""
    if any(needle in text for needle in FILE_FAILURES):
        path = url.removeprefix("file://")
        return UpstreamUnreachable(
            f"{rid}: upstream {url} (transport file) cannot be reached: {path} is not a git "
            "repository (missing, moved or unreadable)",
            hint=f"restore {path}, or fix repositories.{rid}.upstream in {config}; then run: "
                 f"{retry_command(exc, rid)}",
            details={"transport": "file", "url": url, "stderr": text[-2000:],
                     "exitCode": exc.returncode})
    return with_retry_hint(exc, rid)
