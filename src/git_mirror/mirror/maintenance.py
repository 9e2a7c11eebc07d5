"""Housekeeping that keeps clones fast as snapshot refs accumulate.

Every round: ``git pack-refs --all`` (thousands of loose snapshot refs make every ref
advertisement slow) and ``git commit-graph write --reachable`` (negotiation and shallow
clones walk history). Occasionally, when the objects are spread over many packs or no bitmap
exists yet, a full ``git repack -a -d --write-bitmap-index``: bitmaps need one pack holding
every object, hence ``-a``; ``-d`` drops the packs it replaced. Nothing is pruned: objects
only become unreachable when a person prunes snapshots, and ``gc`` is theirs to run.

Runs under the repository lock, so it never interleaves with a sync or flush.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from git_mirror.errors import GitMirrorError, from_os_error
from git_mirror.git.run import NETWORK_TIMEOUT, git
from git_mirror.mirror import journal
from git_mirror.mirror.layout import RepoLayout
from git_mirror.mirror.lock import repo_lock
from git_mirror.mirror.recovery import clear_stale_locks, record_safely

if TYPE_CHECKING:
    from pathlib import Path

    from git_mirror.config.loader import LoadedConfig

REPACK_AT_PACKS = 8


@dataclass
class MaintenanceResult:
    """One maintenance round of a repository: the steps done, and how it ended."""

    id: str
    ok: bool = True
    steps: list[str] = field(default_factory=list)
    packs_before: int = 0
    duration_ms: int = 0
    error: GitMirrorError | None = None

    def to_json(self) -> dict[str, Any]:
        """The round as the server logs it and ``/api/status`` shows it."""
        return {"id": self.id, "ok": self.ok, "steps": self.steps,
                "packsBefore": self.packs_before, "durationMs": self.duration_ms,
                "error": self.error.to_json() if self.error else None}


def pack_count(git_dir: Path) -> tuple[int, bool]:
    """How many packs the mirror has, and whether one of them carries a bitmap."""
    packdir = git_dir / "objects" / "pack"
    if not packdir.is_dir():
        return 0, False
    packs = list(packdir.glob("*.pack"))
    return len(packs), any(packdir.glob("*.bitmap"))


def maintain(cfg: LoadedConfig, rid: str, *, full: bool | None = None,
             wait: bool = True) -> MaintenanceResult:
    """One maintenance round for ``rid``; ``full`` None means "repack when it pays"."""
    layout = RepoLayout.of(cfg, rid)
    res = MaintenanceResult(rid)
    started = time.monotonic()
    if not (layout.git_dir / "HEAD").exists():
        res.steps.append("skipped: no mirror yet")
        return res
    try:
        with repo_lock(layout.state_dir, rid, wait=wait, command="maintenance"):
            cleared, _ = clear_stale_locks(layout.git_dir, layout.state_dir)
            res.steps += [f"recovered {name}" for name in cleared]
            git(["pack-refs", "--all"], git_dir=layout.git_dir, what="git pack-refs")
            res.steps.append("pack-refs")
            git(["commit-graph", "write", "--reachable"], git_dir=layout.git_dir,
                timeout=NETWORK_TIMEOUT, what="git commit-graph write")
            res.steps.append("commit-graph")
            packs, bitmap = pack_count(layout.git_dir)
            res.packs_before = packs
            if full or (full is None and (packs >= REPACK_AT_PACKS or (packs and not bitmap))):
                git(["repack", "-a", "-d", "-q", "--write-bitmap-index"], git_dir=layout.git_dir,
                    timeout=NETWORK_TIMEOUT, what="git repack")
                res.steps.append("repack")
    except GitMirrorError as exc:
        res.ok = False
        res.error = exc
    except OSError as exc:
        res.ok = False
        res.error = from_os_error(exc, doing=f"maintenance of {rid} failed")
    res.duration_ms = int((time.monotonic() - started) * 1000)
    record_safely(layout.state_dir, "maintenance", {
        "at": journal.now_iso(), "ok": res.ok, "steps": res.steps,
        "durationMs": res.duration_ms, "error": res.error.to_json() if res.error else None})
    return res
