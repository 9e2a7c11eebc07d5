"""Bounded parallelism across repositories: results in declaration order, none waits on a slow one.

Sync, flush, apply and status each do one repository's work in a function that never raises
for that repository's own failure (it records the error in its result). :func:`each` runs
that function for every selected repository, at most ``jobs`` at a time, in threads: the work
is git and ssh processes, so threads wait on them without holding each other. A slow or
hanging repository occupies one slot until its own timeout; the others go on in the rest.
Results come back in the order of the ids given (the order of the YAML), whatever the order
in which they finished. Each task runs in a copy of the caller's context, so what the caller
bound for its log lines (the request id of the request that asked for the work) is on the
lines the threads write too.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

R = TypeVar("R")
DEFAULT_JOBS = 8


def jobs_for(cfg: LoadedConfig, jobs: int | None) -> int:
    """``--jobs N`` when given, else the config's ``jobs`` (default 8); at least 1."""
    return max(1, jobs if jobs is not None else cfg.model.jobs)


def each(ids: Sequence[str], work: Callable[[str], R], jobs: int) -> list[R]:
    """``work(id)`` for every id, at most ``jobs`` at once; the results in the order of ``ids``."""
    if jobs <= 1 or len(ids) <= 1:
        return [work(rid) for rid in ids]
    caller = contextvars.copy_context()

    def in_callers_context(rid: str) -> R:
        return caller.copy().run(work, rid)  # a context is entered by one thread at a time

    with ThreadPoolExecutor(max_workers=min(jobs, len(ids)),
                            thread_name_prefix="git-mirror-repo") as pool:
        return list(pool.map(in_callers_context, ids))
