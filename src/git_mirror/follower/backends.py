"""The backends of the follower commands, one per kind of node (its executor).

A local node is served by this package (:mod:`.follower`, :mod:`.status`, :mod:`.closeout`,
:mod:`.cleanup`). Another executor (``kubernetes``) has its backend in its own package,
which this one never imports: the CLI registers it with :func:`register_backend`; until one
is registered, the commands say ``not-supported`` and name what works. Every backend returns
the typed results of :mod:`git_mirror.follower.results`; the CLI makes them JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from git_mirror.follower.results import (
    CleanupResult,
    CloseoutHistory,
    CloseoutResult,
    FollowerList,
    FollowerStatus,
    RunStatus,
    TriggerResult,
)
from git_mirror.follower.triggers import NotSupported

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


class FollowerBackend(Protocol):
    """The follower commands on one kind of node. ``node`` is the node's name, ``fid`` a
    declared follower; a refusal is raised as a :class:`~git_mirror.errors.GitMirrorError`,
    a failed step of a trigger is the result's ``error``."""

    def trigger(self, cfg: LoadedConfig, fid: str, *, confirm: bool, wait: bool,
                node: str) -> TriggerResult:
        """``follower trigger``: sync, snapshot, run, flush (a plan unless ``confirm``)."""
        ...

    def follower_list(self, cfg: LoadedConfig, *, node: str, only: str | None) -> FollowerList:
        """``follower list``: the declared followers (or ``only``) and their last runs."""
        ...

    def status(self, cfg: LoadedConfig, fid: str, *, node: str, wait: bool) -> FollowerStatus:
        """``follower status``: the last run, branch tip, snapshot and lane."""
        ...

    def run_status(self, cfg: LoadedConfig, fid: str, name: str, *, node: str,
                   wait: bool) -> RunStatus:
        """``follower status --pipeline-run NAME``: one run as observed now."""
        ...

    def closeout(self, cfg: LoadedConfig, fid: str, merge_commit: str, *,
                 pipeline_run: str | None, node: str) -> CloseoutResult:
        """``closeout``: the proof that ``merge_commit`` was delivered."""
        ...

    def closeout_history(self, cfg: LoadedConfig, fid: str, merge_commit: str | None, *,
                         node: str) -> CloseoutHistory:
        """``closeout --history``: the node's closeout ledger of the follower."""
        ...

    def cleanup_runs(self, cfg: LoadedConfig, name: str, *, confirm: bool,
                     node: str) -> CleanupResult:
        """``cleanup-runs``: remove one finished run's leftovers."""
        ...

    def cleanup_state(self, cfg: LoadedConfig, fid: str, *, confirm: bool,
                      node: str) -> CleanupResult:
        """``follower cleanup-state``: remove a follower's stale state."""
        ...


class LocalBackend:
    """The local node: exec triggers, run records under ``<cache>/state/followers``."""

    def trigger(self, cfg: LoadedConfig, fid: str, *, confirm: bool, wait: bool,
                node: str) -> TriggerResult:
        """See :func:`git_mirror.follower.follower.trigger`."""
        from git_mirror.follower.follower import trigger

        return trigger(cfg, fid, confirm=confirm, wait=wait, node=node, executor="local")

    def follower_list(self, cfg: LoadedConfig, *, node: str, only: str | None) -> FollowerList:
        """See :func:`git_mirror.follower.status.follower_list`."""
        from git_mirror.follower.status import follower_list

        return follower_list(cfg, node=node, only=only)

    def status(self, cfg: LoadedConfig, fid: str, *, node: str, wait: bool) -> FollowerStatus:
        """See :func:`git_mirror.follower.status.follower_status`."""
        from git_mirror.follower.status import follower_status

        return follower_status(cfg, fid, node=node, wait=wait)

    def run_status(self, cfg: LoadedConfig, fid: str, name: str, *, node: str,
                   wait: bool) -> RunStatus:
        """See :func:`git_mirror.follower.status.run_status`."""
        from git_mirror.follower.status import run_status

        return run_status(cfg, fid, name, node=node, wait=wait)

    def closeout(self, cfg: LoadedConfig, fid: str, merge_commit: str, *,
                 pipeline_run: str | None, node: str) -> CloseoutResult:
        """See :func:`git_mirror.follower.closeout.closeout`."""
        from git_mirror.follower.closeout import closeout

        return closeout(cfg, fid, merge_commit, pipeline_run=pipeline_run, node=node)

    def closeout_history(self, cfg: LoadedConfig, fid: str, merge_commit: str | None, *,
                         node: str) -> CloseoutHistory:
        """See :func:`git_mirror.follower.closeout.closeout_history`."""
        from git_mirror.follower.closeout import closeout_history

        return closeout_history(cfg, fid, merge_commit, node=node)

    def cleanup_runs(self, cfg: LoadedConfig, name: str, *, confirm: bool,
                     node: str) -> CleanupResult:
        """See :func:`git_mirror.follower.cleanup.cleanup_runs`."""
        from git_mirror.follower.cleanup import cleanup_runs

        return cleanup_runs(cfg, name, confirm=confirm, node=node)

    def cleanup_state(self, cfg: LoadedConfig, fid: str, *, confirm: bool,
                      node: str) -> CleanupResult:
        """See :func:`git_mirror.follower.cleanup.cleanup_state`."""
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
