"""Webhooks, coalescing, flush back-off, metrics and probes, against a running server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from git_mirror.server.webhooks import matches, upstream_path
from tests.support.gitutil import Repo
from tests.support.server import (
    Served,
    prepare_mirror,
    push_payload,
    serve_in_thread,
    sign,
    sync_runs,
    wait_for,
    write_server_config,
)


def full_name(upstream: Repo) -> str:
    """``<dir>/upstream``: the fixture's upstream path ends with it, plus ``.git``."""
    return f"{upstream.path.parent.name}/upstream"


def hook(client: httpx.Client, body: bytes, signature: str | None,
         event: str = "push") -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/hooks/github", content=body, headers=headers)


def test_a_signed_push_webhook_syncs_within_seconds(served: Served, upstream: Repo) -> None:
    new = upstream.commit("main", "pushed upstream")
    body = push_payload(full_name(upstream))
    started = time.monotonic()
    res = hook(served.client(), body, sign(body))
    assert res.status_code == 202
    assert res.json()["repositories"] == ["hwlab"]
    wait_for(lambda: served.mirror().rev("refs/heads/main") == new, timeout=10)
    assert time.monotonic() - started < 10


def test_webhook_by_repository_name_matches_the_id(served: Served, upstream: Repo) -> None:
    new = upstream.commit("main", "by name")
    body = push_payload("someone/else", name="hwlab")
    res = hook(served.client(), body, sign(body))
    assert res.status_code == 202 and res.json()["repositories"] == ["hwlab"]
    wait_for(lambda: served.mirror().rev("refs/heads/main") == new, timeout=10)


def test_a_form_encoded_delivery_works_too(served: Served, upstream: Repo) -> None:
    from urllib.parse import urlencode

    new = upstream.commit("main", "form")
    body = urlencode({"payload": push_payload(full_name(upstream)).decode()}).encode()
    res = served.client().post("/hooks/github", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "push",
        "X-Hub-Signature-256": sign(body)})
    assert res.status_code == 202 and res.json()["repositories"] == ["hwlab"]
    wait_for(lambda: served.mirror().rev("refs/heads/main") == new, timeout=10)


def idle_sync_runs(served: Served) -> int:
    """The scheduler's count of sync runs, once no sync runs or waits."""
    flight = served.runtime.scheduler.repos["hwlab"].sync
    wait_for(lambda: not flight.busy, timeout=15)
    runs: int = flight.runs
    return runs


def assert_no_sync_asked(served: Served, runs_before: int) -> None:
    """A webhook asks for its sync before it answers: once answered, a sync it asked for is
    running, queued or counted. None is."""
    flight = served.runtime.scheduler.repos["hwlab"].sync
    assert not flight.busy and not flight.again
    assert flight.runs == runs_before


def test_bad_or_missing_signatures_are_refused(served: Served, upstream: Repo) -> None:
    before = served.mirror().rev("refs/heads/main")
    runs = idle_sync_runs(served)
    upstream.commit("main", "must not arrive")
    body = push_payload(full_name(upstream))
    with served.client() as c:
        assert hook(c, body, None).status_code == 401
        assert hook(c, body, sign(body, "wrong-secret")).status_code == 403
        assert hook(c, body, "sha256=" + "0" * 64).status_code == 403
        assert hook(c, body + b" ", sign(body)).status_code == 403
    assert_no_sync_asked(served, runs)
    assert served.mirror().rev("refs/heads/main") == before


def test_an_unrelated_repository_syncs_nothing(served: Served) -> None:
    scheduled = idle_sync_runs(served)
    runs = len(sync_runs(served.runtime.cfg.path))
    body = push_payload("example/other-upstream", name="other")
    res = hook(served.client(), body, sign(body))
    assert res.status_code == 202 and res.json()["repositories"] == []
    assert_no_sync_asked(served, scheduled)
    assert len(sync_runs(served.runtime.cfg.path)) == runs


def test_twenty_webhooks_at_once_cause_at_most_two_syncs(served: Served, upstream: Repo) -> None:
    config = served.runtime.cfg.path
    scheduled = idle_sync_runs(served)
    before = len(sync_runs(config))
    new = upstream.commit("main", "storm")
    body = push_payload(full_name(upstream))
    sig = sign(body)

    def deliver(_: int) -> int:
        with httpx.Client(base_url=served.url, timeout=30) as c:
            return hook(c, body, sig).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(deliver, range(20)))
    assert codes == [202] * 20
    wait_for(lambda: served.mirror().rev("refs/heads/main") == new, timeout=15)
    # Every delivery asked before it was answered: once the flight is idle, no run follows,
    # and each run wrote its journal record before it ended.
    extra = idle_sync_runs(served) - scheduled
    assert 1 <= extra <= 2, extra
    assert len(sync_runs(config)) - before == extra
    metrics = served.client().get("/metrics").text
    assert 'git_mirror_sync_total{repository="hwlab",result="ok"}' in metrics


