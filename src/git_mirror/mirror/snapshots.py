"""Snapshot refs: listing them, and pruning them by the declared retention (``--confirm``).

A snapshot is ``refs/<namespace>/snapshots/<group>/<branch>/<commit>``; the branch may
contain ``/``, the group may not, the commit is the last component. Its age is the time sync
created it, not its commit's date (an old commit synced today is a new snapshot): every ref
transaction of git-mirror writes a reflog (``update-ref --create-reflog``), and the first
entry of a snapshot's reflog is its creation. Those are read from the reflog files, with no
git process per ref.

Pruning keeps, per group and branch, the ``keepLast`` newest (by creation) and everything
created less than ``maxAgeDays`` ago, and always: the snapshot of the branch's current tip,
a snapshot whose creation time is unknown, and the ``protected`` ones (the follower layer
passes those that a running run or one of a follower's last succeeded runs reads). A dry run
decides exactly as a confirmed prune does and lists what it would remove.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.git.refs import RefTransaction, RefUpdate
from git_mirror.git.run import git
from git_mirror.mirror import audit
from git_mirror.mirror.layout import HEADS, RepoLayout, selected_repositories
from git_mirror.mirror.lock import repo_lock

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def _iso(stamp: int | None) -> str | None:
    return None if stamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


@dataclass(frozen=True)
class Snapshot:
    repository: str
    group: str
    branch: str
    commit: str
    ref: str
    committed_at: int
    created_at: int | None = None  # when sync created the ref (its reflog); None: unknown
    created_ns: int = 0  # orders snapshots created within the same second

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "group": self.group, "branch": self.branch,
                "commit": self.commit, "ref": self.ref, "createdAt": _iso(self.created_at),
                "committedAt": _iso(self.committed_at)}


def created_at(git_dir: Path, ref: str) -> tuple[int | None, int]:
    """When ``ref`` was created: the time of the first entry of its reflog file
    (``<old> <new> <name> <email> <time> <zone>\t<message>``), None without one; and the
    file's modification time in nanoseconds, which orders snapshots created within one
    second (a snapshot's reflog is written once: snapshots never move)."""
    try:
        with open(git_dir / "logs" / ref, "rb") as fh:
            first = fh.readline(4096).decode("utf-8", "replace")
            fine = os.fstat(fh.fileno()).st_mtime_ns
    except OSError:
        return None, 0
    fields = first.partition("\t")[0].rsplit(" ", 2)
    try:
        return (int(fields[-2]) if len(fields) == 3 else None), fine
    except ValueError:
        return None, fine


def list_snapshots(cfg: LoadedConfig, *, repo: str | None = None, group: str | None = None,
                   branch: str | None = None) -> list[Snapshot]:
    out: list[Snapshot] = []
    for rid in selected_repositories(cfg, repo):
        layout = RepoLayout.of(cfg, rid)
        if not (layout.git_dir / "HEAD").exists():
            continue
        prefix = layout.snapshot_prefix + (f"{group}/" if group else "")
        text = git(["for-each-ref", "--format=%(objectname) %(committerdate:unix) %(refname)", prefix],
                   git_dir=layout.git_dir, what="git for-each-ref").text
        for line in text.splitlines():
            _oid, date, ref = line.split(" ", 2)
            rest = ref[len(layout.snapshot_prefix):]
            grp, _, tail = rest.partition("/")
            br, _, commit = tail.rpartition("/")
            if branch is not None and br != branch:
                continue
            out.append(Snapshot(rid, grp, br, commit, ref, int(date or 0),
                                *created_at(layout.git_dir, ref)))
    return out


@dataclass
class PruneResult:
    dry_run: bool
    deleted: list[Snapshot] = field(default_factory=list)
    kept: int = 0
    protected: list[dict[str, Any]] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # stale git lock files removed

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "dryRun": self.dry_run, "kept": self.kept,
                "pruned": [s.to_json() for s in self.deleted],
                "protected": self.protected, "recovered": self.recovered}


def prune(cfg: LoadedConfig, *, repo: str | None = None, confirm: bool = False,
          wait: bool = False, now: float | None = None,
          protected: Mapping[str, str] | None = None) -> PruneResult:
    """Prune by the declared retention (see the module docstring). ``protected`` maps
    snapshot refs that must stay to the reason, shown in the result."""
    retention = cfg.model.snapshots.retention
    now = time.time() if now is None else now
    protected = protected or {}
    result = PruneResult(dry_run=not confirm)
    for rid in selected_repositories(cfg, repo):
        layout = RepoLayout.of(cfg, rid)
        if not (layout.git_dir / "HEAD").exists():
            continue
        with repo_lock(layout.state_dir, rid, wait=wait, command="snapshots prune"):
            if confirm:  # a prune killed in its transaction left lock files: see recovery
                from git_mirror.mirror.recovery import clear_stale_locks

                result.recovered += clear_stale_locks(layout.git_dir, layout.state_dir)[0]
            snaps = list_snapshots(cfg, repo=rid)
            from git_mirror.git.refs import list_refs

            tips = list_refs(layout.git_dir, [HEADS])
            by_branch: dict[tuple[str, str], list[Snapshot]] = {}
            for s in snaps:
                by_branch.setdefault((s.group, s.branch), []).append(s)
            doomed: list[Snapshot] = []
            for (_, br), items in by_branch.items():
                items.sort(key=lambda s: (s.created_at or 0, s.created_ns, s.commit),
                           reverse=True)
                for s in items[retention.keep_last:]:
                    young = s.created_at is None or (
                        retention.max_age_days is not None
                        and now - s.created_at < retention.max_age_days * 86400)
                    if young or tips.get(HEADS + br) == s.commit:
                        continue
                    if s.ref in protected:
                        result.protected.append({"ref": s.ref, "reason": protected[s.ref]})
                        continue
                    doomed.append(s)
            result.kept += len(snaps) - len(doomed)
            result.deleted.extend(doomed)
            if confirm and doomed:
                txn = RefTransaction(layout.git_dir, message="git-mirror snapshots prune")
                txn.extend(RefUpdate(s.ref, None, s.commit) for s in doomed)
                txn.commit()
                audit.record(layout.state_dir, rid, "prune", txn.updates)
    return result
