"""What the scheduler tells about its work: metrics, the journal, log lines, status JSON.

The scheduler decides what runs when (:mod:`git_mirror.server.jobs`,
:mod:`git_mirror.server.retry`); each run comes back as an :class:`Outcome`, and everything
observable about it is written here: the ``git_mirror_sync_*`` / ``git_mirror_flush_*``
metrics, the ``flush-attempt`` journal records, the ``sync finished`` / ``flush attempt``
log lines, and the per-repository ``server`` entry of ``/api/status``
(:meth:`RepoState.to_json`). Errors stay :class:`~git_mirror.errors.GitMirrorError` values
until that JSON is rendered.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from git_mirror import logs
from git_mirror.errors import Code, GitMirrorError
from git_mirror.mirror import journal
from git_mirror.mirror.layout import RepoLayout
from git_mirror.server.jobs import Flight, in_thread

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.server.metrics import Metrics

T = TypeVar("T")
ATTEMPTS_KEPT = 20   # flush attempts shown per repository in /api/status
log = logs.get("git_mirror.server.scheduler")


class OpResult(Protocol):
    """What sync, flush and maintenance return (their result objects, or a stand-in)."""

    @property
    def ok(self) -> bool:
        """Whether the operation succeeded."""
        ...

    def to_json(self) -> dict[str, Any]:
        """The result as the JSON contract shows it, ``error`` included."""
        ...


def guarded(fn: Callable[[], T]) -> tuple[T | None, GitMirrorError | None]:
    """``fn()``, or the error it raised: a bug becomes an ``internal`` error in the report
    instead of stopping the scheduler."""
    try:
        return fn(), None
    except GitMirrorError as exc:
        return None, exc
    except Exception as exc:  # noqa: BLE001 - last resort of a background job: reported, not raised
        return None, GitMirrorError(str(exc), code=Code.INTERNAL)


def error_of(data: dict[str, Any]) -> GitMirrorError | None:
    """The ``error`` object of an operation's JSON, as an error value again."""
    err = data.get("error")
    if not isinstance(err, dict):
        return None
    details = {k: v for k, v in err.items() if k not in ("code", "message", "hint")}
    return GitMirrorError(str(err.get("message") or ""), hint=err.get("hint"),
                          code=Code.parse(err.get("code"), Code.ERROR), details=details)


def _said(res: OpResult) -> tuple[bool, dict[str, Any]]:
    return bool(res.ok), res.to_json()


@dataclass(frozen=True)
class Outcome:
    """What one run came to."""

    ok: bool
    error: GitMirrorError | None = None
    updated: int = 0                 # sync: refs moved
    pending: bool | None = None      # a lane is ahead after the run (None: cannot tell)
    nothing: bool = False            # flush: no lane was ahead, so nothing ran

    @classmethod
    def of(cls, run: Callable[[], OpResult], pending: Callable[[], bool]) -> Outcome:
        """Run an operation (in a worker thread), then read whether a lane is still ahead."""
        said, error = guarded(lambda: _said(run()))
        now_pending, _ = guarded(pending)
        if said is None:
            return cls(False, error, pending=now_pending)
        ok, data = said
        return cls(ok, error_of(data), len(data.get("updated") or []), now_pending)


@dataclass(frozen=True)
class SyncRecord:
    """The last sync run by this process (``lastSync`` of the scheduler's entry)."""

    at: str
    ok: bool
    reason: str
    duration_ms: int

    def to_json(self) -> dict[str, Any]:
        """The JSON entry."""
        return {"at": self.at, "ok": self.ok, "reason": self.reason,
                "durationMs": self.duration_ms}


@dataclass(frozen=True)
class FlushAttempt:
    """One flush attempt: what ``flushAttempts`` lists and the journal records."""

    at: str
    ok: bool
    reason: str
    attempt: int
    duration_ms: int
    pending: bool | None
    error: GitMirrorError | None

    def to_json(self) -> dict[str, Any]:
        """The JSON entry (also the journal record)."""
        return {"at": self.at, "ok": self.ok, "reason": self.reason, "attempt": self.attempt,
                "durationMs": self.duration_ms, "pendingFlush": self.pending,
                "error": self.error.to_json() if self.error else None}


def _utc(wall: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)) if wall else None