def test_metrics_health_and_status(served: Served) -> None:
    with served.client() as c:
        c.get("/hwlab.git/info/refs", params={"service": "git-upload-pack"})
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        status = c.get("/api/status").json()
        assert status["ok"] is True and status["source"] == "yaml"
        repo = status["repositories"][0]
        assert repo["id"] == "hwlab"
        assert repo["refSources"]["githubFieldsAreMirrorStageCache"] is True
        assert {"pendingFlush", "githubInSync", "lanes", "sources"} <= set(repo)
        text = c.get("/metrics").text
    for name in ("git_mirror_sync_total", "git_mirror_sync_duration_seconds",
                 "git_mirror_sync_last_success_timestamp_seconds", "git_mirror_pending_flush",
                 "git_mirror_queue_depth", "git_mirror_flush_total"):
        assert name in text, name
    assert 'git_mirror_http_requests_total{code="200",service="git-upload-pack"}' in text


def test_queue_depth_falls_back_to_zero_when_the_work_is_done(served: Served) -> None:
    scheduler = served.runtime.scheduler
    wait_for(lambda: not scheduler.repos["hwlab"].sync.busy, timeout=15)

    def depth(kind: str) -> float | None:
        for line in served.client().get("/metrics").text.splitlines():
            if line.startswith(f'git_mirror_queue_depth{{kind="{kind}"}}'):
                return float(line.rsplit(" ", 1)[1])
        return None

    # nothing runs or waits: the finished first sync no longer counts
    wait_for(lambda: depth("sync") == 0.0, timeout=10)
    assert not scheduler.repos["hwlab"].sync.busy


def test_request_ids_are_returned_and_logged(served: Served) -> None:
    with served.client() as c:
        res = c.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert res.headers["x-request-id"] == "abc-123"
    # The access line is written once the response is out: wait for it.
    wait_for(lambda: '"requestId": "abc-123"' in served.logs(), timeout=5)


def test_not_ready_until_the_first_sync_or_the_grace(tmp_path: Path) -> None:
    missing = tmp_path / "gone.git"   # upstream cannot be reached: no sync ever succeeds
    config = write_server_config(tmp_path / "srv", f"file://{missing}")
    with serve_in_thread(config) as s, s.client() as c:
        failed = 'git_mirror_sync_total{repository="hwlab",result="error"} 1.0'
        wait_for(lambda: failed in c.get("/metrics").text, timeout=10)  # the first sync failed
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
    config = write_server_config(tmp_path / "srv2", f"file://{missing}", grace=1)
    with serve_in_thread(config) as s, s.client() as c:
        wait_for(lambda: c.get("/readyz").status_code == 200, timeout=5)


def test_periodic_sync_follows_upstream(tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url, interval=1)
    prepare_mirror(config)
    with serve_in_thread(config) as s:
        new = upstream.commit("main", "later")
        wait_for(lambda: s.mirror().rev("refs/heads/main") == new, timeout=10)


# --- the scheduler alone, with stand-in operations --------------------------------------

class Result:
    def __init__(self, ok: bool, code: str = "transport") -> None:
        self.ok = ok
        self.code = code

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": None if self.ok else {"code": self.code, "message": "no"}}


def _scheduler(config: Path, **ops: Any) -> Any:
    from git_mirror.config import load_config
    from git_mirror.server.metrics import Metrics
    from git_mirror.server.scheduler import Scheduler

    sched = Scheduler(load_config(config), Metrics(), **ops)
    sched._pending = lambda rid: True  # type: ignore[method-assign]  # a lane is always ahead
    return sched


async def until(condition: Any, what: str, timeout: float = 5.0) -> None:
    """Poll ``condition`` on the event loop (every 10 ms) until it holds; fail after
    ``timeout`` seconds, saying ``what`` did not happen."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} within {timeout} s")


def _flush_until_idle(config: Path, flush_op: Any, *, requests: int = 1) -> dict[str, Any]:
    """Ask for ``requests`` flushes at once (the first starts, the rest coalesce), wait (at
    most 5 s) until the flush is no longer busy, stop; the repository's scheduler state."""
    async def scenario() -> dict[str, Any]:
        sched = _scheduler(config, flush_op=flush_op)
        answers = [sched.request_flush("hwlab", reason="push") for _ in range(requests)]
        assert answers == ["started"] + ["coalesced"] * (requests - 1)
        await until(lambda: not sched.repos["hwlab"].flush.busy,
                    "the flush did not come to rest")
        await sched.stop(5)
        data: dict[str, Any] = sched.to_json()["repositories"][0]
        return data

    return asyncio.run(scenario())


