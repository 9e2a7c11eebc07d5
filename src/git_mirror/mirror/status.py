"""``status``: what the mirror holds and how it compares with upstream as last observed.

Offline by construction (R14): upstream-side fields (``githubCommit``) are the mirror's own
``refs/mirror-stage/...`` refs. One ``for-each-ref`` per repository, shared by the status
entry and the integrity check, both done in the parallel per-repository work; an ancestry
check only for a lane that differs from its stage ref.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_mirror.config.egress import effective_proxy_name
from git_mirror.config.secrets import secret_path
from git_mirror.git.refs import has_commits, is_ancestor, list_refs
from git_mirror.mirror import journal
from git_mirror.mirror.layout import HEADS, STAGE, STAGE_HEADS, RepoLayout, selected_repositories
from git_mirror.mirror.plan import lane_state

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import SecretRef
    from git_mirror.mirror.integrity import Problem


def secret_entries(cfg: LoadedConfig, rid: str, node: str | None = None) -> list[dict[str, Any]]:
    """role, sourceRef and redacted fingerprint of every secret a repository uses."""
    from git_mirror.transport.fingerprint import file_fingerprint, text_fingerprint

    repo = cfg.model.repositories[rid]
    t = repo.transport
    refs: list[tuple[str, SecretRef, tuple[str, ...]]] = []
    for role, ref, key in (("identity", t.identity, "identity"), ("knownHosts", t.known_hosts, "knownHosts"),
                           ("token", t.token, "token")):
        if ref is not None:
            refs.append((role, ref, ("repositories", rid, "transport", key)))
    proxy_name = effective_proxy_name(cfg, rid, node)
    if proxy_name and cfg.model.proxies[proxy_name].auth is not None:
        auth = cfg.model.proxies[proxy_name].auth
        assert auth is not None
        refs.append(("proxyAuth", auth, ("proxies", proxy_name, "auth")))
    out = []
    for role, ref, path in refs:
        entry: dict[str, Any] = {"role": role, "sourceRef": ref.describe(), "source": "yaml",
                                 "at": cfg.where(*path), "fingerprint": None}
        try:
            file = secret_path(ref, cfg.base_dir)
            if file is not None:
                entry["fingerprint"] = file_fingerprint(file, role)
            elif ref.env is not None and ref.env in os.environ:
                # Same fingerprint whatever the source: an identity from the environment
                # is still an SSH key (SHA256: of its public half).
                entry["fingerprint"] = text_fingerprint(os.environ[ref.env], role)
            else:
                entry["error"] = "not set"
        except OSError as exc:
            entry["error"] = f"unreadable: {exc.strerror}"
        out.append(entry)
    return out


def transport_entry(cfg: LoadedConfig, rid: str, node: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    repo = cfg.model.repositories[rid]
    transport = {"mode": repo.transport.mode, "url": repo.upstream, "source": "yaml",
                 "at": cfg.where("repositories", rid, "transport", "mode")}
    name = effective_proxy_name(cfg, rid, node)
    if name is None:
        proxy: dict[str, Any] = {"mode": "none", "name": None, "source": "yaml",
                                 "at": cfg.where("repositories", rid, "transport")}
    else:
        p = cfg.model.proxies[name]
        where = ("repositories", rid, "transport", "proxy") if repo.transport.proxy else ("nodes", node or "local", "egressProxy")
        proxy = {"mode": p.mode, "name": name, "url": p.url, "source": "yaml", "at": cfg.where(*where)}
    return transport, proxy


@dataclass
class StatusResult:
    data: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.data.get("ok"))

    def to_json(self) -> dict[str, Any]:
        return self.data


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
                all_refs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One repository's status entry. ``check_snapshots=False`` skips the lookup of the
    snapshot refs (their names are then unchecked): enough for pendingFlush/githubInSync.
    ``all_refs``: every ref of the mirror, just read by the caller (no ``for-each-ref`` then)."""
    layout = RepoLayout.of(cfg, rid)
    transport, proxy = transport_entry(cfg, rid, node)
    exists = (layout.git_dir / "HEAD").exists()
    last_sync = journal.last(layout.state_dir, "sync")
    last_flush = journal.last(layout.state_dir, "flush")
    entry: dict[str, Any] = {
        "id": rid, "mirror": {"path": str(layout.git_dir), "exists": exists},
        "transport": transport, "proxy": proxy, "secrets": secret_entries(cfg, rid, node),
        "refSources": {"githubFieldsAreMirrorStageCache": True, "stagePrefix": STAGE},
        "lastSync": _run_summary(last_sync), "lastFlush": _run_summary(last_flush),
        "sources": [], "lanes": [], "pendingFlush": False, "githubInSync": False, "diverged": False,
    }
    if not exists:
        entry["hint"] = "git-mirror apply --confirm && git-mirror sync --confirm"
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
    synced = last_sync is not None and (bool(last_sync.get("ok"))
                                        or any(r.startswith(STAGE_HEADS) for r in refs))
    sources = []
    for ref in sorted(set(refs) | {HEADS + r[len(STAGE_HEADS):] for r in refs if r.startswith(STAGE_HEADS)}):
        if not ref.startswith(HEADS):
            continue
        branch = ref[len(HEADS):]
        spec = layout.source_for(branch)
        if spec is None:
            continue
        mirror, stage = refs.get(ref), refs.get(STAGE_HEADS + branch)
        sources.append({"branch": branch, "pattern": spec.pattern, "snapshotGroup": spec.group,
                        "mirrorCommit": mirror, "githubCommit": stage,
                        "snapshotRef": layout.snapshot_ref(spec.group, branch, mirror) if mirror else None,
                        "githubInSync": mirror == stage and synced})
    snaps = [str(s["snapshotRef"]) for s in sources if s["snapshotRef"]]
    if check_snapshots:
        existing = {name for name in snaps if name in refs}
        for s in sources:
            if s["snapshotRef"] not in existing:
                s["snapshotRef"] = None
    in_sync = all(s["githubInSync"] for s in sources)
    pending = False
    lanes = []
    for lane in layout.lanes:
        mirror, stage = refs.get(lane.ref), refs.get(lane.stage_ref)

        def ancestry(a: str, b: str) -> bool | None:
            if len(has_commits(layout.git_dir, (a, b))) < 2:
                return None
            return is_ancestor(layout.git_dir, a, b)

        st = lane_state(lane.name, lane.ref, mirror, stage, ancestry)
        # pendingFlush: the lane holds commits its stage ref lacks (ahead or diverged).
        lane_pending = st.action in ("ahead", "diverged", "unknown") and mirror is not None
        # Before the first sync nothing of upstream has been observed: no row is in sync,
        # as the repository and the top level say.
        lane_sync = mirror == stage and synced
        pending = pending or lane_pending
        in_sync = in_sync and lane_sync
        lanes.append({"name": lane.name, "ref": lane.ref, "mirrorCommit": mirror, "githubCommit": stage,
                      "pendingFlush": lane_pending, "githubInSync": lane_sync,
                      "diverged": st.action == "diverged", "state": st.action if st.action != "created" else "behind"})
    entry.update(sources=sources, lanes=lanes, pendingFlush=pending,
                 diverged=any(lane["diverged"] for lane in lanes),
                 githubInSync=in_sync and synced)
    return entry


