"""Which implementation of the follower commands serves a node, by its executor.

A local node is served by this package (:mod:`.follower`, :mod:`.closeout`, :mod:`.cleanup`).
Another executor (``kubernetes``) registers its own implementation with
:func:`register_backend`, from its own package, so that this one never imports it; until one
is registered, the commands say ``not-supported`` and name what works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from git_mirror.follower.triggers import NotSupported

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


class FollowerBackend(Protocol):
    """The follower commands of one kind of node; each returns the command's JSON object."""

    def trigger(self, cfg: LoadedConfig, fid: str, *, confirm: bool, wait: bool,
                node: str) -> dict[str, Any]: ...

    def follower_list(self, cfg: LoadedConfig, *, node: str,
                      only: str | None) -> dict[str, Any]: ...

    def status(self, cfg: LoadedConfig, fid: str, *, node: str,
               wait: bool) -> dict[str, Any]: ...

    def run_status(self, cfg: LoadedConfig, fid: str, name: str, *, node: str,
                   wait: bool) -> dict[str, Any]: ...

    def closeout(self, cfg: LoadedConfig, fid: str, merge_commit: str, *,
                 pipeline_run: str | None, node: str) -> dict[str, Any]: ...

    def closeout_history(self, cfg: LoadedConfig, fid: str, merge_commit: str | None, *,
                         node: str) -> dict[str, Any]: ...

    def cleanup_runs(self, cfg: LoadedConfig, name: str, *, confirm: bool,
                     node: str) -> dict[str, Any]: ...

    def cleanup_state(self, cfg: LoadedConfig, fid: str, *, confirm: bool,
                      node: str) -> dict[str, Any]: ...


class LocalBackend:
    """The local node: exec triggers, run records under ``<cache>/state/followers``."""

    def trigger(self, cfg: LoadedConfig, fid: str, *, confirm: bool, wait: bool,
                node: str) -> dict[str, Any]:
        from git_mirror.follower.follower import trigger

        return trigger(cfg, fid, confirm=confirm, wait=wait, node=node, executor="local").to_json()

    def follower_list(self, cfg: LoadedConfig, *, node: str,
                      only: str | None) -> dict[str, Any]:
        from git_mirror.follower.status import follower_list

        return follower_list(cfg, node=node, only=only)

    def status(self, cfg: LoadedConfig, fid: str, *, node: str,
               wait: bool) -> dict[str, Any]:
        from git_mirror.follower.status import follower_status

        return follower_status(cfg, fid, node=node, wait=wait)

    def run_status(self, cfg: LoadedConfig, fid: str, name: str, *, node: str,
                   wait: bool) -> dict[str, Any]:
        from git_mirror.follower.status import run_status

        return run_status(cfg, fid, name, node=node, wait=wait)

    def closeout(self, cfg: LoadedConfig, fid: str, merge_commit: str, *,
                 pipeline_run: str | None, node: str) -> dict[str, Any]:
        from git_mirror.follower.closeout import closeout

        return closeout(cfg, fid, merge_commit, pipeline_run=pipeline_run, node=node)

    def closeout_history(self, cfg: LoadedConfig, fid: str, merge_commit: str | None, *,
                         node: str) -> dict[str, Any]:
        from git_mirror.follower.closeout import closeout_history

        return closeout_history(cfg, fid, merge_commit, node=node)

    def cleanup_runs(self, cfg: LoadedConfig, name: str, *, confirm: bool,
                     node: str) -> dict[str, Any]:
        from git_mirror.follower.cleanup import cleanup_runs

        return cleanup_runs(cfg, name, confirm=confirm, node=node)

    def cleanup_state(self, cfg: LoadedConfig, fid: str, *, confirm: bool,
                      node: str) -> dict[str, Any]:
        from git_mirror.follower.cleanup import cleanup_state

        return cleanup_state(cfg, fid, confirm=confirm, node=node)


_BACKENDS: dict[str, FollowerBackend] = {"local": LocalBackend()}


def register_backend(executor: str, backend: FollowerBackend) -> None:
    """Serve the follower commands of nodes whose executor is ``executor`` with ``backend``."""
    _BACKENDS[executor] = backend


def backend_for(executor: str, node: str, command: str, args: str = "") -> FollowerBackend:
    """The backend of ``executor``; ``not-supported`` (naming the local node) without one."""
    backend = _BACKENDS.get(executor)
    if backend is None:
        raise NotSupported(
            f"{command} on node {node} (executor {executor}) is not available in this build; "
            "follower commands run on a local node (exec triggers)",
            hint=f"git-mirror --node local {command}{' ' + args if args else ''}")
    return backend
