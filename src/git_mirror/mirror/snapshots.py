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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.errors import GitMirrorError, from_os_error
from git_mirror.git.refs import RefTransaction, RefUpdate
from git_mirror.git.run import git
from git_mirror.mirror import audit
from git_mirror.mirror.layout import HEADS, RepoLayout, selected_repositories
from git_mirror.mirror.lock import repo_lock

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Retention


def _iso(stamp: int | None) -> str | None:
    return None if stamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


@dataclass(frozen=True)
class Snapshot:
    """One snapshot ref: where it sits (repository, group, branch), its commit and times."""

    repository: str
    group: str
    branch: str
    commit: str
    ref: str
    committed_at: int
    created_at: int | None = None  # when sync created the ref (its reflog); None: unknown
    created_ns: int = 0  # orders snapshots created within the same second

    def to_json(self) -> dict[str, Any]:
        """The snapshot's entry in ``snapshots list`` and in a prune's ``pruned``."""
        return {"repository": self.repository, "group": self.group, "branch": self.branch,
                "commit": self.commit, "ref": self.ref, "createdAt": _iso(self.created_at),
                "committedAt": _iso(self.committed_at)}


@dataclass
class SnapshotList:
    """``snapshots list``: the snapshot refs of the selected repositories."""

    snapshots: list[Snapshot]

    def to_json(self) -> dict[str, Any]:
        """``{"ok": true, "snapshots": [...]}``."""
        return {"ok": True, "snapshots": [s.to_json() for s in self.snapshots]}


def created_at(git_dir: Path, ref: str) -> tuple[int | None, int]:
    r"""When ``ref`` was created, from the first entry of its reflog file.

    That entry reads ``<old> <new> <name> <email> <time> <zone>\t<message>``; None without
    one. Also the file's modification time in nanoseconds, which orders snapshots created
    within one second (a snapshot's reflog is written once: snapshots never move).
    """
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


def _mirrors(cfg: LoadedConfig, repo: str | None) -> Iterator[RepoLayout]:
    """The selected repositories whose mirror exists, selected as by every command: an
    undeclared ``repo`` is the usage error (exit 2) that names the declared ones."""
    for rid in selected_repositories(cfg, repo):
        layout = RepoLayout.of(cfg, rid)
        if (layout.git_dir / "HEAD").exists():
            yield layout


def _snapshots_of(layout: RepoLayout, group: str | None, branch: str | None) -> list[Snapshot]:
    """The snapshot refs of one mirror (of ``group`` and ``branch`` when given)."""
    prefix = layout.snapshot_prefix + (f"{group}/" if group else "")
    text = git(["for-each-ref", "--format=%(objectname) %(committerdate:unix) %(refname)",
                prefix], git_dir=layout.git_dir, what="git for-each-ref").text
    out: list[Snapshot] = []
    for line in text.splitlines():
        _oid, date, ref = line.split(" ", 2)
        rest = ref[len(layout.snapshot_prefix):]
        grp, _, tail = rest.partition("/")
        br, _, commit = tail.rpartition("/")
        if branch is not None and br != branch:
            continue
        out.append(Snapshot(layout.id, grp, br, commit, ref, int(date or 0),
                            *created_at(layout.git_dir, ref)))
    return out


def list_snapshots(cfg: LoadedConfig, *, repo: str | None = None, group: str | None = None,
                   branch: str | None = None) -> SnapshotList:
    """The snapshot refs of every selected mirror (one ``for-each-ref`` each)."""
    return SnapshotList([s for layout in _mirrors(cfg, repo)
                         for s in _snapshots_of(layout, group, branch)])


@dataclass(frozen=True)
class Protected:
    """A snapshot the retention would prune, kept because a run uses it."""

    ref: str
    reason: str

    def to_json(self) -> dict[str, str]:
        """``{"ref", "reason"}``."""
        return {"ref": self.ref, "reason": self.reason}


