"""serve's scheduler: at most ``jobs`` repositories at once, and a hanging one holds back no other."""

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