def test_sync_requests_coalesce_into_one_more_run(tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url)
    calls: list[float] = []

    def slow_sync(cfg: Any, **kw: Any) -> Result:
        calls.append(time.monotonic())
        time.sleep(0.3)
        return Result(True)

    async def scenario() -> list[str]:
        sched = _scheduler(config, sync_op=slow_sync, flush_op=lambda cfg, **kw: Result(True),
                           settle=0.1)
        first = sched.request_sync("hwlab", reason="test")
        await until(lambda: calls, "the first run did not start")
        answers = [first] + [sched.request_sync("hwlab", reason="test") for _ in range(10)]
        await until(lambda: not sched.repos["hwlab"].sync.busy, "the sync did not come to rest")
        await sched.stop(5)
        return answers

    answers = asyncio.run(scenario())
    assert answers[0] == "started" and set(answers[1:]) == {"coalesced"}
    assert len(calls) == 2


def test_flush_retries_with_back_off_and_records_every_attempt(tmp_path: Path,
                                                               upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url, attempts=4)
    attempts: list[float] = []

    def failing_flush(cfg: Any, **kw: Any) -> Result:
        attempts.append(time.monotonic())
        return Result(len(attempts) >= 3)   # upstream comes back at the third attempt

    state = _flush_until_idle(config, failing_flush, requests=2)  # the second is absorbed
    # Back-off 0.2s then 0.4s; the second request came before the first run started, so
    # that run served it.
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) == 3, attempts
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38
    assert [a["ok"] for a in state["flushAttempts"]] == [False, False, True]
    journal = (config.parent / ".git-mirror" / "state" / "hwlab" / "runs.jsonl").read_text()
    assert journal.count('"kind": "flush-attempt"') == 3


def test_flush_gives_up_after_the_cap(tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url, attempts=3)
    attempts: list[float] = []

    def down(cfg: Any, **kw: Any) -> Result:
        attempts.append(time.monotonic())
        return Result(False)

    state = _flush_until_idle(config, down)
    assert len(attempts) == 3
    assert state["flushGaveUp"] is True and state["flushConsecutiveFailures"] == 3


def test_a_diverged_lane_is_not_retried(tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url, attempts=5)
    attempts: list[float] = []

    def diverged(cfg: Any, **kw: Any) -> Result:
        attempts.append(time.monotonic())
        return Result(False, "diverged")

    state = _flush_until_idle(config, diverged)
    assert len(attempts) == 1
    assert state["flushGaveUp"] is True


@pytest.mark.parametrize(("url", "path"), [
    ("ssh://git@ssh.github.com:443/example/hwlab.git", "example/hwlab.git"),
    ("git@github.com:example/hwlab", "example/hwlab"),
    ("https://github.com/example/hwlab/", "example/hwlab"),
    ("file:///srv/git/hwlab.git", "srv/git/hwlab.git"),
])
def test_upstream_path(url: str, path: str) -> None:
    assert upstream_path(url) == path


def test_webhook_matching_rules() -> None:
    url = "ssh://git@ssh.github.com:443/example/hwlab.git"
    assert matches("x", url, "example/hwlab", None)
    assert matches("x", "https://github.com/example/hwlab", "example/hwlab", None)
    assert matches("hwlab", "file:///elsewhere/y.git", "other/thing", "hwlab")
    assert not matches("x", url, "ample/hwlab", None)       # segment boundary
    assert not matches("x", url, "example/hwlab-two", "hwlab")


def test_a_flush_that_raises_is_an_internal_error_retried_like_any_other(
        tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url, attempts=2)
    attempts: list[float] = []

    def broken(cfg: Any, **kw: Any) -> Result:
        attempts.append(time.monotonic())
        raise RuntimeError("a bug in flush")

    state = _flush_until_idle(config, broken)
    assert len(attempts) == 2                      # retried: a bug is not a final error
    assert state["flushGaveUp"] is True
    errors = [a["error"] for a in state["flushAttempts"]]
    assert errors == [{"code": "internal", "message": "a bug in flush", "hint": None}] * 2
