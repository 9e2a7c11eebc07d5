"""The facts behind the dashboard: the ``/api/status`` object plus the journals.

Read-only and offline, like ``status``: the mirror's refs, the stage cache, the run journal
of each repository (``runs.jsonl``), the follower run records and the scheduler's state.
Each kind of fact comes from one small function, so that a new journal (a closeout ledger,
an audit log) is one more function and one more template block, nothing else.

:func:`board` gathers everything once, as a :class:`~git_mirror.server.views.Board` handed
to the templates as it is (:mod:`git_mirror.server.views`); the front page shows all of it,
the page of a repository or follower picks its entry. A repository's level is
:mod:`git_mirror.server.health`'s.

Every value here is shown to people as is; nothing may hold a secret. The status object
holds none (sourceRefs and fingerprints only), the journals hold error messages that were
scrubbed when they were written, and :func:`git_mirror.redact.scrub` runs over the whole
page anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.mirror.layout import RepoLayout
from git_mirror.server.health import FAIL, OK, WARN, repo_health, worst
from git_mirror.server.views import Board, ErrorView, FollowerView, RepoView

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

RECENT_RUNS = 10       # journal entries shown per repository
RECENT_EVENTS = 20     # events on the front page
FOLLOWER_RUNS = 10     # runs shown per follower
JOURNAL_TAIL = 64 << 10  # bytes read from the end of a journal: recent entries only

def tail_jsonl(path: Path, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` JSON objects of a JSON-lines file, oldest first; [] when absent.

    Only the file's end is read: a long journal costs the page nothing.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(size - JOURNAL_TAIL, 0))
            chunk = fh.read()
    except OSError:
        return []
    lines = chunk.decode("utf-8", "replace").splitlines()
    if size > JOURNAL_TAIL and lines:
        lines = lines[1:]  # the first line is probably cut
    out: list[dict[str, Any]] = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out[-limit:]


# -- per repository ---------------------------------------------------------------------

def repo_runs(cfg: LoadedConfig, rid: str, limit: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """The newest sync, flush and flush-attempt records of ``rid``, newest first."""
    runs = tail_jsonl(RepoLayout.of(cfg, rid).state_dir / "runs.jsonl", limit)
    return [{"repository": rid, **r} for r in reversed(runs)]


def repo_errors(repo: dict[str, Any], sched: dict[str, Any] | None) -> list[ErrorView]:
    """The errors a person should read now: of the last sync, last flush, last flush attempt."""
    out: list[ErrorView] = []
    for what, rec in (("sync", repo.get("lastSync")), ("flush", repo.get("lastFlush"))):
        if rec and rec.get("ok") is False and rec.get("error"):
            out.append(ErrorView.of(rec["error"], what=f"last {what}", at=rec.get("at")))
    attempts = (sched or {}).get("flushAttempts") or []
    if attempts and not attempts[-1].get("ok") and attempts[-1].get("error"):
        last = attempts[-1]
        if not any(e.message == last["error"].get("message") for e in out):
            out.append(ErrorView.of(last["error"], what="last flush attempt", at=last.get("at")))
    return out


def repo_view(cfg: LoadedConfig, repo: dict[str, Any],
              sched: dict[str, Any] | None) -> RepoView:
    """A status entry with what the page adds: level, reasons, errors, scheduler, runs."""
    level, reasons = repo_health(repo, sched)
    followers = sorted(fid for fid, f in cfg.model.followers.items()
                       if f.repository == repo["id"])
    return RepoView(repo, level, reasons, repo_errors(repo, sched), sched,
                    repo_runs(cfg, repo["id"]), followers)


# -- followers ----------------------------------------------------------------------------

def follower_runs(cfg: LoadedConfig, fid: str, limit: int = FOLLOWER_RUNS) -> list[dict[str, Any]]:
    """The newest runs of a follower, newest first, in the fields the page shows."""
    from git_mirror.follower import state as st

    state = st.FollowerState.of(cfg, fid)
    out = []
    for name in list(reversed(state.run_names()))[:limit]:
        rec = state.load_record(name)
        if rec is None:
            continue
        flush_after = rec.flush_after or {}
        out.append({
            "name": rec.name or None, "status": rec.status, "stale": rec.stale,
            "snapshotRef": rec.snapshot_ref, "commit": rec.commit,
            "laneCommit": rec.published_lane_commit or rec.lane_tip_after,
            "pushed": flush_after.get("pushed") or [],
            "createdAt": rec.created_at, "finishedAt": rec.finished_at,
            "durationMs": rec.duration_ms, "exitCode": rec.exit_code,
            "error": ErrorView.of(rec.error) if rec.error else None,
        })
    return out


def ledger_closeouts(cfg: LoadedConfig, fid: str) -> list[dict[str, Any]]:
    """Closeouts of ``fid`` from the closeout ledger (:mod:`git_mirror.follower.ledger`), the
    newest ones; its ``checks`` may be a list of ``{name, ok, message}`` or ``{name: ok}``."""
    from git_mirror.follower.ledger import ledger_path

    path = ledger_path(cfg)
    out = []
    for entry in tail_jsonl(path, 1000):
        if entry.get("follower") != fid:
            continue
        checks = entry.get("checks") or []
        if isinstance(checks, dict):
            checks = [{"name": k, "ok": bool(v), "message": ""} for k, v in checks.items()]
        out.append({**entry, "checks": checks})
    return out[-RECENT_RUNS:]


# Where closeouts come from (each: config, follower id -> closeout objects).
CloseoutSource = Callable[["LoadedConfig", str], list[dict[str, Any]]]
CLOSEOUT_SOURCES: list[CloseoutSource] = [ledger_closeouts]


def follower_closeouts(cfg: LoadedConfig, fid: str) -> list[dict[str, Any]]:
    """The recorded closeouts of a follower, newest first, each with its ``checks``."""
    out: list[dict[str, Any]] = []
    for source in CLOSEOUT_SOURCES:
        try:
            out.extend(source(cfg, fid))
        # A source is a plug-in reading files of other tools: a broken one must not take
        # the page down, whatever it raises.
        except Exception:  # noqa: BLE001
            continue
    return sorted(out, key=lambda c: str(c.get("at") or ""), reverse=True)


def follower_view(cfg: LoadedConfig, fid: str, repos: dict[str, RepoView]) -> FollowerView:
    """A follower's view; ``repos`` gives its repository's lanes and sources."""
    from git_mirror.follower.triggers import trigger_kind

    f = cfg.model.followers[fid]
    runs = follower_runs(cfg, fid)
    repo = repos.get(f.repository)
    lanes = repo.status.get("lanes", []) if repo else []
    sources = repo.status.get("sources", []) if repo else []
    view = FollowerView(
        fid, f.repository, f.branch, f.lane, trigger_kind(f), runs,
        lane_state=next((ln for ln in lanes if ln["name"] == f.lane), None),
        source=next((s for s in sources if s["branch"] == f.branch), None),
        closeouts=follower_closeouts(cfg, fid))
    last = view.last_run
    if last and last["status"] == "failed":
        view.level, view.reasons = FAIL, [f"the last run {last['name']} failed"]
    elif last and last["status"] == "running":
        view.reasons = [f"run {last['name']} is running"]
    return view


# -- events -------------------------------------------------------------------------------

def audit_events(cfg: LoadedConfig, limit: int = RECENT_EVENTS) -> list[dict[str, Any]]:
    """Ref changes from each repository's audit journal (``state/<id>/audit.jsonl``), when
    there is one: which operation moved which ref, from what to what, for which token."""
    out = []
    for rid in cfg.model.repositories:
        for entry in tail_jsonl(RepoLayout.of(cfg, rid).state_dir / "audit.jsonl", limit):
            out.append({**entry, "repository": entry.get("repository") or rid,
                        "kind": entry.get("operation") or "ref change", "ok": None,
                        "status": "recorded"})
    return out


# Extra event sources: each returns events with at least "at" and "kind".
EventSource = Callable[["LoadedConfig"], list[dict[str, Any]]]
EVENT_SOURCES: list[EventSource] = [audit_events]


def follower_events(followers: list[FollowerView],
                    per_follower: int = 3) -> list[dict[str, Any]]:
    """The newest runs of each follower, as events."""
    out = []
    for f in followers:
        for run in f.runs[:per_follower]:
            finished = run["status"] != "running"
            out.append({"kind": "follower-run", "follower": f.id, "run": run["name"],
                        "at": run.get("finishedAt") or run.get("createdAt"),
                        "ok": run["status"] != "failed" if finished else None,
                        "status": run["status"], "durationMs": run["durationMs"],
                        "error": run["error"]})
    return out


def recent_events(cfg: LoadedConfig, repos: list[RepoView], followers: list[FollowerView],
                  limit: int = RECENT_EVENTS) -> list[dict[str, Any]]:
    """The newest things that happened, across repositories and other event sources."""
    events = [e for r in repos for e in r.runs]
    events += follower_events(followers)
    for source in EVENT_SOURCES:
        try:
            events.extend(source(cfg))
        except Exception:  # noqa: BLE001 - a broken event source (a plug-in) loses its events only
            continue
    events.sort(key=lambda e: str(e.get("at") or ""), reverse=True)
    return events[:limit]


# -- pages --------------------------------------------------------------------------------

def board(cfg: LoadedConfig, node: str, server: dict[str, Any] | None) -> Board:
    """Everything the front page shows (and each detail page picks from)."""
    from git_mirror.mirror.status import status

    data = status(cfg, node=node).to_json()
    sched = {r["id"]: r for r in (server or {}).get("repositories", [])}
    repos = [repo_view(cfg, r, sched.get(r["id"])) for r in data["repositories"]]
    by_id = {r.id: r for r in repos}
    followers = [follower_view(cfg, fid, by_id) for fid in sorted(cfg.model.followers)]
    level = worst([r.level for r in repos] + [f.level for f in followers])
    reasons = [f"{r.id}: {why}" for r in repos for why in r.reasons]
    reasons += [f"follower {f.id}: {why}" for f in followers
                if f.level != OK for why in f.reasons]
    if server is not None and not server.get("ready", True):
        level = worst([level, WARN])
        reasons.append("serve is not ready: not every repository has synced once yet")
    return Board(node, data["config"], level, reasons, data["pendingFlush"],
                 data["githubInSync"], data.get("diverged", False), repos, followers, server,
                 recent_events(cfg, repos, followers))
