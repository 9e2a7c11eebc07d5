"""Single flight and coalescing: at most one run of a kind of work per repository.

::

    Flight.ask(start)   not busy: start a run           -> "started"
                        busy: mark "again"              -> "coalesced"
                        server stopping                 -> "refused"
    Flight.begin()      a run begins: the requests so far are served by it

However many requests arrive while a run is going on, exactly one more run follows it (the
``again`` mark). A request that arrives before the run has really begun (it may be waiting
for the repository) is absorbed by that run. The loop that decides whether one more run
follows, and when, is the scheduler's; the bookkeeping is here, once, for sync and flush.

Each request remembers the ``requestId`` of the HTTP request that asked (a push, a
webhook delivery), so the run that serves it logs under that id, down to the mirror layer.
Blocking work runs in a daemon thread (:func:`in_thread`) in a copy of the caller's context.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import structlog

from git_mirror import logs

T = TypeVar("T")
Answer = Literal["started", "coalesced", "refused"]
# The context fields a run binds for its own lines and the mirror layer's.
RUN_FIELDS = ("repository", "operation", "requestId")


async def in_thread(fn: Callable[[], T], name: str) -> T:
    """Run blocking ``fn`` in a fresh daemon thread, in a copy of the current context, and
    await its result: the event loop never waits on git, and a job still running at the
    shutdown deadline does not hold the process."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()
    call = logs.in_context(fn)

    def deliver(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def work() -> None:
        try:
            value = call()
        # Whatever ends the work is re-raised in the awaiting task: this only carries it there.
        except BaseException as exc:  # noqa: BLE001
            loop.call_soon_threadsafe(deliver, False, exc)
        else:
            loop.call_soon_threadsafe(deliver, True, value)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await fut


def current_request_id() -> str | None:
    """The ``requestId`` bound for the request being served, if any."""
    value = structlog.contextvars.get_contextvars().get("requestId")
    return value if isinstance(value, str) else None


@dataclass
class Flight:
    """One kind of work for one repository: the running task and the "again" mark."""

    task: asyncio.Task[None] | None = None
    again: bool = False
    runs: int = 0
    request_id: str | None = None   # of the latest request this flight is to serve

    @property
    def busy(self) -> bool:
        """A run is going on (or its loop still decides whether one more follows)."""
        return self.task is not None and not self.task.done()

    @property
    def depth(self) -> int:
        """Runs going on or waiting: the ``git_mirror_queue_depth`` share of this flight."""
        return int(self.busy) + int(self.again)

    def ask(self, start: Callable[[], asyncio.Task[None]], *, stopping: bool) -> Answer:
        """One request: start a run, or fold it into the one going on."""
        if stopping:
            return "refused"
        self.request_id = current_request_id() or self.request_id
        if self.busy:
            self.again = True
            return "coalesced"
        self.task = start()
        return "started"

    def begin(self, repository: str, operation: str) -> None:
        """A run begins: it serves every request so far, and logs under the latest one's id
        (none for a run nobody asked for over HTTP: startup, interval, retry)."""
        self.again = False
        structlog.contextvars.unbind_contextvars(*RUN_FIELDS)
        fields = {"repository": repository, "operation": operation}
        if self.request_id:
            fields["requestId"] = self.request_id
        self.request_id = None
        structlog.contextvars.bind_contextvars(**fields)


def queue_depth(flights: Iterable[Flight]) -> int:
    """Runs going on or waiting, over ``flights``."""
    return sum(f.depth for f in flights)


def spawn(coro: Coroutine[Any, Any, None], tracked: set[asyncio.Task[None]],
          on_done: Callable[[], None]) -> asyncio.Task[None]:
    """A task for a job, in its own copy of the context (its fields are its own), kept in
    ``tracked`` until done; ``on_done`` runs once the task no longer counts as busy."""
    task: asyncio.Task[None] = asyncio.create_task(coro)
    tracked.add(task)
    task.add_done_callback(tracked.discard)
    task.add_done_callback(lambda _task: on_done())
    return task
