"""snapshots prune: snapshots age from the time sync created them, not from their commit's
date; what a running run reads and what a follower's last succeeded runs built stays; a dry
run lists exactly what a confirmed prune removes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from git_mirror.config import load_config
from git_mirror.follower.retention import prune_snapshots
from tests.conftest import mirror_repo
from tests.support.cli import CliResult, run_cli
from tests.support.follower import FOLLOWER, SNAP_PREFIX, follower_config, make_build, run_record
from tests.support.gitutil import Repo

DAY = 86400.0
RETENTION = "  namespace: unidesk\n  retention: {keepLast: 1, maxAgeDays: 1}\n"


def old_commit(upstream: Repo, n: int) -> str:
    return upstream.commit("main", f"old {n}", files={"f": str(n)},
                           date=f"2020-01-{n + 1:02d}T00:00:00Z")


def test_old_commits_synced_now_are_new_snapshots(write_config: Callable[..., Path],
                                                  upstream: Repo) -> None:
    from tests.conftest import BASE_CONFIG

    cfg = write_config(BASE_CONFIG.format(url=upstream.url).replace(
        "  namespace: unidesk\n",
        "  namespace: unidesk\n  retention: {keepLast: 2, maxAgeDays: 1}\n"))
    tips = []
    for i in range(5):
        tips.append(old_commit(upstream, i))
        assert run_cli("--config", cfg, "sync", "--confirm").code == 0
    mirror = mirror_repo(cfg)
    listed = run_cli("--config", cfg, "--json", "snapshots", "list", "--branch", "main").json
    created = {s["commit"]: s["createdAt"] for s in listed["snapshots"]}
    assert set(created) == set(tips)
    assert all(c and c.startswith(time.strftime("%Y-")) for c in created.values())
    assert all(s["committedAt"].startswith("2020-") for s in listed["snapshots"])
    # created seconds ago: nothing is older than maxAgeDays, whatever the commit dates say
    dry = run_cli("--config", cfg, "--json", "snapshots", "prune")
    assert dry.code == 0 and dry.json["pruned"] == []
    done = run_cli("--config", cfg, "--json", "snapshots", "prune", "--confirm")
    assert done.code == 0 and done.json["pruned"] == []
    assert len(mirror.refs(SNAP_PREFIX)) == 5

    # two days on, keepLast 2 keeps the two newest by creation; the dry run says exactly what
    # the confirmed prune then removes
    loaded = load_config(cfg)
    later = time.time() + 2 * DAY
    plan = prune_snapshots(loaded, now=later).to_json()
    assert plan["dryRun"] is True
    assert sorted(p["commit"] for p in plan["pruned"]) == sorted(tips[:3])
    gone = prune_snapshots(loaded, confirm=True, now=later).to_json()
    assert gone["pruned"] == plan["pruned"]
    assert set(mirror.refs(SNAP_PREFIX)) == {SNAP_PREFIX + tips[3], SNAP_PREFIX + tips[4]}


def test_snapshots_that_runs_use_are_never_pruned(
        write_config: Callable[..., Path], upstream: Repo, tmp_path: Path) -> None:
    build = make_build(tmp_path, upstream)
    cfg = write_config(follower_config(upstream, build.script).replace(
        "  namespace: unidesk\n", RETENTION))

    def cli(*args: str) -> CliResult:
        return run_cli("--config", cfg, *args)

    c0 = old_commit(upstream, 0)
    assert cli("sync", "--confirm").code == 0
    c1 = old_commit(upstream, 1)
    good = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    assert good.code == 0 and good.json["commit"] == c1
    c2 = old_commit(upstream, 2)
    assert cli("sync", "--confirm").code == 0
    c3 = old_commit(upstream, 3)
    build.mode("hang")
    hanging = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm")
    assert hanging.code == 0 and hanging.json["commit"] == c3
    name = hanging.json["run"]["name"]
    worker = int(str(run_record(cfg, name)["pid"]))
    deadline = time.monotonic() + 60
    while not (build.obs / name / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the build command runs: its snapshot is in use
    try:
        c4 = old_commit(upstream, 4)  # the branch moves on while the run reads c3's snapshot
        assert cli("sync", "--confirm").code == 0
        loaded = load_config(cfg)
        later = time.time() + 3 * DAY
        plan = prune_snapshots(loaded, now=later).to_json()
        assert sorted(p["commit"] for p in plan["pruned"]) == sorted([c0, c2])
        reasons = {p["ref"]: p["reason"] for p in plan["protected"]}
        assert "is running" in reasons[SNAP_PREFIX + c3]
        assert "last 1 succeeded runs" in reasons[SNAP_PREFIX + c1]
        done = prune_snapshots(loaded, confirm=True, now=later).to_json()
        assert done["pruned"] == plan["pruned"]
        mirror = mirror_repo(cfg)
        assert set(mirror.refs(SNAP_PREFIX)) == {SNAP_PREFIX + c for c in (c1, c3, c4)}
    finally:
        os.kill(worker, signal.SIGTERM)
    deadline = time.monotonic() + 60
    status = "running"
    while status == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = cli("--json", "follower", "status", "--follower", FOLLOWER,
                     "--pipeline-run", name).json["pipelineRun"]["status"]
    assert status == "failed"
