"""The closeout ledger: every closeout result, appended, never rewritten.

``<cache>/state/ledger/closeout.jsonl``, one JSON object a line: the merge commit, the judged
run (name, status, built commit, published lane commit), the branch tip, the deployed revision
and where it came from, every check, ``ok`` and the time. It lives outside the followers'
state, so ``follower cleanup-state`` and ``cleanup-runs`` never remove it: a delivery proven
once stays on record after its run's files are gone. ``closeout --history`` lists it.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.mirror.journal import now_iso

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

ENTRY_KEYS = ("mergeCommit", "branch", "repository", "branchTip", "syncRevision",
              "syncRevisionSource", "tipContainsMergeCommit", "runContainsMergeCommit",
              "deployedContainsRun", "pendingFlush", "githubInSync", "ok")


def ledger_path(cfg: LoadedConfig) -> Path:
    """The closeout ledger of the cache (one JSON object a line)."""
    return cfg.cache_dir / "state" / "ledger" / "closeout.jsonl"


def entry_of(result: dict[str, Any]) -> dict[str, Any]:
    """The ledger line of a closeout result."""
    run = result.get("pipelineRun") or {}
    out: dict[str, Any] = {"at": now_iso(), "node": result.get("node"),
                           "follower": result.get("follower")}
    out.update({k: result.get(k) for k in ENTRY_KEYS})
    out["pipelineRun"] = {k: run.get(k) for k in ("name", "status", "commit", "snapshotRef",
                                                  "publishedLaneCommit")}
    out["checks"] = {c["name"]: bool(c["ok"]) for c in result.get("checks") or []}
    if result.get("error"):
        out["failedChecks"] = (result["error"] or {}).get("failedChecks")
    return out


def append(cfg: LoadedConfig, result: dict[str, Any]) -> dict[str, Any]:
    """Append ``result``'s line to the ledger (under an exclusive lock); return the line."""
    entry = entry_of(result)
    path = ledger_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return entry


def history(cfg: LoadedConfig, fid: str, merge: str | None = None) -> list[dict[str, Any]]:
    """The ledger lines of follower ``fid`` (and of merge commits starting with ``merge``),
    oldest first. A line that cannot be read (a torn write) is skipped."""
    try:
        text = ledger_path(cfg).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("follower") != fid:
            continue
        if merge and not str(entry.get("mergeCommit") or "").startswith(merge.lower()):
            continue
        out.append(entry)
    return out
