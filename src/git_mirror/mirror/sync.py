"""``sync``: upstream's declared refs into the mirror, with a snapshot for every source tip.

Per repository, under its lock:

1. one ``git fetch`` that lists the declared refs and brings their new objects, writing no
   ref of the mirror (:mod:`git_mirror.mirror.upstream_view`);
2. one ``git for-each-ref`` of what upstream holds (in the fetch's private view) and of the
   mirror's stage refs, heads and tags, then one of the candidate snapshot refs of the
   upstream tips;
3. one ``git update-ref --stdin`` transaction: stage refs, source branches, tags, lanes and
   snapshots together, each with its expected old value.

The number of git processes does not grow with the number of refs. A failed fetch changes no
ref; a crash leaves the old state or the new one. A dry run reads (ls-remote, then one
for-each-ref with the candidate snapshots), fetches nothing and reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from git_mirror.errors import BusyError, Code, DriftError, GitError, GitMirrorError, from_os_error
from git_mirror.git import progress
from git_mirror.git.refs import (
    EXACT_NAMES_LIMIT,
    RefUpdate,
    existing_refs,
    has_commits,
    is_ancestor,
    list_refs,
    pack_refs,
)
from git_mirror.git.remote import RemoteEnv, fetch_objects, ls_remote
from git_mirror.mirror import audit, journal
from git_mirror.mirror.layout import HEADS, STAGE_HEADS, RepoLayout, selected_repositories
from git_mirror.mirror.lock import repo_lock
from git_mirror.mirror.outcome import PerRepository
from git_mirror.mirror.plan import Ancestry, LaneState, SyncPlan, candidate_snapshots, plan_sync
from git_mirror.mirror.recovery import clear_stale_locks, kept_locks_notes, record_safely
from git_mirror.mirror.refcheck import (
    Applied,
    Refusal,
    commit_isolated,
    isolate,
    snapshot_probes,
)
from git_mirror.mirror.report import sync_line
from git_mirror.mirror.upstream_view import fetch_upstream, settle

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

log = logging.getLogger("git_mirror.sync")
T = TypeVar("T")
U = TypeVar("U")
PACK_REFS_AFTER = 256  # a transaction this large is followed by one git pack-refs
# Settings that decide how upstream is reached: a difference is drift (R13). Other settings
# (refspecs shown to people, upload-pack options) are converged by apply.
DRIFT_KEYS = ("remote.upstream.url", "gitmirror.transport", "gitmirror.proxy")


@dataclass
class RepoSync:
    id: str
    dry_run: bool
    ok: bool = True
    created_mirror: bool = False
    updated: list[RefUpdate] = field(default_factory=list)
    snapshots: list[tuple[str, str]] = field(default_factory=list)
    lanes: list[LaneState] = field(default_factory=list)
    # Every declared source branch's tip upstream and its snapshot ref (new or not): what a
    # follower on a kubernetes node reads from a sync Job's result.
    sources: list[dict[str, str]] = field(default_factory=list)
    fetched: int = 0
    duration_ms: int = 0
    error: GitMirrorError | None = None
    # Stale git lock files removed before the run (paths in the mirror), and other notes.
    cleared_locks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)  # refs that could not be written

    @property
    def diverged(self) -> bool:
        return any(lane.diverged for lane in self.lanes)

    def warnings(self) -> list[str]:
        """A diverged lane is left exactly as it is, and said."""
        return [f"lane {lane.name} ({lane.ref}) diverged: the mirror has {lane.mirror}, upstream "
                f"has {lane.upstream}; sync left it as it is (see: git-mirror status --repo {self.id})"
                for lane in self.lanes if lane.diverged] + [
            f"{r.ref} was not written: {r.reason}; every other ref of {self.id} was (see: "
            f"git-mirror status --repo {self.id})" for r in self.refused] + self.notes

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "ok": self.ok, "dryRun": self.dry_run,
            "createdMirror": self.created_mirror, "diverged": self.diverged,
            "warnings": self.warnings(),
            "updated": [u.to_json() for u in self.updated],
            "snapshots": [{"ref": r, "commit": c} for r, c in self.snapshots],
            "lanes": [lane.to_json() for lane in self.lanes],
            "sources": self.sources,
            "refused": [r.to_json() for r in self.refused],
            "recovered": self.cleared_locks,
            "fetchedCommits": self.fetched, "durationMs": self.duration_ms,
            "error": self.error.to_json() if self.error else None,
        }


@dataclass
class SyncResult(PerRepository):
    node: str
    dry_run: bool
    repositories: list[RepoSync]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok, "node": self.node, "dryRun": self.dry_run,
            "diverged": any(r.diverged for r in self.repositories),
            "updated": [{"repository": r.id, **u.to_json()} for r in self.repositories for u in r.updated],
            "snapshots": [{"repository": r.id, "ref": ref, "commit": c}
                          for r in self.repositories for ref, c in r.snapshots],
            "refused": [{"repository": r.id, **x.to_json()}
                        for r in self.repositories for x in r.refused],
            "recovered": [{"repository": r.id, "file": f}
                          for r in self.repositories for f in r.cleared_locks],
            "repositories": [r.to_json() for r in self.repositories],
        }
        if self.error:
            out["error"] = self.error.to_json()
        return out


def check_drift(cfg: LoadedConfig, rid: str, git_dir: Path, node: str | None = None) -> None:
    """How the mirror reaches upstream must be what YAML declares; otherwise ``drift``.

    Other settings that differ (the lanes the protection hook allows, refspecs, HEAD) are
    brought in line here, so that a sync always works with the refs the YAML declares.
    """
    from git_mirror.mirror.local_apply import execute, is_transport_key, plan_repo

    plan = plan_repo(cfg, rid, node, cached=True)
    # Drift is about how upstream is reached: the declared URL, transport and proxy, and
    # any transport setting (url.*.insteadOf, http.*, core.sshCommand...) the YAML does not
    # declare, which apply removes.
    relevant = [c for c in plan.changes
                if c["key"] in DRIFT_KEYS or (c["to"] is None and is_transport_key(c["key"]))]
    if relevant:
        keys = ", ".join(f"{c['key']} is {c['from']!r}, YAML says {c['to']!r}" for c in relevant)
        raise DriftError(f"mirror {rid} differs from the YAML: {keys}",
                         hint="git-mirror apply --confirm")
    if plan.changes:
        execute(cfg, plan)


def _ancestry(git_dir: Path) -> Ancestry:
    def ask(a: str, b: str) -> bool | None:
        if len(has_commits(git_dir, (a, b))) < 2:
            return None
        return is_ancestor(git_dir, a, b)
    return ask


def _side_by_side(first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
    """Run two independent git reads at once (two processes, one wait)."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        later = pool.submit(contextvars.copy_context().run, second)
        return first(), later.result()


