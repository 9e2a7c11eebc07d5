"""``snapshots prune`` on a kubernetes node: the retention runs in a Job on the node's cache,
and the snapshots that the node's PipelineRuns use are protected.

The pods have no API access, so this process reads the followers' PipelineRuns (a running
one reads its snapshot; the last ``keepLast`` succeeded ones of each follower built theirs)
and hands the protected refs to the Job (``snapshots prune --protect-json``). The dry run
runs the same Job without ``--confirm``: it decides exactly as the confirmed prune does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from git_mirror.kube import tekton
from git_mirror.kube.jobs import run_job

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.kube.client import KubeClient


def protected_snapshots(cfg: LoadedConfig, node: str, client: KubeClient,
                        keep: int) -> dict[str, str]:
    """Snapshot ref -> why it stays, from the tekton followers' PipelineRuns on ``node``."""
    from git_mirror.config.models import TektonTrigger

    out: dict[str, str] = {}
    for fid, follower in sorted(cfg.model.followers.items()):
        if not isinstance(follower.trigger, TektonTrigger):
            continue
        ns = tekton.run_namespace(cfg, node, follower.trigger.tekton)
        runs = [tekton.run_summary(r) for r in tekton.follower_runs(client, ns, node, fid)]
        for run in runs:
            if run.snapshot_ref and run.status == tekton.RUNNING:
                out[run.snapshot_ref] = f"PipelineRun {run.name} of follower {fid} is running"
        for run in [r for r in runs if r.status == tekton.SUCCEEDED][-keep:]:
            if run.snapshot_ref:
                out.setdefault(run.snapshot_ref,
                               f"built by PipelineRun {run.name}, one of the last {keep} "
                               f"succeeded runs of follower {fid}")
    return out


def prune_on_node(cfg: LoadedConfig, node: str, *, repo: str | None, confirm: bool,
                  wait: bool) -> dict[str, Any]:
    """``snapshots prune [--confirm]`` as a Job on ``node``, protecting what runs use."""
    from git_mirror.kube.client import client_for

    client = client_for(cfg, node)
    keep = cfg.model.snapshots.retention.keep_last
    protect = protected_snapshots(cfg, node, client, keep)
    args = ["prune", *(["--repo", repo] if repo else []), *(["--confirm"] if confirm else []),
            *(["--wait"] if wait else []),
            "--protect-json", json.dumps(protect, sort_keys=True, separators=(",", ":"))]
    return run_job(cfg, node=node, operation="snapshots", args=args, confirm=True, wait=True,
                   client=client)
