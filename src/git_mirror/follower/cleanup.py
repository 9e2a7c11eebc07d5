"""Explicit cleanup: ``cleanup-runs`` (R9) and ``follower cleanup-state`` (R7).

Normal following needs neither: a successful run removes its checkout, and each new run drops
finished runs beyond the newest few. These commands are for recovery: a failed run's
leftovers before a retry, or a follower's stale state. Both are dry runs unless ``confirm``;
neither ever touches a run whose process is still alive, nor any ref in the mirror.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code, GitMirrorError
from git_mirror.follower import state as st
from git_mirror.follower.follower import get_follower

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def cleanup_runs(cfg: LoadedConfig, name: str, *, confirm: bool = False,
                 node: str = "local") -> dict[str, Any]:
    """Remove run ``name``'s record, log and checkout, so that a retry starts clean."""
    found = st.find_run(cfg, name)
    if found is None:
        raise GitMirrorError(f"no pipeline run {name!r} on node {node} (looked under "
                             f"{st.followers_root(cfg)})", code=Code.NOT_FOUND,
                             hint="git-mirror follower list")
    state, record = found
    status = record.get("status")
    if status == st.RUNNING:
        raise GitMirrorError(f"pipeline run {name} is still running (pid {record.get('pid')}); "
                             "its files are in use", code=Code.RUN_RUNNING,
                             hint=f"git-mirror follower status --follower {state.id}")
    paths = [str(p) for p in state.files_of(name)]
    out: dict[str, Any] = {"ok": True, "node": node, "dryRun": not confirm,
                           "follower": state.id,
                           "pipelineRun": {"name": name, "status": status},
                           "wouldRemove": paths if not confirm else [], "removed": []}
    if confirm:
        out["removed"] = state.remove_run(name)
        out["next"] = f"git-mirror follower trigger --follower {state.id} --confirm --wait"
    return out


def cleanup_state(cfg: LoadedConfig, fid: str, *, confirm: bool = False,
                  node: str = "local") -> dict[str, Any]:
    """Remove follower ``fid``'s stale state: every run that is not running, its log and
    checkout, and stray files; a live run and the lock file stay."""
    get_follower(cfg, fid)
    state = st.FollowerState.of(cfg, fid)
    kept: list[dict[str, Any]] = []
    doomed: list[Path] = []
    live: set[str] = set()
    for rec in state.runs():
        name = str(rec["name"])
        if rec.get("status") == st.RUNNING:
            live.add(name)
            kept.append({"run": name, "reason": "running"})
            continue
        doomed.extend(state.files_of(name))
    for directory in (state.runs_dir, state.work_root):
        try:
            entries = sorted(directory.iterdir())
        except FileNotFoundError:
            continue
        for p in entries:
            owner = _owner(p.name) if directory == state.runs_dir else p.name
            if owner not in live and p not in doomed:
                doomed.append(p)  # unreadable records, orphaned logs, checkouts, temp files
    # Anything else at the follower's top level is stray too: only the lock stays.
    ours = {state.runs_dir, state.work_root, state.lock_path}
    if state.root.is_dir():
        doomed.extend(p for p in sorted(state.root.iterdir()) if p not in ours)
    out: dict[str, Any] = {"ok": True, "node": node, "dryRun": not confirm, "follower": fid,
                           "wouldRemove": [str(p) for p in doomed] if not confirm else [],
                           "removed": [], "kept": kept}
    if confirm:
        removed = []
        for p in doomed:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(str(p))
        out["removed"] = removed
    return out


def _owner(filename: str) -> str:
    """The run a file of the runs directory belongs to (``NAME.json``, ``NAME.log``, and
    ``NAME.json.XXXX``, an atomic write's temporary file)."""
    for suffix in (".json", ".log"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename.partition(".json.")[0]