def sync_repo_locked(cfg: LoadedConfig, rid: str, remote: RemoteEnv, *, confirm: bool,
                     result: RepoSync) -> None:
    """Plan (and with ``confirm`` apply) one repository's sync. The caller holds the lock.

    A confirmed sync fetches (listing upstream and bringing its new objects in one session),
    reads what upstream holds and the mirror's own refs in one for-each-ref, then which
    snapshot refs of the upstream tips exist, then writes.
    """
    layout = RepoLayout.of(cfg, rid)
    own: dict[str, str] | None = None  # the mirror's refs but snapshots, while current
    fetched: set[str] = set()
    if confirm:
        # One git fetch lists upstream and brings the new objects (one session with
        # upstream, as a raw fetch); no ref of the mirror is written before the plan.
        upstream, mine = fetch_upstream(layout, remote, layout.local_patterns(),
                                        negotiation_tips=[STAGE_HEADS + "*"])
        own = mine
        fetched = set(upstream.values())
        result.fetched = len(fetched - set(mine.values()))
    else:
        upstream = ls_remote(remote, layout.upstream_patterns(), layout.git_dir)
    upstream = {r: o for r, o in upstream.items() if layout.wants(r)}

    def fetch(oids: set[str]) -> None:
        if confirm and oids:
            fetch_objects(layout.git_dir, remote, sorted(oids),
                          negotiation_tips=[STAGE_HEADS + "*"])
            fetched.update(oids)
            result.fetched = len(fetched)

    applied = Applied()  # what the ref transactions changed, across both attempts
    made: set[str] = set()  # the snapshot refs among them
    for attempt in (1, 2):
        # Tips no local ref names are fetched by object id. One the mirror has anyway (an
        # upstream rewound to an older commit) costs git a negotiation, not a transfer;
        # asking first would cost every incremental sync a process.
        candidates = candidate_snapshots(layout, upstream)
        # With them, the snapshot refs that would collide with them (refcheck).
        probes = candidates + snapshot_probes(candidates, layout.snapshot_prefix)
        if own is not None:
            new_tips = set(upstream.values()) - set(own.values()) - fetched
            _, snapshots = _side_by_side(
                partial(fetch, new_tips),
                partial(existing_refs, layout.git_dir, probes, layout.snapshot_pattern()))
            local = {**own, **snapshots}
        else:
            # One for-each-ref: the mirror's refs and the candidates (or all snapshots).
            many = len(probes) > EXACT_NAMES_LIMIT
            local = list_refs(layout.git_dir, layout.local_patterns()
                              + ([layout.snapshot_pattern()] if many else probes))
            fetch(set(upstream.values()) - set(local.values()) - fetched)
        plan: SyncPlan = plan_sync(layout, upstream, local, _ancestry(layout.git_dir))
        result.lanes = plan.lanes
        result.sources = source_tips(layout, upstream)
        if not confirm:
            phases = isolate(plan.all_updates(), local.keys())
            refused = {r.ref for r in phases.refused}
            result.updated = [u for u in plan.updates if u.ref not in refused]
            result.snapshots = [s for s in plan.snapshots if s[0] not in refused]
            result.refused = phases.refused
            return
        applied.refused = []
        try:
            commit_isolated(layout.git_dir, plan.all_updates(), local.keys(),
                            message="git-mirror sync", into=applied)
            settle(layout)
            if len(applied.updates) >= PACK_REFS_AFTER:
                # Thousands of loose refs make every later for-each-ref and fetch slow.
                pack_refs(layout.git_dir)
            return
        except GitError as exc:
            if exc.code != Code.CONFLICT or attempt == 2:
                raise
            # A client pushed a lane between our read and our write: read again, once.
            own = None
        finally:
            # Only what was written: a refused or failed transaction claims nothing.
            made.update(ref for ref, _ in plan.snapshots)
            result.updated = [u for u in applied.updates if u.ref not in made]
            result.snapshots = [(u.ref, u.new) for u in applied.updates
                                if u.ref in made and u.new is not None]
            result.refused = list(applied.refused)


