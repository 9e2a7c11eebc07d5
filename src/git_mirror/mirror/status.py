"""``status``: what the mirror holds and how it compares with upstream as last observed.

Offline by construction (R14): upstream-side fields (``githubCommit``) are the mirror's own
``refs/mirror-stage/...`` refs. One ``for-each-ref`` per repository, shared by the status
entry and the integrity check, both done in the parallel per-repository work; an ancestry
check only for a lane that differs from its stage ref. The results it builds are the typed
values of ``mirror/status_results.py`` (importable from here as well).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

from git_mirror.config.egress import effective_proxy_name, secret_uses
from git_mirror.config.secrets import secret_path
from git_mirror.git.refs import has_commits, is_ancestor, list_refs
from git_mirror.mirror import journal
from git_mirror.mirror.layout import HEADS, STAGE_HEADS, RepoLayout, selected_repositories
from git_mirror.mirror.plan import lane_state
from git_mirror.mirror.status_results import (
    Egress,
    LaneStatus,
    RepoStatus,
    SecretEntry,
    SourceStatus,
    StatusResult,
)

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import SecretRef
    from git_mirror.mirror.integrity import Problem
    from git_mirror.mirror.layout import LaneSpec

__all__ = ["Egress", "LaneStatus", "RepoStatus", "SecretEntry", "SourceStatus",
           "StatusResult", "egress", "repo_status", "secret_entries", "snapshot_prefixes",
           "status"]


def secret_entries(cfg: LoadedConfig, rid: str, node: str | None = None) -> list[SecretEntry]:
    """Role, sourceRef and redacted fingerprint of every secret a repository uses."""
    return [_secret_entry(cfg, role, ref, path)
            for role, ref, path in secret_uses(cfg, rid, node)]


def _secret_entry(cfg: LoadedConfig, role: str, ref: SecretRef,
                  path: tuple[str, ...]) -> SecretEntry:
    """One secret's entry: where it comes from and its fingerprint, or why there is none."""
    from git_mirror.transport.fingerprint import file_fingerprint, text_fingerprint

    entry = partial(SecretEntry, role, ref.describe(), cfg.where(*path))
    try:
        file = secret_path(ref, cfg.base_dir)
        if file is not None:
            return entry(fingerprint=file_fingerprint(file, role))
        if ref.env is not None and ref.env in os.environ:
            # Same fingerprint whatever the source: an identity from the environment
            # is still an SSH key (SHA256: of its public half).
            return entry(fingerprint=text_fingerprint(os.environ[ref.env], role))
        return entry(error="not set")
    except OSError as exc:
        return entry(error=f"unreadable: {exc.strerror}")


def egress(cfg: LoadedConfig, rid: str, node: str | None) -> Egress:
    """The declared transport and proxy of ``rid`` on ``node`` (a repository's own proxy wins
    over the node's ``egressProxy``)."""
    repo = cfg.model.repositories[rid]
    declared = partial(Egress, repo.transport.mode, repo.upstream,
                       cfg.where("repositories", rid, "transport", "mode"))
    name = effective_proxy_name(cfg, rid, node)
    if name is None:
        return declared("none", None, None, cfg.where("repositories", rid, "transport"))
    p = cfg.model.proxies[name]
    where = (("repositories", rid, "transport", "proxy") if repo.transport.proxy
             else ("nodes", node or "local", "egressProxy"))
    return declared(p.mode, name, p.url, cfg.where(*where))


def snapshot_prefixes(layout: RepoLayout) -> list[str]:
    """The ref prefixes under which the snapshots of the declared sources live."""
    out = set()
    for spec in layout.sources:
        group = f"{layout.snapshot_prefix}{spec.group}/"
        out.add(group if spec.is_glob or "?" in spec.pattern or "[" in spec.pattern
                else f"{group}{spec.pattern}/")
    return sorted(out)


def repo_status(cfg: LoadedConfig, rid: str, node: str | None = None, *,
                check_snapshots: bool = True,
                all_refs: Mapping[str, str] | None = None) -> RepoStatus:
    """One repository's status entry.

    ``check_snapshots=False`` skips the lookup of the snapshot refs (their names are then
    unchecked): enough for pendingFlush/githubInSync. ``all_refs``: every ref of the mirror,
    just read by the caller (no ``for-each-ref`` then).
    """
    layout = RepoLayout.of(cfg, rid)
    last_sync = journal.last(layout.state_dir, "sync")
    entry = RepoStatus(
        rid, str(layout.git_dir), (layout.git_dir / "HEAD").exists(), egress(cfg, rid, node),
        secret_entries(cfg, rid, node), last_sync, journal.last(layout.state_dir, "flush"))
    if not entry.exists:
        entry.hint = "git-mirror apply --confirm && git-mirror sync --confirm"
        return entry
    # One for-each-ref: heads, stage heads and, when they are checked, the snapshots of the
    # declared sources (by their group and branch prefix), so that status of many
    # repositories costs one git process each.
    prefixes = [HEADS, STAGE_HEADS, *(snapshot_prefixes(layout) if check_snapshots else [])]
    if all_refs is None:
        refs = list_refs(layout.git_dir, prefixes)
    else:  # the same refs as that for-each-ref would list (its patterns are prefixes)
        refs = {ref: oid for ref, oid in all_refs.items() if ref.startswith(tuple(prefixes))}
    # Upstream has been observed once a sync succeeded (a later failed one leaves the stage
    # refs as they were, still upstream as last observed).
    synced = last_sync is not None and (bool(last_sync.ok)
                                        or any(r.startswith(STAGE_HEADS) for r in refs))
    entry.sources = _sources(layout, refs, synced, check_snapshots=check_snapshots)
    entry.lanes = [_lane(layout, lane, refs, synced) for lane in layout.lanes]
    entry.pending_flush = any(lane.pending_flush for lane in entry.lanes)
    entry.github_in_sync = (all(s.github_in_sync for s in entry.sources)
                            and all(lane.github_in_sync for lane in entry.lanes) and synced)
    return entry


