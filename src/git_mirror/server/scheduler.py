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

This module decides what runs when. The parts it uses, one job each:
:mod:`~git_mirror.server.jobs` (single flight, coalescing, threads),
:mod:`~git_mirror.server.retry` (the back-off policy) and
:mod:`~git_mirror.server.reporting` (metrics, journal, log lines, status JSON).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import structlog

from git_mirror import logs
from git_mirror.server.jobs import Answer, Flight, in_thread, queue_depth, spawn
from git_mirror.server.reporting import OpResult, Outcome, Reporter, RepoState, guarded
from git_mirror.server.retry import RetryPolicy

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.server.metrics import Metrics

__all__ = ["Scheduler", "in_thread"]

T = TypeVar("T")
Kind = Literal["sync", "flush"]
KINDS: tuple[Kind, ...] = ("sync", "flush")
# Requests that wait SETTLE_SECONDS before their run starts; startup, interval and a
# webhook do not (a webhook's run is followed by SETTLE_SECONDS of coalescing instead).
SETTLED_REASONS = frozenset({"coalesced"})
SETTLE_SECONDS = 1.0
log = logs.get("git_mirror.server.scheduler")

Op = Callable[..., Any]


def _mirror_operation(kind: Kind) -> Op:
    if kind == "sync":
        from git_mirror.mirror.sync import sync

        return sync
    from git_mirror.mirror.flush import flush

    return flush


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
        self.retry = RetryPolicy.of(s)
        self.maintenance_interval = float(s.maintenance_interval_seconds)
        self.settle = settle
        self.report = Reporter(cfg, metrics)
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
    def _operate(self, kind: Kind, rid: str) -> OpResult:
        """Run the sync or flush of ``rid`` (the stand-in given at construction, if any)."""
        op = (self._sync_op if kind == "sync" else self._flush_op) or _mirror_operation(kind)
        res: OpResult = op(self.cfg, repo=rid, confirm=True, wait=True, node=self.node)
        return res

    def _maintain(self, rid: str) -> OpResult:
        if self._maintain_op is not None:
            res: OpResult = self._maintain_op(self.cfg, rid)
            return res
        from git_mirror.mirror.maintenance import maintain

        return maintain(self.cfg, rid)

    def _pending(self, rid: str) -> bool:
        """A lane holds commits upstream lacks and flush can send them (not diverged).

        A diverged lane is pending too, but no retry can flush it: it waits for a person
        (status and ``flush`` report it), so it does not start flush rounds here.
        """
        from git_mirror.mirror.status import repo_status

        st = repo_status(self.cfg, rid, self.node)
        return st.pending_flush and not st.diverged

    # --- life cycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Sync every repository now; then start the interval and maintenance timers."""
        self._stop_event = asyncio.Event()
        self.started_at = time.monotonic()
        for rid in self.repos:
            self.request_sync(rid, reason="startup")
            if self.interval > 0:
                every = self._every(rid, self.interval, "interval")
                self._timers.append(asyncio.create_task(every))
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

    # --- the one request path ---------------------------------------------------------
    @staticmethod
    def _flight(st: RepoState, kind: Kind) -> Flight:
        return st.sync if kind == "sync" else st.flush

    def _depth(self) -> None:
        for kind in KINDS:
            flights = (self._flight(st, kind) for st in self.repos.values())
            self.report.queue_depth(kind, queue_depth(flights))

    def request(self, kind: Kind, rid: str, *, reason: str) -> Answer:
        """Ask for a run of ``kind``: ``started``, ``coalesced`` (one more run follows the
        one going on) or ``refused`` (stopping)."""
        loop: Callable[[str, str], Coroutine[Any, Any, None]] = (
            self._sync_loop if kind == "sync" else self._flush_loop)
        answer = self._flight(self.repos[rid], kind).ask(
            lambda: spawn(loop(rid, reason), self._jobs, self._depth), stopping=self.stopping)
        if answer != "refused":
            self._depth()
        if answer == "coalesced":
            log.debug(f"{kind} coalesced", repository=rid, reason=reason)
        return answer

    def request_sync(self, rid: str, *, reason: str) -> Answer:
        """Ask for a sync (webhook, interval tick, startup)."""
        return self.request("sync", rid, reason=reason)

    def request_flush(self, rid: str, *, reason: str) -> Answer:
        """Ask for a flush of ``rid``'s lanes (after a push; after a sync finds a lane ahead)."""
        return self.request("flush", rid, reason=reason)

    async def _exclusive(self, st: RepoState, kind: Kind, body: Callable[[], Awaitable[T]]) -> T:
        """One run of ``kind``: the repository's lock and a job slot held, every request so
        far served by it, its lines logged under the repository, operation and request."""
        async with st.lock, self._slots:
            self._flight(st, kind).begin(st.id, kind)
            self._depth()
            return await body()

    # --- sync ------------------------------------------------------------------------
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
            pending = await self._exclusive(st, "sync", partial(self._run_sync, st, reason))
            if pending and not st.flush.busy and not self.stopping:
                self.request_flush(rid, reason="pending-after-sync")
            # The first delivery of a burst was served at once; the rest of the burst,
            # arriving meanwhile, is served by one more run.
            waited = (not st.sync.again and reason == "webhook" and self.settle > 0
                      and not self.stopping)
            if waited and not await self._sleep(self.settle):
                break
            if not st.sync.again or self.stopping:
                break
            reason = "coalesced"
        self._depth()

    async def _run_sync(self, st: RepoState, reason: str) -> bool:
        """One sync run; True when a lane is ahead after it."""
        self.report.sync_started(st, reason)
        started = time.monotonic()
        outcome = await in_thread(partial(Outcome.of, partial(self._operate, "sync", st.id),
                                          partial(self._pending, st.id)), f"sync-{st.id}")
        self.report.sync_done(st, reason, outcome, time.monotonic() - started)
        return bool(outcome.pending)

    # --- flush -----------------------------------------------------------------------
    async def _flush_loop(self, rid: str, reason: str) -> None:
        st = self.repos[rid]
        st.flush_failures = 0
        st.flush_gave_up = False
        while not self.stopping:
            outcome = await self._exclusive(st, "flush", partial(self._run_flush, st, reason))
            if outcome.ok:
                st.flush_failures = 0
                st.flush_next_at = None
                if st.flush.again:
                    reason = "coalesced"
                    continue
                break
            delay = self._after_failure(st, outcome)
            if delay is None or not await self._sleep(delay):
                break
            reason = "retry"
        self.report.flush_failures(st)
        self._depth()

    async def _run_flush(self, st: RepoState, reason: str) -> Outcome:
        """One attempt; an attempt that finds no lane ahead runs nothing (``nothing``)."""
        started = time.monotonic()
        outcome = await in_thread(partial(self._flush_work, st.id), f"flush-{st.id}")
        self.report.pending(st, outcome.pending)
        if not outcome.nothing:
            await self.report.flush_done(st, reason, outcome, time.monotonic() - started)
        return outcome

    def _flush_work(self, rid: str) -> Outcome:
        ahead, _ = guarded(partial(self._pending, rid))
        if ahead is not None and not ahead:
            return Outcome(True, pending=False, nothing=True)
        # Pending, or cannot tell: let flush decide.
        return Outcome.of(partial(self._operate, "flush", rid), partial(self._pending, rid))

    def _after_failure(self, st: RepoState, outcome: Outcome) -> float | None:
        """Count a failed attempt; the delay before the next one, or None: no more."""
        st.flush_failures += 1
        self.report.flush_failures(st)
        verdict = self.retry.after(st.flush_failures, outcome.error)
        if not verdict.retry:
            st.flush_gave_up = True
            st.flush_next_at = None
            if verdict.final:
                log.error("flush needs a person; not retrying", repository=st.id,
                          error=outcome.error.to_json() if outcome.error else None)
            else:
                log.error("flush gave up after consecutive failures", repository=st.id,
                          attempts=st.flush_failures,
                          hint=f"git-mirror flush --repo {st.id} --confirm --wait")
            return None
        st.flush_next_at = time.time() + verdict.delay
        log.info("flush retry scheduled", repository=st.id, inSeconds=verdict.delay,
                 failures=st.flush_failures)
        return verdict.delay

    # --- timers ----------------------------------------------------------------------
    async def _every(self, rid: str, seconds: float, reason: str) -> None:
        while await self._sleep(seconds):
            self.request_sync(rid, reason=reason)

    async def _maintenance_loop(self, rid: str) -> None:
        st = self.repos[rid]
        structlog.contextvars.bind_contextvars(repository=rid, operation="maintenance")
        while await self._sleep(self.maintenance_interval):
            if not st.synced:
                continue
            async with st.lock, self._slots:
                if self.stopping:
                    return
                res, error = await in_thread(partial(guarded, partial(self._maintain, rid)),
                                             f"maintenance-{rid}")
                self.report.maintenance_done(rid, res, error)

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
            "repositories": [st.to_json() for st in self.repos.values()],
        }