def _run_summary(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    out = {"at": rec.get("at"), "ok": rec.get("ok"), "durationMs": rec.get("durationMs")}
    if rec.get("error"):
        out["error"] = rec["error"]
    return out


def status(cfg: LoadedConfig, *, repo: str | None = None, node: str = "local",
           lane: str | None = None, jobs: int | None = None) -> StatusResult:
    """The status object of CONTRACT section 4, from the cache only (``jobs`` at once); with
    ``lane`` (the global ``--lane``), the repositories that declare it, as for sync and flush."""
    from git_mirror.mirror.integrity import node_problems
    from git_mirror.mirror.parallel import each, jobs_for

    ids = selected_repositories(cfg, repo, lane)
    done = each(ids, lambda rid: _checked_status(cfg, rid, node), jobs_for(cfg, jobs))
    repos = [entry for entry, _ in done]
    problems = node_problems(cfg) + [p for _, mine in done for p in mine]
    data = {
        "ok": True, "node": node, "source": "yaml",
        "config": {"path": str(cfg.path), "sha256": cfg.sha256},
        "cache": str(cfg.cache_dir),
        "pendingFlush": any(r["pendingFlush"] for r in repos),
        "diverged": any(r["diverged"] for r in repos),
        "githubInSync": all(r["githubInSync"] for r in repos),
        "repositories": repos,
    }
    if problems:
        from git_mirror.mirror.integrity import integrity_error, summary

        data.update(ok=False, integrity=summary(problems).to_json(),
                    error=integrity_error(problems).to_json())
    else:
        data["integrity"] = {"ok": True, "problems": [], "hint": None}
    return StatusResult(data)


def _checked_status(cfg: LoadedConfig, rid: str, node: str) -> tuple[dict[str, Any], list[Problem]]:
    """One repository's status entry with, under ``integrity``, the checks of ``verify``
    (offline; the mirror's git config from its cached reading), and the problems found.
    Every ref is read once, by one ``for-each-ref``, for the entry and the checks alike."""
    from git_mirror.mirror import integrity
    from git_mirror.mirror.local_apply import SETTINGS_CACHE, read_settings

    layout = RepoLayout.of(cfg, rid)
    if not (layout.git_dir / "HEAD").exists():
        return repo_status(cfg, rid, node), []
    refs = list_refs(layout.git_dir, ["refs/"])
    entry = repo_status(cfg, rid, node, all_refs=refs)
    if not entry["mirror"]["exists"]:
        return entry, []
    settings = read_settings(layout.git_dir, layout.state_dir / SETTINGS_CACHE)
    mine = integrity.repository_problems(cfg, rid, settings=settings, refs=refs)
    entry["integrity"] = integrity.summary(mine).to_json()
    return entry, mine
