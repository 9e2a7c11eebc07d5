"""The audit journal: what happened to each ref, by which operation, for whom.

One JSON line per ref change, appended to ``<cache>/state/<id>/audit.jsonl``::

    {"at": "2026-01-01T00:00:00.123Z", "repository": "hwlab", "operation": "push",
     "ref": "refs/heads/gitops/v03", "from": "<old>", "to": "<new>", "where": "mirror",
     "token": "ci", "requestId": "5f0c..."}

``operation`` is ``sync``, ``flush`` (``where: upstream`` for what the push changed
upstream, ``mirror`` for the stage refs it rechecked), ``push`` (a client's push through
``serve``: ``token`` is the token's name), ``prune`` (``snapshots prune``), ``apply`` (HEAD
and the protection hook) or ``quarantine`` (``verify --repair``). All changes of one
operation share a ``requestId`` (the HTTP request's id for pushes). ``from`` null is a
creation, ``to`` null a deletion.

Append-only: lines are added with one ``write`` under an ``flock``; when the file passes
:data:`MAX_BYTES` it is renamed to ``audit.jsonl.1`` (older ones shift up to
:data:`KEEP`), so the journal's size is bounded. A failure to write it is logged and never
hides the result of the operation that changed the refs: the refs are the truth, this is
their history. ``git-mirror log`` reads it.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.git.refs import RefUpdate

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.mirror.flush import RepoFlush

AUDIT = "audit.jsonl"
MAX_BYTES = 8 << 20
KEEP = 5
log = logging.getLogger("git_mirror.audit")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_request_id() -> str:
    """A fresh id for the changes of one request (16 hex digits)."""
    return uuid.uuid4().hex[:16]


def record(state_dir: Path, rid: str, operation: str, updates: Iterable[RefUpdate], *,
           token: str | None = None, request_id: str | None = None, where: str = "mirror",
           extra: Sequence[dict[str, Any]] | None = None) -> None:
    """Append one line per update (``extra[i]`` adds fields to the i-th line)."""
    changes = list(updates)
    if not changes:
        return
    at = _now()
    rid_ = request_id or new_request_id()
    lines = []
    for i, u in enumerate(changes):
        entry: dict[str, Any] = {"at": at, "repository": rid, "operation": operation,
                                 "ref": u.ref, "from": u.old, "to": u.new, "where": where,
                                 "token": token, "requestId": rid_}
        if extra is not None and i < len(extra):
            entry.update(extra[i])
        lines.append(json.dumps(entry, sort_keys=True) + "\n")
    try:
        _append(state_dir, "".join(lines).encode())
    except OSError as exc:
        log.warning("audit journal not written for %s (%s): %s", rid, operation, exc,
                    extra={"repository": rid})


def _append(state_dir: Path, data: bytes) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = os.open(state_dir / (AUDIT + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = state_dir / AUDIT
        try:
            if path.stat().st_size + len(data) > MAX_BYTES:
                _rotate(path)
        except FileNotFoundError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    finally:
        os.close(lock)  # releases the flock


def _rotate(path: Path) -> None:
    for n in range(KEEP - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def record_sync(state_dir: Path, rid: str, result: Any, *, request_id: str | None = None) -> None:
    """The refs a successful sync changed and the snapshots it created."""
    if not getattr(result, "ok", False) or getattr(result, "dry_run", True):
        return
    updates = list(result.updated) + [RefUpdate(ref, commit, None)
                                      for ref, commit in result.snapshots]
    record(state_dir, rid, "sync", updates, request_id=request_id)


def record_flush(state_dir: Path, rid: str, result: RepoFlush) -> None:
    """What a flush changed: lanes upstream, stage refs here, and its recovery sync's refs."""
    if result.dry_run:
        return
    request_id = new_request_id()
    record(state_dir, rid, "flush",
           list(result.pushed),
           where="upstream", request_id=request_id)
    record(state_dir, rid, "flush", result.stage_updates, request_id=request_id)
    recovery = result.recovery or {}
    if recovery.get("ok"):
        updated = recovery.get("updated") or []
        record(state_dir, rid, "sync", [RefUpdate(u["ref"], u["to"], u["from"]) for u in updated],
               request_id=request_id, extra=[{"trigger": "flush-recovery"}] * len(updated))


@dataclass(frozen=True)
class AuditLog:
    """What ``log`` answers: the node, and the journal's entries as recorded (oldest first)."""

    node: str
    entries: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """``{"ok": true, "node", "entries"}``."""
        return {"ok": True, "node": self.node, "entries": self.entries}


def _files(state_dir: Path) -> list[Path]:
    """The journal's files, oldest first."""
    rotated = [state_dir / f"{AUDIT}.{n}" for n in range(KEEP, 0, -1)]
    return [p for p in [*rotated, state_dir / AUDIT] if p.exists()]


def _matches(entry: dict[str, Any], ref: str | None) -> bool:
    if ref is None:
        return True
    names = [str(entry.get("ref") or ""), str(entry.get("quarantinedAs") or "")]
    if any(ch in ref for ch in "*?["):
        return any(fnmatch.fnmatchcase(n, ref) for n in names)
    return ref in names


def read(cfg: LoadedConfig, *, repo: str | None = None, ref: str | None = None,
         operation: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The journal's entries, oldest first (the newest ``limit`` when given)."""
    from git_mirror.mirror.layout import RepoLayout, selected_repositories

    out: list[dict[str, Any]] = []
    for rid in selected_repositories(cfg, repo):
        for path in _files(RepoLayout.of(cfg, rid).state_dir):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut by a full disk: the others still count
                if not isinstance(entry, dict):
                    continue
                if _matches(entry, ref) and operation in (None, entry.get("operation")):
                    out.append(entry)
    out.sort(key=lambda e: str(e.get("at") or ""))
    if limit is not None and limit >= 0:
        out = out[-limit:] if limit else []
    return out
