"""Snapshot retention that protects what runs use (R11): ``snapshots prune``.

A snapshot that a running run reads, or that one of a follower's last ``keepLast`` succeeded
runs built, is never pruned: the run may still fetch it, and closeout names it. The local
node's run records say which; the prune itself is :func:`git_mirror.mirror.snapshots.prune`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from git_mirror.follower import state as st

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.mirror.snapshots import PruneResult


def protected_snapshots(cfg: LoadedConfig, keep: int) -> dict[str, str]:
    """Snapshot ref -> why it stays: read by a running run, or built by one of the last
    ``keep`` succeeded runs of its follower."""
    out: dict[str, str] = {}
    for fid in sorted(cfg.model.followers):
        runs = st.FollowerState.of(cfg, fid).runs()
        for rec in runs:
            ref = rec.snapshot_ref
            if ref and rec.status == st.RUNNING:
                out[str(ref)] = f"run {rec.name} of follower {fid} is running"
        succeeded = [r for r in runs if r.status == st.SUCCEEDED][-keep:]
        for rec in succeeded:
            ref = rec.snapshot_ref
            if ref:
                out.setdefault(str(ref), f"built by run {rec.name}, one of the last "
                                         f"{keep} succeeded runs of follower {fid}")
    return out


def prune_snapshots(cfg: LoadedConfig, *, repo: str | None = None, confirm: bool = False,
                    wait: bool = False, now: float | None = None,
                    protected: dict[str, str] | None = None) -> PruneResult:
    """``snapshots prune``: the declared retention, minus what runs use (the local run
    records', and ``protected``: what a kubernetes node's PipelineRuns use)."""
    from git_mirror.mirror.snapshots import prune

    keep = cfg.model.snapshots.retention.keep_last
    return prune(cfg, repo=repo, confirm=confirm, wait=wait, now=now,
                 protected={**(protected or {}), **protected_snapshots(cfg, keep)})
