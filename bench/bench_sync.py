"""Sync and status against raw git on the same work.

    uv run python -m bench.bench_sync [--quick]

For each synthetic upstream (200 commits / 20 refs; 2,000 commits / 10,000 refs) it prints,
side by side in one run:

* ``git-mirror sync`` in-process (its own wall time) against one raw ``git fetch --atomic`` of
  the same refspecs into a second bare repo: a no-op, and one new upstream commit;
* the git processes one sync starts (it must not grow with the number of refs);
* ``git-mirror status --json`` as a whole process against its floor (``git-mirror --version``)
  plus one ``git for-each-ref`` of the same refs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.common import ENV, add_commit, build_upstream, git, median_of, run_ms, table

REFSPECS = ["+refs/heads/main:refs/mirror-stage/heads/main",
            "+refs/heads/release/*:refs/mirror-stage/heads/release/*",
            "+refs/tags/*:refs/mirror-stage/tags/*",
            "+refs/heads/gitops/v03:refs/mirror-stage/heads/gitops/v03"]

CONFIG = """\
version: 1
snapshots: {{namespace: bench}}
repositories:
  app:
    upstream: file://{up}
    transport: {{mode: file}}
    sources:
      - branch: main
      - branch: release/*
    tags: true
    lanes:
      v03: {{ref: gitops/v03}}
"""


def bench_case(root: Path, name: str, commits: int, branches: int, tags: int,
               reps: int) -> list[list[str]]:
    from git_mirror.config import load_config
    from git_mirror.git import run as gitrun
    from git_mirror.mirror.sync import sync

    up = root / f"{name}-up.git"
    build_upstream(up, commits=commits, branches=branches, tags=tags)
    nrefs = len(git(f"--git-dir={up}", "for-each-ref").splitlines())
    raw = root / f"{name}-raw.git"
    git("init", "--bare", "--quiet", str(raw))
    fetch = ["git", f"--git-dir={raw}", "-c", "protocol.version=2", "fetch", "--atomic",
             "--no-tags", "--quiet", "--no-write-fetch-head", f"file://{up}", *REFSPECS]
    cfg_path = root / name / "git-mirror.yaml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(CONFIG.format(up=up))
    cfg = load_config(cfg_path)

    def raw_fetch() -> None:
        git(*fetch[1:])

    def ours() -> None:
        res = sync(cfg, confirm=True)
        assert res.ok, res.to_json()

    t_raw_initial = median_of(raw_fetch, 1)
    t_ours_initial = median_of(ours, 1)
    t_raw_noop = median_of(raw_fetch, reps)
    t_ours_noop = median_of(ours, reps)
    before = gitrun.spawned()
    ours()
    procs_noop = gitrun.spawned() - before
    raw_inc, ours_inc = [], []
    procs_inc = 0
    for _ in range(reps):
        add_commit(up)
        raw_inc.append(median_of(raw_fetch, 1))
        before = gitrun.spawned()
        ours_inc.append(median_of(ours, 1))
        procs_inc = gitrun.spawned() - before
    t_raw_inc = sorted(raw_inc)[len(raw_inc) // 2]
    t_ours_inc = sorted(ours_inc)[len(ours_inc) // 2]

    mirror = cfg.cache_dir / "repos" / "app.git"
    cli = [sys.executable, "-m", "git_mirror.cli.main"]
    floor = run_ms([*cli, "--version"], reps)
    status = run_ms([*cli, "--config", str(cfg_path), "--json", "status"], reps)
    fer = run_ms(["git", f"--git-dir={mirror}", "for-each-ref", "refs/heads/",
                  "refs/mirror-stage/heads/"], reps)
    py = run_ms([sys.executable, "-c", "pass"], reps)

    def ms(t: float) -> str:
        return f"{t * 1000:.0f} ms"

    label = f"{name} ({commits} commits, {nrefs} refs)"
    return [
        [label, "initial sync", ms(t_ours_initial), ms(t_raw_initial),
         f"{t_ours_initial / t_raw_initial:.2f}x", "-"],
        [label, "no-op sync", ms(t_ours_noop), ms(t_raw_noop),
         f"{t_ours_noop / t_raw_noop:.2f}x", str(procs_noop)],
        [label, "1 new commit", ms(t_ours_inc), ms(t_raw_inc),
         f"{t_ours_inc / t_raw_inc:.2f}x", str(procs_inc)],
        [label, "status (CLI)", f"{status:.0f} ms", f"floor {floor:.0f} + 2x{fer:.0f} ms",
         f"{status / (floor + 2 * fer):.2f}x", "-"],
        [label, "CLI floor", f"{floor:.0f} ms", f"python {py:.0f} ms", f"{floor / py:.2f}x", "-"],
    ]


def main() -> None:
    quick = "--quick" in sys.argv
    reps = 3 if quick else 7
    cases = [("small", 200, 10, 9), ("large", 2000, 1000, 8998)]
    if quick:
        cases = [("small", 200, 10, 9), ("large", 500, 200, 1798)]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        for name, commits, branches, tags in cases:
            rows += bench_case(Path(tmp), name, commits, branches, tags, reps)
    print(f"git-mirror sync/status vs raw git (medians of {reps}; in-process for sync, "
          "whole process for the CLI)\n"
          "targets: sync <= 1.3x raw git fetch; status <= floor + 2x for-each-ref; "
          "git processes per sync flat\n")
    print(table(rows, ["upstream", "operation", "git-mirror", "raw git", "ratio", "git procs"]))
    _ = ENV


if __name__ == "__main__":
    main()
