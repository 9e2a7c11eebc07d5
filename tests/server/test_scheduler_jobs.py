"""serve's scheduler: at most ``jobs`` repositories at once, and a hanging one holds back no
other."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from git_mirror.config import load_config
from git_mirror.server.metrics import Metrics
from git_mirror.server.scheduler import Scheduler


class Ok:
    ok = True

    def to_json(self) -> dict[str, Any]:
        return {"ok": True}


def test_at_most_jobs_syncs_at_once_and_a_hanging_one_blocks_no_other(tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(7)]
    config = tmp_path / "git-mirror.yaml"
    config.write_text("version: 1\njobs: 2\nrepositories:\n" + "".join(
        f"  {rid}:\n    upstream: file://{tmp_path}/{rid}.git\n    transport: {{mode: file}}\n"
        "    sources: [{branch: main}]\n" for rid in ids))
    release = threading.Event()
    lock = threading.Lock()
    running: set[str] = set()
    peak = 0
    done: list[str] = []

    def sync_op(cfg: Any, *, repo: str, **kw: Any) -> Ok:
        nonlocal peak
        with lock:
            running.add(repo)
            peak = max(peak, len(running))
        if repo == "r0":
            release.wait(timeout=60)  # hangs until every other repository is done
        else:
            time.sleep(0.2)  # long enough for the runs to overlap when nothing bounds them
        with lock:
            running.discard(repo)
            done.append(repo)
        return Ok()

    async def scenario() -> list[str]:
        sched = Scheduler(load_config(config), Metrics(), sync_op=sync_op, settle=0)
        sched._pending = lambda rid: False  # type: ignore[method-assign]
        for rid in ids:
            assert sched.request_sync(rid, reason="test") == "started"
        for _ in range(600):  # at most 30 s
            await asyncio.sleep(0.05)
            if len(done) == len(ids) - 1:
                break
        finished = list(done)
        release.set()
        for _ in range(600):
            await asyncio.sleep(0.05)
            if len(done) == len(ids):
                break
        await sched.stop(10)
        return finished

    finished = asyncio.run(scenario())
    assert sorted(finished) == ids[1:]  # all but the hanging one, while it hung
    assert done[-1] == "r0"
    assert peak == 2


def test_a_webhook_sync_starts_at_once_and_the_rest_of_its_burst_is_one_more_run(
        tmp_path: Path) -> None:
    config = tmp_path / "git-mirror.yaml"
    config.write_text("version: 1\nrepositories:\n  r0:\n"
                      f"    upstream: file://{tmp_path}/r0.git\n    transport: {{mode: file}}\n"
                      "    sources: [{branch: main}]\n")
    calls: list[float] = []

    def sync_op(cfg: Any, **kw: Any) -> Ok:
        calls.append(time.monotonic())
        return Ok()

    async def scenario() -> tuple[float, list[str]]:
        sched = Scheduler(load_config(config), Metrics(), sync_op=sync_op, settle=3.0)
        sched._pending = lambda rid: False  # type: ignore[method-assign]
        asked = time.monotonic()
        assert sched.request_sync("r0", reason="webhook") == "started"
        for _ in range(200):  # at most 10 s
            await asyncio.sleep(0.05)
            if calls:
                break
        # The rest of the burst, while the first run is done and the repository settles.
        answers: list[str] = [sched.request_sync("r0", reason="webhook") for _ in range(5)]
        for _ in range(400):  # at most 20 s
            await asyncio.sleep(0.05)
            if not sched.repos["r0"].sync.busy:
                break
        await sched.stop(10)
        return asked, answers

    asked, answers = asyncio.run(scenario())
    assert calls and calls[0] - asked < 2.5  # not held back by the 3 s settle
    assert answers == ["coalesced"] * 5
    assert len(calls) == 2 and calls[1] - calls[0] >= 2.9