@dataclass
class RepoState:
    """What the scheduler knows of one repository, and reports."""

    id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sync: Flight = field(default_factory=Flight)
    flush: Flight = field(default_factory=Flight)
    synced: bool = False                 # a sync succeeded in this process
    last_sync: SyncRecord | None = None
    pending_flush: bool | None = None
    flush_failures: int = 0
    flush_next_at: float | None = None   # wall clock of the next retry, while backing off
    flush_gave_up: bool = False
    flush_attempts: collections.deque[FlushAttempt] = field(
        default_factory=lambda: collections.deque(maxlen=ATTEMPTS_KEPT))

    def to_json(self) -> dict[str, Any]:
        """The repository's entry under ``server.repositories`` of ``/api/status``."""
        return {
            "id": self.id, "syncRunning": self.sync.busy, "syncQueued": self.sync.again,
            "syncRuns": self.sync.runs, "synced": self.synced,
            "lastSync": self.last_sync.to_json() if self.last_sync else None,
            "flushRunning": self.flush.busy, "flushQueued": self.flush.again,
            "flushRuns": self.flush.runs, "flushConsecutiveFailures": self.flush_failures,
            "flushGaveUp": self.flush_gave_up, "flushNextRetryAt": _utc(self.flush_next_at),
            "flushAttempts": [a.to_json() for a in self.flush_attempts],
        }


class Reporter:
    """Writes each run's outcome to the metrics, the repository's state, journal and log."""

    def __init__(self, cfg: LoadedConfig, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics

    def queue_depth(self, kind: str, depth: int) -> None:
        """``git_mirror_queue_depth{kind}``."""
        self.metrics.queue_depth.labels(kind).set(depth)

    def pending(self, st: RepoState, pending: bool | None) -> None:
        """Whether a lane is ahead, when known."""
        if pending is not None:
            st.pending_flush = pending
            self.metrics.pending_flush.labels(st.id).set(1 if pending else 0)

    def sync_started(self, st: RepoState, reason: str) -> None:
        """A sync run begins."""
        st.sync.runs += 1
        log.info("sync started", repository=st.id, reason=reason)

    def sync_done(self, st: RepoState, reason: str, outcome: Outcome, took: float) -> None:
        """A sync run ended."""
        rid, ms = st.id, int(took * 1000)
        self.metrics.sync.observe(rid, outcome.ok, took)
        if outcome.ok:
            st.synced = True
        self.pending(st, outcome.pending)
        st.last_sync = SyncRecord(journal.now_iso(), outcome.ok, reason, ms)
        if outcome.ok:
            log.info("sync finished", repository=rid, reason=reason, ok=True, durationMs=ms,
                     updated=outcome.updated, pendingFlush=outcome.pending)
        else:
            log.warning("sync failed", repository=rid, reason=reason, durationMs=ms,
                        error=outcome.error.to_json() if outcome.error else None)

    async def flush_done(self, st: RepoState, reason: str, outcome: Outcome,
                         took: float) -> None:
        """A flush attempt ended (one that ran: a lane was ahead)."""
        rid = st.id
        st.flush.runs += 1
        self.metrics.flush.observe(rid, outcome.ok, took)
        attempt = FlushAttempt(journal.now_iso(), outcome.ok, reason, st.flush_failures + 1,
                               int(took * 1000), outcome.pending, outcome.error)
        st.flush_attempts.append(attempt)
        state_dir = RepoLayout.of(self.cfg, rid).state_dir
        try:
            await in_thread(lambda: journal.record(state_dir, "flush-attempt", attempt.to_json()),
                            f"journal-{rid}")
        except OSError as exc:
            log.warning("cannot record flush attempt", repository=rid, error=str(exc))
        (log.info if outcome.ok else log.warning)(
            "flush attempt", repository=rid, reason=reason, ok=outcome.ok,
            error=attempt.to_json()["error"], durationMs=attempt.duration_ms,
            pendingFlush=outcome.pending)

    def flush_failures(self, st: RepoState) -> None:
        """``git_mirror_flush_consecutive_failures``."""
        self.metrics.flush_consecutive_failures.labels(st.id).set(st.flush_failures)

    def maintenance_done(self, rid: str, res: OpResult | None,
                         error: GitMirrorError | None) -> None:
        """A maintenance run ended (``res``), or raised ``error``."""
        ok = res is not None and bool(res.ok)
        if res is not None:
            log.info("maintenance", repository=rid, ok=ok, result=res.to_json())
        else:
            log.warning("maintenance failed", repository=rid,
                        error=error.message if error else None)
        self.metrics.maintenance_total.labels(rid, "ok" if ok else "error").inc()
