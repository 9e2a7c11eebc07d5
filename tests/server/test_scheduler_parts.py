"""The scheduler's parts on their own: the retry policy and a flight's bookkeeping."""

from __future__ import annotations

import asyncio

import structlog

from git_mirror.errors import Code, GitMirrorError
from git_mirror.server.jobs import Flight
from git_mirror.server.retry import RetryPolicy


def test_the_back_off_doubles_up_to_its_cap_and_stops_after_the_last_attempt() -> None:
    policy = RetryPolicy(backoff=0.5, backoff_max=3.0, max_attempts=5)
    transport = GitMirrorError("upstream down", code=Code.TRANSPORT)
    verdicts = [policy.after(n, transport) for n in range(1, 6)]
    assert [v.delay for v in verdicts[:4]] == [0.5, 1.0, 2.0, 3.0]
    assert all(v.retry for v in verdicts[:4])
    assert not verdicts[4].retry and not verdicts[4].final


def test_an_error_no_retry_can_cure_is_final_at_once() -> None:
    policy = RetryPolicy(backoff=1.0, backoff_max=10.0, max_attempts=8)
    for code in (Code.DIVERGED, Code.CONFIG, Code.USAGE, Code.DRIFT, Code.NOT_APPLIED):
        verdict = policy.after(1, GitMirrorError("no", code=code))
        assert not verdict.retry and verdict.final, code


def test_a_flight_starts_once_coalesces_the_rest_and_serves_the_latest_request() -> None:
    async def scenario() -> None:
        flight = Flight()
        gate = asyncio.Event()
        started: list[asyncio.Task[None]] = []

        async def run() -> None:
            await gate.wait()

        def start() -> asyncio.Task[None]:
            task = asyncio.create_task(run())
            started.append(task)
            return task

        structlog.contextvars.bind_contextvars(requestId="first")
        assert flight.ask(start, stopping=False) == "started"
        structlog.contextvars.bind_contextvars(requestId="second")
        assert flight.ask(start, stopping=False) == "coalesced"
        assert flight.ask(start, stopping=True) == "refused"
        assert len(started) == 1 and flight.busy and flight.again and flight.depth == 2
        flight.begin("hwlab", "sync")   # the run serves both requests, under the latest id
        bound = structlog.contextvars.get_contextvars()
        assert bound == {"repository": "hwlab", "operation": "sync", "requestId": "second"}
        assert not flight.again and flight.request_id is None
        gate.set()
        await started[0]
        assert not flight.busy and flight.depth == 0

    asyncio.run(scenario())
