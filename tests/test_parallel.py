"""Bounded parallelism across repositories: results in declaration order, at most jobs at once."""

from __future__ import annotations

import contextvars
import threading

from git_mirror.mirror.parallel import each


def test_results_keep_the_order_of_the_ids_and_at_most_jobs_run_at_once() -> None:
    ids = [f"r{i}" for i in range(9)]
    lock = threading.Lock()
    running = 0
    peak = 0
    first_may_finish = threading.Event()
    pairs = threading.Barrier(2, timeout=30)  # the others run two at a time, side by side
    finished: list[str] = []

    def work(rid: str) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        if rid == "r0":
            first_may_finish.wait(timeout=30)  # the first declared finishes last
        else:
            pairs.wait()
        with lock:
            running -= 1
            finished.append(rid)
            if len(finished) == len(ids) - 1:
                first_may_finish.set()
        return rid.upper()

    assert each(ids, work, 3) == [rid.upper() for rid in ids]
    assert finished[-1] == "r0"
    assert peak == 3


def test_one_job_runs_in_order_in_the_caller() -> None:
    seen: list[tuple[str, str]] = []

    def work(rid: str) -> str:
        seen.append((rid, threading.current_thread().name))
        return rid

    out = each(["a", "b", "c"], work, 1)
    assert out == ["a", "b", "c"]
    assert [rid for rid, _ in seen] == ["a", "b", "c"]
    assert {name for _, name in seen} == {threading.current_thread().name}


_BOUND: contextvars.ContextVar[str] = contextvars.ContextVar("bound", default="unset")


def test_threads_see_what_the_caller_bound_for_its_log_lines() -> None:
    token = _BOUND.set("request-1")
    try:
        seen = each(["a", "b", "c"], lambda rid: (rid, _BOUND.get(),
                                                  threading.current_thread().name), 3)
    finally:
        _BOUND.reset(token)
    assert [value for _, value, _ in seen] == ["request-1"] * 3
    assert any(name.startswith("git-mirror-repo") for _, _, name in seen)
