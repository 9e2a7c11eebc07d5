"""Snapshot refs: listing them, and pruning them by the declared retention (``--confirm``).

A snapshot is ``refs/<namespace>/snapshots/<group>/<branch>/<commit>``; the branch may
contain ``/``, the group may not, the commit is the last component. Pruning keeps, per group
and branch, the ``keepLast`` newest (by commit date) and everything younger than
``maxAgeDays``, and always the snapshot of the branch's current tip.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from git_mirror.git.refs import RefTransaction, RefUpdate
from git_mirror.git.run import git
from git_mirror.mirror.layout import HEADS, RepoLayout
from git_mirror.mirror.lock import repo_lock

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


@dataclass(frozen=True)
class Snapshot:
    repository: str
    group: str
    branch: str
    commit: str
    ref: str
    committed_at: int

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "group": self.group, "branch": self.branch,
                "commit": self.commit, "ref": self.ref,
                "committedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.committed_at))}


def list_snapshots(cfg: LoadedConfig, *, repo: str | None = None, group: str | None = None,
                   branch: str | None = None) -> list[Snapshot]:
    out: list[Snapshot] = []
    for rid in cfg.model.repositories:
        if repo is not None and rid != repo:
            continue
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
            out.append(Snapshot(rid, grp, br, commit, ref, int(date or 0)))
    return out


@dataclass
class PruneResult:
    dry_run: bool
    deleted: list[Snapshot] = field(default_factory=list)
    kept: int = 0
    recovered: list[str] = field(default_factory=list)  # stale git lock files removed

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "dryRun": self.dry_run, "kept": self.kept,
                "pruned": [s.to_json() for s in self.deleted], "recovered": self.recovered}


def prune(cfg: LoadedConfig, *, repo: str | None = None, confirm: bool = False,
          wait: bool = False, now: float | None = None) -> PruneResult:
    retention = cfg.model.snapshots.retention
    now = time.time() if now is None else now
    result = PruneResult(dry_run=not confirm)
    for rid in cfg.model.repositories:
        if repo is not None and rid != repo:
            continue
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
                items.sort(key=lambda s: (s.committed_at, s.commit), reverse=True)
                for s in items[retention.keep_last:]:
                    young = retention.max_age_days is not None and \
                        now - s.committed_at < retention.max_age_days * 86400
                    if young or tips.get(HEADS + br) == s.commit:
                        continue
                    doomed.append(s)
            result.kept += len(snaps) - len(doomed)
            result.deleted.extend(doomed)
            if confirm and doomed:
                txn = RefTransaction(layout.git_dir, message="git-mirror snapshots prune")
                txn.extend(RefUpdate(s.ref, None, s.commit) for s in doomed)
                txn.commit()
    return result
