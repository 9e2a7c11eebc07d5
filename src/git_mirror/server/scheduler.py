"""Work scheduling in one process: sync, flush and maintenance per repository.

::

    request_sync(rid)   webhook, interval tick, startup
    request_flush(rid)  after a push to the mirror; after a sync that finds a lane ahead
    maintenance         every maintenanceIntervalSeconds, after the first sync

Per repository and kind of work there is at most one run at a time (single flight). A
request while a run is going on marks the repository "again": however many requests arrive,
exactly one more run follows the current one. A request that arrives before the run has
really started (it may wait for the repository) is absorbed by that run. A webhook's run
starts at once (what it reports is new); the repository then stays busy for
``SETTLE_SECONDS``, and one more run after a busy one first waits ``SETTLE_SECONDS``, so that
the rest of a burst of deliveries is served by one more run: at most two syncs.

Sync, flush and maintenance of one repository are serialised by an asyncio lock (and, inside
the operations, by the repository's file lock, which also keeps out a CLI run). They are
blocking, so each runs in a daemon thread: the event loop never waits on git, and a job still
running when the shutdown deadline passes does not hold the process. At most ``jobs`` (the
config's top-level ``jobs``) run at once across repositories; a slow repository holds one
slot, never the others.

A failed flush is retried after ``flushBackoffSeconds``, doubling up to
``flushBackoffMaxSeconds``, at most ``flushMaxAttempts`` times in a row; every attempt is
recorded (journal kind ``flush-attempt``, metrics, log). The next push or a sync that still
finds the lane ahead starts a new round.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from git_mirror.errors import Code, GitMirrorError
from git_mirror.mirror import journal
from git_mirror.mirror.layout import RepoLayout
from git_mirror.server import logs

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.server.metrics import Metrics

T = TypeVar("T")
# Requests that wait SETTLE_SECONDS before their run starts; startup, interval and a
# webhook do not (a webhook's run is followed by SETTLE_SECONDS of coalescing instead).
SETTLED_REASONS = frozenset({"coalesced"})
SETTLE_SECONDS = 1.0
# Flush errors that no retry can cure: a lane and upstream both moved; a config problem.
FINAL_CODES = frozenset({Code.DIVERGED, Code.CONFIG, Code.USAGE, Code.DRIFT, Code.NOT_APPLIED})
log = logs.get("git-mirror.scheduler")


async def in_thread(fn: Callable[[], T], name: str) -> T:
    """Run blocking ``fn`` in a fresh daemon thread and await its result."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(deliver, False, exc)
        else:
            loop.call_soon_threadsafe(deliver, True, value)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await fut


@dataclass
class Flight:
    """One kind of work for one repository: the running task and the "again" mark."""

    task: asyncio.Task[None] | None = None
    again: bool = False
    runs: int = 0

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()


@dataclass
class RepoState:
    id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sync: Flight = field(default_factory=Flight)
    flush: Flight = field(default_factory=Flight)
    synced: bool = False                 # a sync succeeded in this process
    last_sync: dict[str, Any] | None = None
    pending_flush: bool | None = None
    flush_failures: int = 0
    flush_next_at: float | None = None   # wall clock of the next retry, while backing off
    flush_gave_up: bool = False
    flush_attempts: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=20))


Op = Callable[..., Any]


