"""Shared pieces of the benchmarks: synthetic upstreams, timers and a table printer.

Benchmarks are programs, not tests: they print medians and ratios against raw git doing the
same work (the physical limit), and never fail on a number.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
       "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C",
       "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}


def git(*args: str, input: bytes | None = None, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], input=input, cwd=cwd, env=ENV, check=True,
                          capture_output=True).stdout.decode().strip()


def build_upstream(path: Path, *, commits: int, branches: int, tags: int) -> None:
    """A bare repo with a ``main`` history of ``commits`` commits, ``branches`` release
    branches, ``tags`` lightweight tags and a ``gitops/v03`` lane, via one fast-import."""
    git("init", "--bare", "--quiet", str(path))
    out: list[str] = []
    for i in range(1, commits + 1):
        body = f"line {i}\n"
        out.append(f"commit refs/heads/main\nmark :{i}\n"
                   f"committer bench <b@x> {1700000000 + i} +0000\n"
                   f"data {len(f'c{i}')}\nc{i}\n" + (f"from :{i - 1}\n" if i > 1 else "") +
                   f"M 644 inline f{i % 50}.txt\ndata {len(body)}\n{body}\n")
    for b in range(branches):
        out.append(f"reset refs/heads/release/{b}\nfrom :{max(1, commits - (b % commits))}\n\n")
    for t in range(tags):
        out.append(f"reset refs/tags/t{t}\nfrom :{1 + (t % commits)}\n\n")
    out.append("commit refs/heads/gitops/v03\ncommitter bench <b@x> 1700000000 +0000\n"
               "data 4\nlane\n"
               "M 644 inline deploy.yaml\ndata 6\nimage\n\n")
    git(f"--git-dir={path}", "fast-import", "--quiet", input="".join(out).encode())
    git(f"--git-dir={path}", "pack-refs", "--all")


def add_commit(path: Path, branch: str = "main") -> str:
    parent = git(f"--git-dir={path}", "rev-parse", f"refs/heads/{branch}")
    tree = git(f"--git-dir={path}", "rev-parse", f"{parent}^{{tree}}")
    oid = git(f"--git-dir={path}", "commit-tree", tree, "-p", parent,
              "-m", f"bench {time.time_ns()}")
    git(f"--git-dir={path}", "update-ref", f"refs/heads/{branch}", oid)
    return oid


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_of(fn: Callable[[], object], reps: int) -> float:
    return statistics.median(timed(fn) for _ in range(reps))


def run_ms(argv: list[str], reps: int, env: dict[str, str] | None = None) -> float:
    return 1000 * median_of(lambda: subprocess.run(argv, env=env or ENV, check=True,
                                                   capture_output=True), reps)


def table(rows: list[list[str]], header: list[str]) -> str:
    all_rows = [header, *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in all_rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