def _sources(layout: RepoLayout, refs: Mapping[str, str], synced: bool, *,
             check_snapshots: bool) -> list[SourceStatus]:
    """Every source branch the mirror or its stage has; a snapshot ref that does not exist is
    said as None when the snapshots were read."""
    branches = ({r[len(HEADS):] for r in refs if r.startswith(HEADS)}
                | {r[len(STAGE_HEADS):] for r in refs if r.startswith(STAGE_HEADS)})
    sources = []
    for branch in sorted(branches):
        spec = layout.source_for(branch)
        if spec is None:
            continue
        mirror, stage = refs.get(HEADS + branch), refs.get(STAGE_HEADS + branch)
        snapshot = layout.snapshot_ref(spec.group, branch, mirror) if mirror else None
        if check_snapshots and snapshot not in refs:
            snapshot = None
        sources.append(SourceStatus(branch, spec.pattern, spec.group, mirror, stage, snapshot,
                                    mirror == stage and synced))
    return sources


def _lane(layout: RepoLayout, lane: LaneSpec, refs: Mapping[str, str],
          synced: bool) -> LaneStatus:
    """A lane's row: pendingFlush when it holds commits its stage ref lacks (ahead or
    diverged); before the first sync nothing of upstream has been observed, so no row is in
    sync, as the repository and the top level say."""
    mirror, stage = refs.get(lane.ref), refs.get(lane.stage_ref)

    def ancestry(a: str, b: str) -> bool | None:
        if len(has_commits(layout.git_dir, (a, b))) < 2:
            return None
        return is_ancestor(layout.git_dir, a, b)

    st = lane_state(lane.name, lane.ref, mirror, stage, ancestry)
    return LaneStatus(
        lane.name, lane.ref, mirror, stage,
        pending_flush=st.action in ("ahead", "diverged", "unknown") and mirror is not None,
        github_in_sync=mirror == stage and synced, diverged=st.action == "diverged",
        state=st.action if st.action != "created" else "behind")


def status(cfg: LoadedConfig, *, repo: str | None = None, node: str = "local",
           lane: str | None = None, jobs: int | None = None) -> StatusResult:
    """The status object of CONTRACT section 4, from the cache only (``jobs`` at once).

    With ``lane`` (the global ``--lane``), the repositories that declare it, as for sync and
    flush.
    """
    from git_mirror.mirror.integrity import integrity_error, node_problems, summary
    from git_mirror.mirror.parallel import each, jobs_for

    ids = selected_repositories(cfg, repo, lane)
    done = each(ids, lambda rid: _checked_status(cfg, rid, node), jobs_for(cfg, jobs))
    problems = node_problems(cfg) + [p for _, mine in done for p in mine]
    result = StatusResult(node, str(cfg.path), cfg.sha256, str(cfg.cache_dir),
                          [entry for entry, _ in done],
                          {"ok": True, "problems": [], "hint": None})
    if problems:
        result.integrity = summary(problems).to_json()
        result.error = integrity_error(problems)
    return result


def _checked_status(cfg: LoadedConfig, rid: str, node: str) -> tuple[RepoStatus, list[Problem]]:
    """One repository's status entry with, under ``integrity``, the checks of ``verify``.

    Offline (the mirror's git config from its cached reading); returns the problems found too.
    Every ref is read once, by one ``for-each-ref``, for the entry and the checks alike.
    """
    from git_mirror.mirror import integrity
    from git_mirror.mirror.local_apply import SETTINGS_CACHE, read_settings

    layout = RepoLayout.of(cfg, rid)
    if not (layout.git_dir / "HEAD").exists():
        return repo_status(cfg, rid, node), []
    refs = list_refs(layout.git_dir, ["refs/"])
    entry = repo_status(cfg, rid, node, all_refs=refs)
    if not entry.exists:
        return entry, []
    settings = read_settings(layout.git_dir, layout.state_dir / SETTINGS_CACHE)
    mine = integrity.repository_problems(cfg, rid, settings=settings, refs=refs)
    entry.integrity = integrity.summary(mine).to_json()
    return entry, mine
