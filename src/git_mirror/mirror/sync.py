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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from git_mirror.errors import Code, DriftError, GitError, GitMirrorError
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
from git_mirror.mirror import audit
from git_mirror.mirror.layout import HEADS, STAGE_HEADS, RepoLayout, selected_repositories
from git_mirror.mirror.outcome import PerRepository
from git_mirror.mirror.plan import Ancestry, LaneState, SyncPlan, candidate_snapshots, plan_sync
from git_mirror.mirror.refcheck import (
    Applied,
    Refusal,
    commit_isolated,
    isolate,
    snapshot_probes,
)
from git_mirror.mirror.report import sync_line
from git_mirror.mirror.runner import RepoOperation, run_repositories, sweep_stale_locks
from git_mirror.mirror.upstream_view import fetch_upstream, settle

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.mirror.local_apply import RepoApply

log = logging.getLogger("git_mirror.sync")
T = TypeVar("T")
U = TypeVar("U")
PACK_REFS_AFTER = 256  # a transaction this large is followed by one git pack-refs
# Settings that decide how upstream is reached: a difference is drift (R13). Other settings
# (refspecs shown to people, upload-pack options) are converged by apply.
DRIFT_KEYS = ("remote.upstream.url", "gitmirror.transport", "gitmirror.proxy")


@dataclass(frozen=True)
class SourceTip:
    """A declared source branch upstream has: its tip and that tip's snapshot ref."""

    branch: str
    commit: str
    snapshot_ref: str

    def to_json(self) -> dict[str, str]:
        """``{"branch", "commit", "snapshotRef"}``."""
        return {"branch": self.branch, "commit": self.commit, "snapshotRef": self.snapshot_ref}


@dataclass
class RepoSync:
    """One repository's sync: what moved, what was made, what was refused or went wrong."""

    id: str
    dry_run: bool
    ok: bool = True
    created_mirror: bool = False
    updated: list[RefUpdate] = field(default_factory=list)
    snapshots: list[tuple[str, str]] = field(default_factory=list)
    lanes: list[LaneState] = field(default_factory=list)
    # Every declared source branch's tip upstream and its snapshot ref (new or not): what a
    # follower on a kubernetes node reads from a sync Job's result.
    sources: list[SourceTip] = field(default_factory=list)
    fetched: int = 0
    duration_ms: int = 0
    error: GitMirrorError | None = None
    # Stale git lock files removed before the run (paths in the mirror), and other notes.
    cleared_locks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)  # refs that could not be written

    @property
    def diverged(self) -> bool:
        """A lane of the repository diverged (the mirror and upstream both moved)."""
        return any(lane.diverged for lane in self.lanes)

    def add_warning(self, text: str) -> None:
        """Say ``text`` among the result's warnings, after the diverged lanes and refusals."""
        self.notes.append(text)

    def warnings(self) -> list[str]:
        """A diverged lane is left exactly as it is, and said; so is a refused ref."""
        see = f"see: git-mirror status --repo {self.id}"
        return [f"lane {lane.name} ({lane.ref}) diverged: the mirror has {lane.mirror}, upstream "
                f"has {lane.upstream}; sync left it as it is ({see})"
                for lane in self.lanes if lane.diverged] + [
            f"{r.ref} was not written: {r.reason}; every other ref of {self.id} was (see: "
            f"git-mirror status --repo {self.id})" for r in self.refused] + self.notes

    def to_json(self) -> dict[str, Any]:
        """The repository's entry in ``sync --json`` (and in a sync Job's result)."""
        return {
            "id": self.id, "ok": self.ok, "dryRun": self.dry_run,
            "createdMirror": self.created_mirror, "diverged": self.diverged,
            "warnings": self.warnings(),
            "updated": [u.to_json() for u in self.updated],
            "snapshots": [{"ref": r, "commit": c} for r, c in self.snapshots],
            "lanes": [lane.to_json() for lane in self.lanes],
            "sources": [s.to_json() for s in self.sources],
            "refused": [r.to_json() for r in self.refused],
            "recovered": self.cleared_locks,
            "fetchedCommits": self.fetched, "durationMs": self.duration_ms,
            "error": self.error.to_json() if self.error else None,
        }