@dataclass
class PruneResult:
    """``snapshots prune``: what was (or, dry run, would be) deleted, kept and protected."""

    dry_run: bool
    deleted: list[Snapshot] = field(default_factory=list)
    kept: int = 0
    protected: list[Protected] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # stale git lock files removed
    failed: list[tuple[str, GitMirrorError]] = field(default_factory=list)  # (id, its error)

    @property
    def ok(self) -> bool:
        """Every selected repository was pruned (or, dry run, planned)."""
        return not self.failed

    @property
    def error(self) -> GitMirrorError | None:
        """The first failed repository's error, in declaration order (as sync says it)."""
        return self.failed[0][1] if self.failed else None

    def to_json(self) -> dict[str, Any]:
        """The ``snapshots prune --json`` object; with a failure, also its ``error`` and every
        failed repository under ``failed`` (what the others pruned is listed all the same)."""
        out: dict[str, Any] = {
            "ok": self.ok, "dryRun": self.dry_run, "kept": self.kept,
            "pruned": [s.to_json() for s in self.deleted],
            "protected": [p.to_json() for p in self.protected],
            "recovered": self.recovered}
        if self.error is not None:
            out["error"] = self.error.to_json()
            out["failed"] = [{"repository": rid, "error": exc.to_json()}
                             for rid, exc in self.failed]
        return out


def _doomed(snaps: Sequence[Snapshot], tips: Mapping[str, str], retention: Retention,
            now: float, protected: Mapping[str, str], result: PruneResult) -> list[Snapshot]:
    """The snapshots the retention prunes; those a run uses go to ``result.protected``."""
    by_branch: dict[tuple[str, str], list[Snapshot]] = {}
    for s in snaps:
        by_branch.setdefault((s.group, s.branch), []).append(s)
    doomed: list[Snapshot] = []
    for (_, br), items in by_branch.items():
        items.sort(key=lambda s: (s.created_at or 0, s.created_ns, s.commit), reverse=True)
        for s in items[retention.keep_last:]:
            young = s.created_at is None or (
                retention.max_age_days is not None
                and now - s.created_at < retention.max_age_days * 86400)
            if young or tips.get(HEADS + br) == s.commit:
                continue
            if s.ref in protected:
                result.protected.append(Protected(s.ref, protected[s.ref]))
                continue
            doomed.append(s)
    return doomed


def prune(cfg: LoadedConfig, *, repo: str | None = None, confirm: bool = False,
          wait: bool = False, now: float | None = None,
          protected: Mapping[str, str] | None = None) -> PruneResult:
    """Prune by the declared retention (see the module docstring).

    ``protected`` maps snapshot refs that must stay to the reason, shown in the result. A
    repository that fails (``busy`` without ``wait``, an I/O error) is listed with its error
    and the others are pruned all the same, as sync does; what was deleted is always listed.
    """
    retention = cfg.model.snapshots.retention
    now = time.time() if now is None else now
    result = PruneResult(dry_run=not confirm)
    for layout in _mirrors(cfg, repo):
        try:
            with repo_lock(layout.state_dir, layout.id, wait=wait, command="snapshots prune"):
                _prune_repository(layout, retention, now, protected or {}, result,
                                  confirm=confirm)
        except GitMirrorError as exc:
            result.failed.append((layout.id, exc))
        except OSError as exc:
            result.failed.append(
                (layout.id, from_os_error(exc, doing=f"snapshots prune of {layout.id} failed")))
    return result


def _prune_repository(layout: RepoLayout, retention: Retention, now: float,
                      protected: Mapping[str, str], result: PruneResult, *,
                      confirm: bool) -> None:
    """One repository's prune, under its lock: what goes is added to ``result`` once its ref
    transaction committed (a dry run: once decided)."""
    from git_mirror.git.refs import list_refs
    from git_mirror.mirror.recovery import clear_stale_locks

    if confirm:  # a prune killed in its transaction left lock files: see recovery
        result.recovered += clear_stale_locks(layout.git_dir, layout.state_dir)[0]
    snaps = _snapshots_of(layout, None, None)
    tips = list_refs(layout.git_dir, [HEADS])
    doomed = _doomed(snaps, tips, retention, now, protected, result)
    if confirm and doomed:
        txn = RefTransaction(layout.git_dir, message="git-mirror snapshots prune")
        txn.extend(RefUpdate(s.ref, None, s.commit) for s in doomed)
        txn.commit()
        audit.record(layout.state_dir, layout.id, "prune", txn.updates)
    result.kept += len(snaps) - len(doomed)
    result.deleted.extend(doomed)