class Scheduler:
    """Owns every background job of ``serve``."""

    def __init__(self, cfg: LoadedConfig, metrics: Metrics, *, node: str = "local",
                 sync_op: Op | None = None, flush_op: Op | None = None,
                 maintain_op: Op | None = None, settle: float = SETTLE_SECONDS) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.node = node
        s = cfg.model.server
        self.interval = float(s.sync_interval_seconds)
        self.ready_grace = float(s.ready_grace_seconds)
        self.backoff = float(s.flush_backoff_seconds)
        self.backoff_max = float(s.flush_backoff_max_seconds)
        self.max_attempts = int(s.flush_max_attempts)
        self.maintenance_interval = float(s.maintenance_interval_seconds)
        self.settle = settle
        self._sync_op = sync_op
        self._flush_op = flush_op
        self._maintain_op = maintain_op
        self.repos = {rid: RepoState(rid) for rid in cfg.model.repositories}
        self.jobs = max(1, int(cfg.model.jobs))
        self._slots = asyncio.Semaphore(self.jobs)
        self.started_at = time.monotonic()
        self.stopping = False
        self._stop_event: asyncio.Event | None = None
        self._timers: list[asyncio.Task[None]] = []
        self._jobs: set[asyncio.Task[None]] = set()

    # --- operations (late imports: the flush module may be replaced at runtime) ---------
    def _sync(self, rid: str) -> Any:
        if self._sync_op is not None:
            return self._sync_op(self.cfg, repo=rid, confirm=True, wait=True, node=self.node)
        from git_mirror.mirror.sync import sync

        return sync(self.cfg, repo=rid, confirm=True, wait=True, node=self.node)

    def _flush(self, rid: str) -> Any:
        if self._flush_op is not None:
            return self._flush_op(self.cfg, repo=rid, confirm=True, wait=True, node=self.node)
        from git_mirror.mirror.flush import flush

        return flush(self.cfg, repo=rid, confirm=True, wait=True, node=self.node)

    def _maintain(self, rid: str) -> Any:
        if self._maintain_op is not None:
            return self._maintain_op(self.cfg, rid)
        from git_mirror.mirror.maintenance import maintain

        return maintain(self.cfg, rid)

    def _pending(self, rid: str) -> bool:
        """A lane holds commits upstream lacks and flush can send them (not diverged).

        A diverged lane is pending too, but no retry can flush it: it waits for a person
        (status and ``flush`` report it), so it does not start flush rounds here.
        """
        from git_mirror.mirror.status import repo_status

        st = repo_status(self.cfg, rid, self.node).to_json()
        return bool(st.get("pendingFlush")) and not st.get("diverged")

    # --- life cycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Sync every repository now; then start the interval and maintenance timers."""
        self._stop_event = asyncio.Event()
        self.started_at = time.monotonic()
        for rid in self.repos:
            self.request_sync(rid, reason="startup")
            if self.interval > 0:
                self._timers.append(asyncio.create_task(self._every(rid, self.interval, "interval")))
            if self.maintenance_interval > 0:
                self._timers.append(asyncio.create_task(self._maintenance_loop(rid)))

    async def stop(self, timeout: float) -> bool:
        """No new work; let the running jobs finish within ``timeout``. True if they did."""
        self.stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        for t in self._timers:
            t.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        running = [t for t in self._jobs if not t.done()]
        if not running:
            return True
        log.info("waiting for running jobs", jobs=len(running), timeoutSeconds=timeout)
        _done, pending = await asyncio.wait(running, timeout=max(timeout, 0.0))
        if pending:
            log.warning("jobs still running at the shutdown deadline; leaving them",
                        jobs=len(pending))
        return not pending

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; False when woken by the stop."""
        if self._stop_event is None:
            await asyncio.sleep(seconds)
            return not self.stopping
        try:
            await asyncio.wait_for(self._stop_event.wait(), timeout=seconds)
        except TimeoutError:
            return not self.stopping
        return False

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        # A job outlives the request that asked for it: its log lines carry that request's
        # id as ``triggeredBy``, not as their own ``requestId``.
        trigger = structlog.contextvars.get_contextvars().get("requestId")

        async def job() -> None:
            structlog.contextvars.clear_contextvars()   # the task's own copy of the context
            if trigger:
                structlog.contextvars.bind_contextvars(triggeredBy=trigger)
            await coro

        task: asyncio.Task[None] = asyncio.create_task(job())
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        # Only once the task is done does its flight stop counting as busy.
        task.add_done_callback(lambda _task: self._depth())
        return task

    def _depth(self) -> None:
        for kind in ("sync", "flush"):
            n = sum((getattr(st, kind).busy + getattr(st, kind).again) for st in self.repos.values())
            self.metrics.queue_depth.labels(kind).set(n)

    # --- sync ------------------------------------------------------------------------
    def request_sync(self, rid: str, *, reason: str) -> str:
        """Ask for a sync: ``started``, ``coalesced`` (one more run follows) or ``refused``."""
        st = self.repos[rid]
        if self.stopping:
            return "refused"
        if st.sync.busy:
            st.sync.again = True
            self._depth()
            log.debug("sync coalesced", repository=rid, reason=reason)
            return "coalesced"
        st.sync.task = self._spawn(self._sync_loop(rid, reason))
        self._depth()
        return "started"

    async def _sync_loop(self, rid: str, reason: str) -> None:
        st = self.repos[rid]
        waited = False
        while True:
            # Webhooks come in bursts (one per pushed ref, redeliveries): a run after a
            # busy one lets the burst land, so that it is served by one run instead of one
            # run per wave.
            settle = reason in SETTLED_REASONS and self.settle > 0 and not waited
            if settle and not await self._sleep(self.settle):
                break
            async with st.lock, self._slots:
                st.sync.again = False   # requests so far are served by this run
                self._depth()
                pending = await self._run_sync(rid, reason)
            if pending and not st.flush.busy and not self.stopping:
                self.request_flush(rid, reason="pending-after-sync")
            waited = False
            if not st.sync.again and reason == "webhook" and self.settle > 0 and not self.stopping:
                # The first delivery of a burst was served at once; the rest of the burst,
                # arriving meanwhile, is served by one more run.
                if not await self._sleep(self.settle):
                    break
                waited = True
            if not st.sync.again or self.stopping:
                break
            reason = "coalesced"
        self._depth()

    async def _run_sync(self, rid: str, reason: str) -> bool:
        st = self.repos[rid]
        st.sync.runs += 1
        started = time.monotonic()
        log.info("sync started", repository=rid, reason=reason)

        def work() -> tuple[bool, dict[str, Any], bool | None]:
            try:
                res = self._sync(rid)
                ok, data = bool(res.ok), res.to_json()
            except GitMirrorError as exc:
                ok, data = False, {"ok": False, "error": exc.to_json()}
            except Exception as exc:  # a bug must not stop the scheduler
                ok, data = False, {"ok": False, "error": {"code": Code.INTERNAL, "message": str(exc)}}
            try:
                pending: bool | None = self._pending(rid)
            except Exception:
                pending = None
            return ok, data, pending

        ok, data, pending = await in_thread(work, f"sync-{rid}")
        took = time.monotonic() - started
        m = self.metrics
        m.sync_total.labels(rid, "ok" if ok else "error").inc()
        m.sync_duration.labels(rid).observe(took)
        if ok:
            m.sync_last_success.labels(rid).set(time.time())
            st.synced = True
        if pending is not None:
            st.pending_flush = pending
            m.pending_flush.labels(rid).set(1 if pending else 0)
        st.last_sync = {"at": journal.now_iso(), "ok": ok, "reason": reason,
                        "durationMs": int(took * 1000)}
        err = data.get("error")
        if ok:
            log.info("sync finished", repository=rid, reason=reason, ok=ok,
                     durationMs=int(took * 1000), updated=len(data.get("updated", [])),
                     pendingFlush=pending)
        else:
            log.warning("sync failed", repository=rid, reason=reason, error=err,
                        durationMs=int(took * 1000))
        return bool(pending)

    # --- flush -----------------------------------------------------------------------
    def request_flush(self, rid: str, *, reason: str) -> str:
        """Ask for a flush of ``rid``'s lanes (coalesced like sync)."""
        st = self.repos[rid]
        if self.stopping:
            return "refused"
        if st.flush.busy:
            st.flush.again = True
            self._depth()
            return "coalesced"
        st.flush.task = self._spawn(self._flush_loop(rid, reason))
        self._depth()
        return "started"

    async def _flush_loop(self, rid: str, reason: str) -> None:
        st = self.repos[rid]
        st.flush_failures = 0
        st.flush_gave_up = False
        while not self.stopping:
            async with st.lock, self._slots:
                st.flush.again = False
                self._depth()
                outcome = await self._run_flush(rid, reason)
            if outcome != "failed":
                st.flush_failures = 0
                st.flush_next_at = None
                if st.flush.again:
                    reason = "coalesced"
                    continue
                break
            st.flush_failures += 1
            self.metrics.flush_consecutive_failures.labels(rid).set(st.flush_failures)
            last = st.flush_attempts[-1] if st.flush_attempts else {}
            if (last.get("error") or {}).get("code") in FINAL_CODES:
                st.flush_gave_up = True
                st.flush_next_at = None
                log.error("flush needs a person; not retrying", repository=rid,
                          error=last.get("error"))
                break
            if st.flush_failures >= self.max_attempts:
                st.flush_gave_up = True
                st.flush_next_at = None
                log.error("flush gave up after consecutive failures", repository=rid,
                          attempts=st.flush_failures,
                          hint=f"git-mirror flush --repo {rid} --confirm --wait")
                break
            delay = min(self.backoff * 2 ** (st.flush_failures - 1), self.backoff_max)
            st.flush_next_at = time.time() + delay
            log.info("flush retry scheduled", repository=rid, inSeconds=delay,
                     failures=st.flush_failures)
            if not await self._sleep(delay):
                break
            reason = "retry"
        self.metrics.flush_consecutive_failures.labels(rid).set(st.flush_failures)
        self._depth()

    async def _run_flush(self, rid: str, reason: str) -> str:
        """One attempt: ``ok``, ``nothing`` (no lane ahead) or ``failed``."""
        st = self.repos[rid]
        started = time.monotonic()

        def work() -> tuple[str, dict[str, Any] | None, bool | None]:
            try:
                if not self._pending(rid):
                    return "nothing", None, False
            except Exception:
                pass  # cannot tell: let flush decide
            try:
                res = self._flush(rid)
                outcome, data = ("ok" if res.ok else "failed"), res.to_json()
            except GitMirrorError as exc:
                outcome, data = "failed", {"ok": False, "error": exc.to_json()}
            except Exception as exc:
                outcome, data = "failed", {"ok": False,
                                           "error": {"code": Code.INTERNAL, "message": str(exc)}}
            try:
                pending: bool | None = self._pending(rid)
            except Exception:
                pending = None
            return outcome, data, pending

        outcome, data, pending = await in_thread(work, f"flush-{rid}")
        if pending is not None:
            st.pending_flush = pending
            self.metrics.pending_flush.labels(rid).set(1 if pending else 0)
        if outcome == "nothing":
            return outcome
        st.flush.runs += 1
        took = time.monotonic() - started
        m = self.metrics
        m.flush_total.labels(rid, "ok" if outcome == "ok" else "error").inc()
        m.flush_duration.labels(rid).observe(took)
        if outcome == "ok":
            m.flush_last_success.labels(rid).set(time.time())
        error = (data or {}).get("error")
        attempt = {"at": journal.now_iso(), "ok": outcome == "ok", "reason": reason,
                   "attempt": st.flush_failures + 1, "durationMs": int(took * 1000),
                   "pendingFlush": pending, "error": error}
        st.flush_attempts.append(attempt)
        try:
            await in_thread(lambda: journal.record(RepoLayout.of(self.cfg, rid).state_dir,
                                                   "flush-attempt", attempt), f"journal-{rid}")
        except OSError as exc:
            log.warning("cannot record flush attempt", repository=rid, error=str(exc))
        (log.info if outcome == "ok" else log.warning)(
            "flush attempt", repository=rid, reason=reason, ok=outcome == "ok", error=error,
            durationMs=attempt["durationMs"], pendingFlush=pending)
        return outcome

    # --- timers ----------------------------------------------------------------------
    async def _every(self, rid: str, seconds: float, reason: str) -> None:
        while await self._sleep(seconds):
            self.request_sync(rid, reason=reason)

    async def _maintenance_loop(self, rid: str) -> None:
        st = self.repos[rid]
        while await self._sleep(self.maintenance_interval):
            if not st.synced:
                continue
            async with st.lock, self._slots:
                if self.stopping:
                    return
                try:
                    res = await in_thread(lambda: self._maintain(rid), f"maintenance-{rid}")
                    ok = bool(res.ok)
                    log.info("maintenance", repository=rid, ok=ok, **{"result": res.to_json()})
                except Exception as exc:
                    ok = False
                    log.warning("maintenance failed", repository=rid, error=str(exc))
                self.metrics.maintenance_total.labels(rid, "ok" if ok else "error").inc()

    # --- reporting -------------------------------------------------------------------
    def ready(self) -> bool:
        """Every repository synced once, or the declared grace has passed."""
        if self.stopping:
            return False
        if all(st.synced for st in self.repos.values()):
            return True
        return self.ready_grace > 0 and time.monotonic() - self.started_at >= self.ready_grace

    def to_json(self) -> dict[str, Any]:
        """The scheduler's state, added to ``/api/status`` as ``server``."""
        return {
            "ready": self.ready(), "stopping": self.stopping,
            "syncIntervalSeconds": self.interval, "jobs": self.jobs,
            "repositories": [{
                "id": st.id, "syncRunning": st.sync.busy, "syncQueued": st.sync.again,
                "syncRuns": st.sync.runs, "synced": st.synced, "lastSync": st.last_sync,
                "flushRunning": st.flush.busy, "flushQueued": st.flush.again,
                "flushRuns": st.flush.runs, "flushConsecutiveFailures": st.flush_failures,
                "flushGaveUp": st.flush_gave_up,
                "flushNextRetryAt": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.flush_next_at))
                                     if st.flush_next_at else None),
                "flushAttempts": list(st.flush_attempts),
            } for st in self.repos.values()],
        }
