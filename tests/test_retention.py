"""snapshots prune: snapshots age from the time sync created them, not from their commit's
date; what a running run reads and what a follower's last succeeded runs built stays; a dry
run lists exactly what a confirmed prune removes."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from git_mirror.config import load_config
from git_mirror.follower.retention import prune_snapshots
from tests.conftest import mirror_repo
from tests.support.cli import CliResult, run_cli
from tests.support.configs import HWLAB_REPOSITORY
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
    build.started(name)  # the build command runs: its snapshot is in use
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


def test_a_busy_repository_leaves_what_prune_deleted_elsewhere_in_the_output(
        write_config: Callable[..., Path], upstream: Repo) -> None:
    """Without --wait, a repository whose lock is held is ``busy``; what the prune deleted in
    the repositories before it is still listed (as the audit journal has it), exit 1."""
    from tests.conftest import BASE_CONFIG

    second = HWLAB_REPOSITORY.format(url=upstream.url).replace(
        "repositories:\n  hwlab:", "  second:")
    cfg = write_config(BASE_CONFIG.format(url=upstream.url).replace(
        "  namespace: unidesk\n", "  namespace: unidesk\n  retention: {keepLast: 1, "
        "maxAgeDays: null}\n") + second)
    tips = []
    for i in range(3):
        tips.append(old_commit(upstream, i))
        assert run_cli("--config", cfg, "sync", "--confirm").code == 0
    before = set(mirror_repo(cfg, "hwlab").refs(SNAP_PREFIX))
    assert len(before) == 3 and before == set(mirror_repo(cfg, "second").refs(SNAP_PREFIX))
    lock = cfg.parent / ".git-mirror" / "state" / "second" / "lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a sync of "second" holds it
        res = run_cli("--config", cfg, "--json", "snapshots", "prune", "--confirm")
        human = run_cli("--config", cfg, "snapshots", "prune")
    finally:
        os.close(fd)
    assert res.code == 1, res.stdout
    assert res.json["ok"] is False
    assert res.json["error"]["code"] == "busy"
    assert "repository second is busy" in res.json["error"]["message"]
    assert res.json["error"]["hint"] == "git-mirror snapshots prune --repo second --confirm --wait"
    assert [f["repository"] for f in res.json["failed"]] == ["second"]
    gone = before - {SNAP_PREFIX + tips[-1]}
    assert {(p["repository"], p["ref"]) for p in res.json["pruned"]} == {
        ("hwlab", ref) for ref in gone}
    assert set(mirror_repo(cfg, "hwlab").refs(SNAP_PREFIX)) == {SNAP_PREFIX + tips[-1]}
    assert set(mirror_repo(cfg, "second").refs(SNAP_PREFIX)) == before  # not touched
    audit = cfg.parent / ".git-mirror" / "state" / "hwlab" / "audit.jsonl"
    journaled = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert {e["ref"] for e in journaled if e["operation"] == "prune"} == gone
    # A dry run says the same in human text: what it would prune, then the error.
    assert human.code == 1
    assert re.match(r"would prune 0, kept \d+\n", human.stdout), human.stdout
    assert "busy" in human.stdout + human.stderr
    # Once the lock is free, the same command prunes the rest.
    again = run_cli("--config", cfg, "--json", "snapshots", "prune", "--confirm")
    assert again.code == 0 and again.json["ok"] is True and "error" not in again.json
    assert {p["repository"] for p in again.json["pruned"]} == {"second"}