@dataclass
class SyncResult(PerRepository):
    """A sync of the selected repositories, in declaration order."""

    node: str
    dry_run: bool
    repositories: list[RepoSync]

    def to_json(self) -> dict[str, Any]:
        """The ``sync --json`` object (CONTRACT section 4)."""
        out: dict[str, Any] = {
            "ok": self.ok, "node": self.node, "dryRun": self.dry_run,
            "diverged": any(r.diverged for r in self.repositories),
            "updated": [{"repository": r.id, **u.to_json()}
                        for r in self.repositories for u in r.updated],
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


def check_drift(cfg: LoadedConfig, rid: str, node: str | None = None) -> RepoApply:
    """How the mirror reaches upstream must be what YAML declares; otherwise ``drift``.

    Only a check: returns apply's plan for the mirror, whose other differences (the lanes the
    protection hook allows, refspecs, HEAD) :func:`write_declared_settings` then writes.
    """
    from git_mirror.mirror.local_apply import is_transport_key, plan_repo

    plan = plan_repo(cfg, rid, node, cached=True)
    # Drift is about how upstream is reached: the declared URL, transport and proxy, and
    # any transport setting (url.*.insteadOf, http.*, core.sshCommand...) the YAML does not
    # declare, which apply removes.
    relevant = [c for c in plan.changes
                if c.key in DRIFT_KEYS or (c.new is None and is_transport_key(c.key))]
    if relevant:
        keys = ", ".join(f"{c.key} is {c.old!r}, YAML says {c.new!r}" for c in relevant)
        raise DriftError(f"mirror {rid} differs from the YAML: {keys}",
                         hint="git-mirror apply --confirm")
    return plan


def write_declared_settings(plan: RepoApply) -> None:
    """Write the settings of a drift-free mirror that differ from the YAML (``plan`` from
    :func:`check_drift`), so that a sync always works with the refs the YAML declares."""
    from git_mirror.mirror.local_apply import execute

    if plan.changes:
        execute(plan)


def converge_declared(cfg: LoadedConfig, rid: str, node: str | None) -> None:
    """:func:`check_drift`, then :func:`write_declared_settings`: before sync or flush writes."""
    write_declared_settings(check_drift(cfg, rid, node))


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


def source_tips(layout: RepoLayout, upstream: dict[str, str]) -> list[SourceTip]:
    """Every declared source branch upstream has, with its tip and that tip's snapshot ref."""
    out = []
    for ref, oid in sorted(upstream.items()):
        if ref.startswith(HEADS):
            branch = ref[len(HEADS):]
            spec = layout.source_for(branch)
            if spec is not None:
                out.append(SourceTip(branch, oid, layout.snapshot_ref(spec.group, branch, oid)))
    return out


class SyncOperation(RepoOperation[RepoSync]):
    """Sync's step in the per-repository runner (:mod:`git_mirror.mirror.runner`)."""

    command = "sync"

    def __init__(self, cfg: LoadedConfig, *, confirm: bool, wait: bool, node: str) -> None:
        super().__init__(cfg, confirm=confirm, wait=wait)
        self.node = node

    def new_result(self, rid: str) -> RepoSync:
        """An empty sync result (a dry run unless confirmed)."""
        return RepoSync(rid, dry_run=not self.confirm)

    def step(self, layout: RepoLayout, result: RepoSync) -> None:
        """Confirmed: under the lock, create or sweep the mirror, check drift, sync. Dry run:
        the plan, from ``ls-remote`` alone for a mirror that does not exist yet."""
        from git_mirror.transport import remote_for

        remote = remote_for(self.cfg, layout.id, self.node)
        result.created_mirror = not (layout.git_dir / "HEAD").exists()
        if self.confirm:
            with self.locked(layout):
                self._prepare(layout, result)
                sync_repo_locked(self.cfg, layout.id, remote, confirm=True, result=result)
        elif result.created_mirror:
            upstream = ls_remote(remote, layout.upstream_patterns())
            plan = plan_sync(layout, upstream, {}, _unknown_ancestry)
            result.updated, result.snapshots, result.lanes = (plan.updates, plan.snapshots,
                                                              plan.lanes)
        else:
            sync_repo_locked(self.cfg, layout.id, remote, confirm=False, result=result)

    def _prepare(self, layout: RepoLayout, result: RepoSync) -> None:
        """Under the lock: create the mirror, or clear what a killed git left; then drift."""
        from git_mirror.mirror.local_apply import ensure_repo

        # A concurrent sync may have created it meanwhile.
        result.created_mirror = not (layout.git_dir / "HEAD").exists()
        if result.created_mirror:
            ensure_repo(self.cfg, layout.id, self.node)
        else:
            sweep_stale_locks(layout, result)
        converge_declared(self.cfg, layout.id, self.node)

    def journal_entry(self, result: RepoSync) -> dict[str, Any]:
        """How many refs moved and snapshots were made, and the refs refused."""
        return {"updated": len(result.updated), "snapshots": len(result.snapshots),
                "refused": [r.to_json() for r in result.refused]}

    def audit(self, layout: RepoLayout, result: RepoSync) -> None:
        """The refs a confirmed, successful sync wrote."""
        audit.record_sync(layout.state_dir, layout.id, result)

    def log(self, result: RepoSync) -> None:
        """One info line, and one warning line for each warning of the result."""
        self.log_outcome(log, result, f"{len(result.updated)} ref update(s), "
                                      f"{len(result.snapshots)} snapshot(s)")
        for warning in result.warnings():
            log.warning("%s: %s", result.id, warning, extra={"repository": result.id})

    def summary(self, result: RepoSync) -> str:
        """The progress line (:func:`git_mirror.mirror.report.sync_line`)."""
        return sync_line(result)


def _unknown_ancestry(_older: str, _newer: str) -> bool | None:
    """The ancestry a mirror that does not exist yet can tell: none."""
    return None


def sync(cfg: LoadedConfig, *, repo: str | None = None, confirm: bool = False,
         wait: bool = False, node: str = "local", lane: str | None = None,
         jobs: int | None = None) -> SyncResult:
    """Sync every declared repository (or one), dry run unless ``confirm``.

    With ``lane`` (the global ``--lane``), only the repositories that declare it; an
    undeclared lane is a usage error. Up to ``jobs`` repositories (default: the config's
    ``jobs``) sync at once; the results are in declaration order.
    """
    from git_mirror.mirror.parallel import jobs_for

    ids = selected_repositories(cfg, repo, lane)
    op = SyncOperation(cfg, confirm=confirm, wait=wait, node=node)
    results = run_repositories(op, ids, jobs_for(cfg, jobs))
    return SyncResult(node=node, dry_run=not confirm, repositories=results)