def source_tips(layout: RepoLayout, upstream: dict[str, str]) -> list[dict[str, str]]:
    """``{"branch", "commit", "snapshotRef"}`` of every declared source branch upstream has."""
    out = []
    for ref, oid in sorted(upstream.items()):
        if ref.startswith(HEADS):
            branch = ref[len(HEADS):]
            spec = layout.source_for(branch)
            if spec is not None:
                out.append({"branch": branch, "commit": oid,
                            "snapshotRef": layout.snapshot_ref(spec.group, branch, oid)})
    return out


def sync(cfg: LoadedConfig, *, repo: str | None = None, confirm: bool = False,
         wait: bool = False, node: str = "local", lane: str | None = None,
         jobs: int | None = None) -> SyncResult:
    """Sync every declared repository (or one), dry run unless ``confirm``.

    With ``lane`` (the global ``--lane``), only the repositories that declare it; an
    undeclared lane is a usage error. Up to ``jobs`` repositories (default: the config's
    ``jobs``) sync at once; the results are in declaration order."""
    from git_mirror.mirror.local_apply import ensure_repo
    from git_mirror.mirror.parallel import each, jobs_for
    from git_mirror.transport import remote_for

    ids = selected_repositories(cfg, repo, lane)

    def one(rid: str) -> RepoSync:
        res = RepoSync(rid, dry_run=not confirm)
        layout = RepoLayout.of(cfg, rid)
        started = time.monotonic()
        progress.begin(rid)
        try:
            remote = remote_for(cfg, rid, node)
            res.created_mirror = not (layout.git_dir / "HEAD").exists()
            if confirm:
                with repo_lock(layout.state_dir, rid, wait=wait, command="sync"):
                    # Under the lock: a concurrent sync may have created it meanwhile.
                    res.created_mirror = not (layout.git_dir / "HEAD").exists()
                    if res.created_mirror:
                        ensure_repo(cfg, rid, node)
                    else:
                        res.cleared_locks, kept = clear_stale_locks(layout.git_dir, layout.state_dir)
                        res.notes += kept_locks_notes(kept)
                    check_drift(cfg, rid, layout.git_dir, node)
                    sync_repo_locked(cfg, rid, remote, confirm=True, result=res)
            elif res.created_mirror:
                upstream = ls_remote(remote, layout.upstream_patterns())
                plan = plan_sync(layout, upstream, {}, lambda a, b: None)
                res.updated, res.snapshots, res.lanes = plan.updates, plan.snapshots, plan.lanes
            else:
                sync_repo_locked(cfg, rid, remote, confirm=False, result=res)
        except GitMirrorError as exc:
            res.ok = False
            res.error = exc
            if exc.hint is None:
                exc.hint = f"git-mirror sync --repo {rid} --confirm --wait"
        except OSError as exc:
            res.ok = False
            res.error = from_os_error(exc, doing=f"sync of {rid} failed")
        res.duration_ms = int((time.monotonic() - started) * 1000)
        if confirm and not isinstance(res.error, BusyError):
            note = record_safely(layout.state_dir, "sync", {
                "at": journal.now_iso(), "ok": res.ok, "durationMs": res.duration_ms,
                "updated": len(res.updated), "snapshots": len(res.snapshots),
                "recovered": res.cleared_locks, "refused": [r.to_json() for r in res.refused],
                "error": res.error.to_json() if res.error else None,
            })
            if note:
                res.notes.append(note)
        audit.record_sync(layout.state_dir, rid, res)
        log.info("sync %s: %s, %d ref update(s), %d snapshot(s)%s", rid,
                 "ok" if res.ok else f"failed [{res.error.code if res.error else ''}]",
                 len(res.updated), len(res.snapshots), " (dry run)" if not confirm else "",
                 extra={"repository": rid, "ok": res.ok, "dryRun": not confirm,
                        "durationMs": res.duration_ms})
        for warning in res.warnings():
            log.warning("%s: %s", rid, warning, extra={"repository": rid})
        progress.done(sync_line(res))
        return res

    results = each(ids, one, jobs_for(cfg, jobs))
    return SyncResult(node=node, dry_run=not confirm, repositories=results)
