"""Explicit cleanup: ``cleanup-runs`` (R9) and ``follower cleanup-state`` (R7).

Normal following needs neither: a successful run removes its checkout, and each new run drops
finished runs beyond the newest few. These commands are for recovery: a failed run's
leftovers before a retry, or a follower's stale state. Both are dry runs unless ``confirm``;
neither ever touches a run whose process is still alive, nor any ref in the mirror.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from git_mirror.errors import Code, GitMirrorError
from git_mirror.follower import state as st
from git_mirror.follower.follower import get_follower
from git_mirror.follower.results import CleanupResult, KeptRun

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def cleanup_runs(cfg: LoadedConfig, name: str, *, confirm: bool = False,
                 node: str = "local") -> CleanupResult:
    """Remove run ``name``'s record, log and checkout, so that a retry starts clean."""
    found = st.find_run(cfg, name)
    if found is None:
        raise GitMirrorError(f"no pipeline run {name!r} on node {node} (looked under "
                             f"{st.followers_root(cfg)})", code=Code.NOT_FOUND,
                             hint="git-mirror follower list")
    state, record = found
    status = record.status
    if status == st.RUNNING:
        raise GitMirrorError(f"pipeline run {name} is still running (pid {record.pid}); "
                             "its files are in use", code=Code.RUN_RUNNING,
                             hint=f"git-mirror follower status --follower {state.id}")
    paths = [str(p) for p in state.files_of(name)]
    out = CleanupResult(node=node, follower=state.id, dry_run=not confirm,
                        pipeline_run={"name": name, "status": status},
                        would_remove=paths if not confirm else [])
    if confirm:
        out.removed = state.remove_run(name)
        out.next = f"git-mirror follower trigger --follower {state.id} --confirm --wait"
    return out


def cleanup_state(cfg: LoadedConfig, fid: str, *, confirm: bool = False,
                  node: str = "local") -> CleanupResult:
    """Remove follower ``fid``'s stale state: every run that is not running, its log and
    checkout, and stray files; a live run and the lock file stay."""
    get_follower(cfg, fid)
    state = st.FollowerState.of(cfg, fid)
    runs = state.runs()
    kept = [KeptRun(rec.name, "running") for rec in runs if rec.status == st.RUNNING]
    doomed = _stale_paths(state, runs, {k.run for k in kept})
    out = CleanupResult(node=node, follower=fid, dry_run=not confirm,
                        would_remove=[str(p) for p in doomed] if not confirm else [], kept=kept)
    if confirm:
        for p in doomed:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        out.removed = [str(p) for p in doomed]
    return out


def _stale_paths(state: st.FollowerState, runs: list[st.RunRecord],
                 live: set[str]) -> list[Path]:
    """What cleanup-state removes: the files of every run of ``runs`` not in ``live``, stray
    files of the runs and work directories, and everything else at the follower's top level
    but the lock."""
    doomed: list[Path] = []
    for rec in runs:
        if rec.name not in live:
            doomed.extend(state.files_of(rec.name))
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
    return doomed


def _owner(filename: str) -> str:
    """The run a file of the runs directory belongs to (``NAME.json``, ``NAME.log``, and
    ``NAME.json.XXXX``, an atomic write's temporary file)."""
    for suffix in (".json", ".log"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename.partition(".json.")[0]
