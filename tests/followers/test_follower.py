"""Followers on a local node: trigger builds exactly the snapshot, flushes, and records runs."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from git_mirror.config import load_config
from git_mirror.follower import state as st
from tests.support.cli import CliResult, run_cli
from tests.support.follower import (
    FOLLOWER,
    LANE,
    SNAP_PREFIX,
    Build,
    follower_config,
    make_build,
    run_record,
    wait_for_status,
)
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
CANARY = "host-only-canary-7d3f"



def trigger(cli: Cli, *extra: str) -> CliResult:
    return cli("--json", "follower", "trigger", "--follower", FOLLOWER, *extra)


def state_dir(config: Path) -> Path:
    return config.parent / ".git-mirror" / "state" / "followers" / FOLLOWER


def test_trigger_wait_builds_the_snapshot_and_flushes_the_lane(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build, config: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_MIRROR_TEST_CANARY", CANARY)
    tip, lane_before = upstream.rev("refs/heads/main"), upstream.rev(LANE)
    assert tip and lane_before

    res = trigger(cli, "--confirm", "--wait")
    assert res.code == 0, res.stdout
    data = res.json
    run = data["run"]
    assert data["ok"] is True and data["dryRun"] is False
    assert run["status"] == "succeeded" and run["name"].startswith(f"{FOLLOWER}-")
    assert data["commit"] == tip
    assert data["snapshotRef"] == SNAP_PREFIX + tip
    # sync ran first: the snapshot exists in the mirror and names the tip
    assert mirror.rev(data["snapshotRef"]) == tip

    # the build ran in a checkout of exactly that commit, holding only the snapshot ref
    assert build.seen(run["name"], "head") == tip
    assert build.seen(run["name"], "refs").splitlines() == [SNAP_PREFIX + tip]
    assert build.seen(run["name"], "symbolic-head") == "detached"
    assert build.seen(run["name"], "remotes") == ""
    assert build.seen(run["name"], "pwd").startswith(str(state_dir(config) / "work"))

    # its environment: the GIT_MIRROR_* variables, a private HOME, nothing else of the host
    env = dict(line.split("=", 1) for line in build.seen(run["name"], "env").splitlines()
               if "=" in line)
    assert env["GIT_MIRROR_SNAPSHOT_REF"] == data["snapshotRef"]
    assert env["GIT_MIRROR_COMMIT"] == tip
    assert env["GIT_MIRROR_LANE_REF"] == LANE
    assert env["GIT_MIRROR_PUSH_URL"] == f"file://{mirror.path}"
    assert CANARY not in build.seen(run["name"], "env")
    assert env["HOME"] != os.environ["HOME"] and env["HOME"].startswith(str(state_dir(config)))

    # the lane commit went through the mirror and was flushed upstream
    pushed = build.seen(run["name"], "pushed")
    assert upstream.rev(LANE) == pushed == mirror.rev(LANE) == data["laneTip"]
    assert upstream.git("rev-parse", f"{pushed}^") == lane_before
    assert data["flushAfter"]["ok"] is True
    assert [p["ref"] for p in data["flushAfter"]["pushed"]] == [LANE]
    assert data["pendingFlush"] is False and data["githubInSync"] is True

    # the run record, the log; the checkout is gone after a successful run
    rec = run_record(config, run["name"])
    assert rec["status"] == "succeeded" and rec["exitCode"] == 0
    assert rec["snapshotRef"] == data["snapshotRef"] and rec["commit"] == tip
    assert rec["laneTipAfter"] == pushed
    assert Path(str(rec["log"])).read_text(encoding="utf-8").count("exit code 0") == 1
    assert not (state_dir(config) / "work" / run["name"]).exists()


def test_the_build_keeps_its_snapshot_while_the_branch_moves(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build) -> None:
    tip = upstream.rev("refs/heads/main")
    build.mode("move-branch")
    res = trigger(cli, "--confirm", "--wait")
    assert res.code == 0, res.stdout
    name = res.json["run"]["name"]
    moved = build.seen(name, "moved-to")
    assert upstream.rev("refs/heads/main") == moved != tip
    assert build.seen(name, "head") == tip == res.json["commit"]
    deployed = upstream.git("show", f"{LANE}:deploy.yaml")
    assert tip in deployed and moved not in deployed

    build.mode("ok")
    again = trigger(cli, "--confirm", "--wait")
    assert again.code == 0, again.stdout
    assert again.json["commit"] == moved
    assert mirror.rev(SNAP_PREFIX + moved) == moved
    assert mirror.rev(SNAP_PREFIX + tip) == tip  # the first snapshot stays


def test_a_failing_build_fails_the_run_and_flushes_nothing(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build, config: Path) -> None:
    lane_before = upstream.rev(LANE)
    build.mode("fail")
    res = trigger(cli, "--confirm", "--wait")
    assert res.code == 1, res.stdout
    data = res.json
    assert data["ok"] is False
    assert data["run"]["status"] == "failed" and data["run"]["exitCode"] == 3
    assert data["error"]["code"] == "run-failed"
    assert "cleanup-runs --pipeline-run " + data["run"]["name"] in data["error"]["hint"]
    assert data["flushAfter"] is None
    assert upstream.rev(LANE) == lane_before == mirror.rev(LANE)
    assert "build broke on purpose" in Path(data["run"]["log"]).read_text(encoding="utf-8")
    # the failed run's checkout stays for inspection until cleanup-runs
    assert (state_dir(config) / "work" / data["run"]["name"] / "checkout").is_dir()

    status = cli("--json", "follower", "status", "--follower", FOLLOWER).json
    assert status["run"] == {"name": data["run"]["name"], "status": "failed"}


def test_the_push_url_holds_the_mirror_ref_protection(cli: Cli, mirror: Repo, build: Build) -> None:
    build.mode("push-source")
    res = trigger(cli, "--confirm", "--wait")
    assert res.code == 1 and res.json["run"]["exitCode"] == 5, res.stdout
    assert "source branches follow upstream and are read-only" in build.seen(
        res.json["run"]["name"], "refused")
    assert mirror.rev("refs/heads/main") == res.json["commit"]


def test_a_build_that_pushed_then_failed_leaves_its_commit_pending(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build) -> None:
    lane_before = upstream.rev(LANE)
    build.mode("push-then-fail")
    res = trigger(cli, "--confirm", "--wait")
    assert res.code == 1, res.stdout
    pushed = build.seen(res.json["run"]["name"], "pushed")
    assert mirror.rev(LANE) == pushed  # accepted by the mirror: never lost
    assert upstream.rev(LANE) == lane_before  # but not flushed after a failed run
    assert res.json["pendingFlush"] is True

    # the next confirmed trigger flushes before it builds
    build.mode("ok")
    again = trigger(cli, "--confirm", "--wait")
    assert again.code == 0, again.stdout
    assert [p["to"] for p in again.json["flushBefore"]["pushed"]] == [pushed]
    assert upstream.git("rev-parse", f"{upstream.rev(LANE)}^") == pushed


def test_a_lane_that_diverged_upstream_fails_the_delivery_not_the_run(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build) -> None:
    build.mode("upstream-lane-moves")
    res = trigger(cli, "--confirm", "--wait")
    assert res.code == 1, res.stdout
    data = res.json
    name = data["run"]["name"]
    assert data["run"]["status"] == "succeeded"
    assert data["flushAfter"]["ok"] is False
    assert data["error"]["code"] == "diverged"
    assert data["pendingFlush"] is True
    # both commits are kept: the build's in the mirror, the other one upstream
    assert mirror.rev(LANE) == build.seen(name, "pushed")
    assert upstream.rev(LANE) == build.seen(name, "upstream-lane")
    # follower status says the same of the finished run, not just "succeeded"
    status = cli("--json", "follower", "status", "--follower", FOLLOWER).json
    assert status["run"] == {"name": name, "status": "succeeded"}
    assert status["lastRunError"]["code"] == "diverged"


def test_dry_run_changes_nothing_and_runs_nothing(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build, config: Path) -> None:
    res = trigger(cli)
    assert res.code == 0, res.stdout
    assert res.json["dryRun"] is True and res.json["run"]["status"] == "not-started"
    assert res.json["commit"] is None  # nothing cached yet, and nothing was synced
    assert not mirror.path.exists()

    assert cli("--json", "sync", "--confirm").code == 0
    refs_before = mirror.refs()
    old_tip = upstream.rev("refs/heads/main")
    assert old_tip
    new_tip = upstream.commit("main", "new work")
    for extra in ((), ("--wait",), ("--dry-run", "--wait")):
        res = trigger(cli, *extra)
        assert res.code == 0, res.stdout
        data = res.json
        assert data["dryRun"] is True and data["run"]["name"] is None
        assert data["commit"] == old_tip and data["snapshotRef"] == SNAP_PREFIX + old_tip
    assert mirror.refs() == refs_before
    assert mirror.rev(SNAP_PREFIX + new_tip) is None
    assert build.ran() == []
    assert not (state_dir(config) / "runs").exists()


def test_background_trigger_is_followed_by_status(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build, config: Path) -> None:
    build.mode("sleep")
    res = trigger(cli, "--confirm")
    assert res.code == 0, res.stdout
    data = res.json
    assert data["run"]["status"] == "running"
    assert data["snapshotRef"] == SNAP_PREFIX + data["commit"]
    name = data["run"]["name"]

    # a second trigger meanwhile is refused: one run per follower at a time
    busy = trigger(cli, "--confirm")
    assert busy.code == 1 and busy.json["error"]["code"] == "busy"
    # and the running run's files are not for cleanup
    refused = cli("--json", "cleanup-runs", "--pipeline-run", name, "--confirm")
    assert refused.code == 1 and refused.json["error"]["code"] == "run-running"
    assert (state_dir(config) / "runs" / f"{name}.json").exists()

    done = wait_for_status(cli, "succeeded", timeout=60)
    assert done["run"] == {"name": name, "status": "succeeded"} and done["lastRunError"] is None
    last = done["lastRun"]
    assert isinstance(last, dict) and last["detached"] is True
    pushed = build.seen(name, "pushed")
    assert upstream.rev(LANE) == pushed == mirror.rev(LANE)
    assert done["pendingFlush"] is False and done["githubInSync"] is True

    # status --wait waits for the run in progress to finish
    second = trigger(cli, "--confirm").json["run"]
    assert second["status"] == "running" and second["name"] != name
    waited = cli("--json", "follower", "status", "--follower", FOLLOWER, "--wait")
    assert waited.code == 0, waited.stdout
    assert waited.json["run"] == {"name": second["name"], "status": "succeeded"}
    assert upstream.rev(LANE) == build.seen(second["name"], "pushed")


def test_a_run_is_not_finished_before_the_flush_after_it(
        cli: Cli, upstream: Repo, build: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    from git_mirror.mirror import flush as flush_mod

    real = flush_mod.flush
    seen: list[dict[str, object]] = []

    def observed(*args: object, **kwargs: object) -> object:
        # what a reader sees the moment a flush starts (the one before the run and the one after)
        seen.append(cli("--json", "follower", "status", "--follower", FOLLOWER).json)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flush_mod, "flush", observed)
    res = trigger(cli, "--confirm", "--wait")
    assert res.code == 0, res.stdout
    name = res.json["run"]["name"]
    during = seen[-1]
    assert during["run"] == {"name": name, "status": "running"}
    last = during["lastRun"]
    assert isinstance(last, dict) and last["phase"] == "flush after"
    assert during["lastRunError"] is None
    done = cli("--json", "follower", "status", "--follower", FOLLOWER).json
    assert done["run"] == {"name": name, "status": "succeeded"}
    assert done["lastRun"]["phase"] == "done" and done["pendingFlush"] is False
    assert upstream.rev(LANE) == build.seen(name, "pushed")


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if st.process_start(pid) is None:
            return True
        time.sleep(0.1)
    return False


def test_a_run_past_its_time_is_stopped_and_failed(
        cli: Cli, upstream: Repo, build: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    from git_mirror.follower import triggers

    monkeypatch.setattr(triggers, "EXEC_TIMEOUT_SECONDS", 1.0)
    lane_before = upstream.rev(LANE)
    build.mode("hang")
    started = time.monotonic()
    res = trigger(cli, "--confirm", "--wait")
    assert time.monotonic() - started < 30
    assert res.code == 1, res.stdout
    assert res.json["run"]["status"] == "failed" and res.json["error"]["code"] == "timeout"
    assert _gone(int(build.seen(res.json["run"]["name"], "pid")))
    assert upstream.rev(LANE) == lane_before


def test_a_terminated_background_run_stops_its_command_and_says_failed(
        cli: Cli, build: Build, config: Path) -> None:
    build.mode("hang")
    res = trigger(cli, "--confirm")
    assert res.code == 0, res.stdout
    name = res.json["run"]["name"]
    command_pid = build.started(name, timeout=30)
    worker_pid = int(str(run_record(config, name)["pid"]))
    os.kill(worker_pid, signal.SIGTERM)
    done = wait_for_status(cli, "failed", timeout=60)
    last = done["lastRun"]
    assert isinstance(last, dict) and "stale" not in last
    assert last["error"]["code"] == "interrupted"
    assert _gone(command_pid)


def test_a_run_whose_process_died_reads_as_failed(cli: Cli, build: Build, config: Path) -> None:
    assert trigger(cli, "--confirm", "--wait").code == 0
    state = st.FollowerState.of(load_config(config), FOLLOWER)
    name = state.new_run_name("0" * 40)
    state.save(st.RunRecord.from_json({"name": name, "follower": FOLLOWER, "status": "running",
                                       "pid": 2 ** 22 + 7, "pidStart": "1"}))
    status = cli("--json", "follower", "status", "--follower", FOLLOWER).json
    assert status["run"] == {"name": name, "status": "failed"}
    assert status["lastRun"]["stale"] is True
    assert status["lastRun"]["error"]["code"] == "run-lost"
    assert status["running"] == []


def test_cleanup_runs_dry_run_then_confirm(cli: Cli, build: Build, config: Path) -> None:
    build.mode("fail")
    failed = trigger(cli, "--confirm", "--wait").json["run"]["name"]
    runs = state_dir(config) / "runs"
    files = [runs / f"{failed}.json", runs / f"{failed}.log", state_dir(config) / "work" / failed]
    assert all(p.exists() for p in files)

    dry = cli("--json", "cleanup-runs", "--pipeline-run", failed)
    assert dry.code == 0, dry.stdout
    assert dry.json["dryRun"] is True and dry.json["removed"] == []
    assert sorted(dry.json["wouldRemove"]) == sorted(str(p) for p in files)
    assert dry.json["pipelineRun"] == {"name": failed, "status": "failed"}
    assert all(p.exists() for p in files)

    done = cli("--json", "cleanup-runs", "--pipeline-run", failed, "--confirm")
    assert done.code == 0, done.stdout
    assert sorted(done.json["removed"]) == sorted(str(p) for p in files)
    assert not any(p.exists() for p in files)

    again = cli("--json", "cleanup-runs", "--pipeline-run", failed, "--confirm")
    assert again.code == 1 and again.json["error"]["code"] == "not-found"
    bad = cli("--json", "cleanup-runs", "--pipeline-run", "../../etc", "--confirm")
    assert bad.code == 2 and bad.json["error"]["code"] == "usage"

    # the retry starts clean and succeeds
    build.mode("ok")
    assert trigger(cli, "--confirm", "--wait").code == 0


def test_cleanup_state_dry_run_then_confirm(cli: Cli, mirror: Repo, build: Build,
                                            config: Path) -> None:
    assert trigger(cli, "--confirm", "--wait").code == 0
    build.mode("fail")
    assert trigger(cli, "--confirm", "--wait").code == 1
    runs = state_dir(config) / "runs"
    before = sorted(p.name for p in runs.iterdir())
    assert len(before) == 4  # two records, two logs
    stray = state_dir(config) / "stray.tmp"
    stray.write_text("left behind\n")

    dry = cli("--json", "follower", "cleanup-state", "--follower", FOLLOWER)
    assert dry.code == 0, dry.stdout
    assert dry.json["dryRun"] is True and dry.json["removed"] == []
    assert len(dry.json["wouldRemove"]) == 6  # + the failed run's checkout, the stray file
    assert str(stray) in dry.json["wouldRemove"] and stray.exists()
    assert sorted(p.name for p in runs.iterdir()) == before

    refs = mirror.refs()
    done = cli("--json", "follower", "cleanup-state", "--follower", FOLLOWER, "--confirm")
    assert done.code == 0, done.stdout
    assert sorted(done.json["removed"]) == sorted(dry.json["wouldRemove"])
    assert list(runs.iterdir()) == [] and list((state_dir(config) / "work").iterdir()) == []
    assert not stray.exists() and (state_dir(config) / "lock").exists()
    assert mirror.refs() == refs  # state only: no ref is touched
    listed = cli("--json", "follower", "list").json
    assert [f["lastRun"] for f in listed["followers"] if f["id"] == FOLLOWER] == [None]


def test_finished_runs_beyond_the_retention_go_by_themselves(
        cli: Cli, build: Build, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(st, "KEEP_RUNS", 1)
    names = [trigger(cli, "--confirm", "--wait").json["run"]["name"] for _ in range(3)]
    left = sorted(p.name for p in (state_dir(config) / "runs").iterdir() if p.suffix == ".json")
    assert left == sorted(f"{n}.json" for n in names[1:])


def test_follower_list_and_status(cli: Cli, upstream: Repo, build: Build) -> None:
    listed = cli("--json", "follower", "list")
    assert listed.code == 0, listed.stdout
    rows = {f["id"]: f for f in listed.json["followers"]}
    assert rows[FOLLOWER]["trigger"] == "exec" and rows[FOLLOWER]["lastRun"] is None
    assert rows["hwlab-tekton"]["trigger"] == "tekton"

    one = cli("--json", "follower", "list", "--follower", FOLLOWER).json["followers"]
    assert [f["id"] for f in one] == [FOLLOWER]
    assert cli("--json", "follower", "list", "--follower", "nope").code == 2

    name = trigger(cli, "--confirm", "--wait").json["run"]["name"]
    rows = {f["id"]: f for f in cli("--json", "follower", "list").json["followers"]}
    assert rows[FOLLOWER]["lastRun"]["name"] == name
    assert rows[FOLLOWER]["lastRun"]["status"] == "succeeded"

    status = cli("--json", "follower", "status", "--follower", FOLLOWER)
    assert status.code == 0, status.stdout
    data = status.json
    tip = upstream.rev("refs/heads/main")
    assert tip
    assert data["branchTip"] == tip and data["snapshotRef"] == SNAP_PREFIX + tip
    assert data["lane"]["ref"] == LANE and data["lane"]["mirrorCommit"] == upstream.rev(LANE)
    assert data["pendingFlush"] is False and data["githubInSync"] is True
    text = cli("follower", "status", "--follower", FOLLOWER)
    assert text.code == 0 and name in text.stdout and "succeeded" in text.stdout


def test_unknown_follower_is_a_usage_error(cli: Cli) -> None:
    for args in (("follower", "status"), ("follower", "trigger", "--confirm"),
                 ("follower", "cleanup-state"), ("closeout", "--merge-commit", "abcd")):
        res = cli("--json", *args, "--follower", "nope")
        assert res.code == 2, (args, res.stdout)
        assert res.json["error"]["code"] == "usage"
        assert "hwlab-runtime" in res.json["error"]["message"]


def test_tekton_follower_on_a_local_node_is_not_supported(cli: Cli, mirror: Repo) -> None:
    for extra in ((), ("--confirm", "--wait")):
        res = cli("--json", "follower", "trigger", "--follower", "hwlab-tekton", *extra)
        assert res.code == 1, res.stdout
        err = res.json["error"]
        assert err["code"] == "not-supported"
        assert "--node" in err["message"] and "kubernetes" in err["message"]
        assert "--node" in err["hint"]
    assert not mirror.path.exists()  # refused before anything ran


def test_each_trigger_kind_runs_only_on_its_executor(
        write_config: Callable[..., Path], upstream: Repo, build: Build) -> None:
    nodes = ("nodes:\n  local: {executor: local}\n"
             "  D601: {executor: kubernetes, kubernetes: {namespace: devops-infra}}\n")
    path = write_config(follower_config(upstream, build.script, nodes), name="k.yaml")
    res = run_cli("--config", path, "--node", "D601", "--json", "follower", "trigger",
                  "--follower", FOLLOWER, "--confirm", "--wait")
    assert res.code == 1 and res.json["error"]["code"] == "not-supported"
    assert "--node local" in res.json["error"]["hint"]
    assert build.ran() == []
    local = run_cli("--config", path, "--json", "follower", "trigger", "--follower", "hwlab-tekton")
    assert local.json["error"]["code"] == "not-supported"
    assert "--node D601" in local.json["error"]["hint"]


def test_human_output_and_json_are_one_object(cli: Cli, build: Build) -> None:
    res = cli("follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    assert res.code == 0, res.stderr
    assert "succeeded" in res.stdout and "snapshot refs/unidesk/snapshots/" in res.stdout
    res = trigger(cli, "--confirm", "--wait")
    json.loads(res.stdout)  # exactly one JSON object


def test_run_names_are_unique_and_ordered_within_one_second(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    state = st.FollowerState("f", tmp_path / "f")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    names = [state.new_run_name(c * 40, now) for c in "babc"]
    assert names == ["f-20260102T030405Z-bbbbbbb", "f-20260102T030405Z-aaaaaaa-2",
                     "f-20260102T030405Z-bbbbbbb-3", "f-20260102T030405Z-ccccccc-4"]
    later = state.new_run_name("a" * 40, datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert state.run_names() == [*names, later]


def test_a_build_script_from_the_repository_runs_from_the_checkout(
        write_config: Callable[..., Path], upstream: Repo, tmp_path: Path) -> None:
    """``exec: [./ci/build.sh]`` is the snapshot's own file, even without its executable bit."""
    script = ("#!/bin/sh\nset -eu\n"
              f'echo "$(git rev-parse HEAD) $1" > "{tmp_path}/from-repo"\n')
    blob = upstream.git("hash-object", "-w", "--stdin", input=script.encode())
    ci = upstream.git("mktree", input=f"100644 blob {blob}\tbuild.sh\n".encode())
    tree = upstream.git("mktree", input=f"040000 tree {ci}\tci\n".encode())
    tip = upstream.git("commit-tree", tree, "-p", "refs/heads/main", "-m", "add the build script")
    upstream.set_ref("refs/heads/main", tip)
    extra = ("  in-repo:\n    repository: hwlab\n    branch: main\n    lane: v03\n"
             '    trigger: {exec: ["./ci/build.sh", "arg-one"]}\n')
    build = make_build(tmp_path, upstream)
    path = write_config(follower_config(upstream, build.script) + extra, name="repo.yaml")
    res = run_cli("--config", path, "--json", "follower", "trigger", "--follower", "in-repo",
                  "--confirm", "--wait")
    assert res.code == 0, res.stdout
    assert (tmp_path / "from-repo").read_text(encoding="utf-8").split() == [tip, "arg-one"]


def test_a_trigger_right_after_a_finished_run_waits_for_its_worker_to_exit(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build, config: Path) -> None:
    import subprocess
    import sys

    assert trigger(cli, "--confirm", "--wait").code == 0
    lock = state_dir(config) / "lock"
    assert lock.exists()
    # A process that holds the lock with no run "running": a worker that wrote its outcome
    # and is still exiting. It lets go after a moment, bounded.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR);"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(1.5)",
         str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        res = trigger(cli, "--confirm")
        assert res.code == 0, res.stdout
        assert res.json["run"]["status"] == "running"
        finished = wait_for_status(cli, "succeeded", timeout=60)
        assert finished["run"] == {"name": res.json["run"]["name"], "status": "succeeded"}
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_snapshot_without_the_build_script_fails_its_run_and_runs_no_operator_file(
        write_config: Callable[..., Path], upstream: Repo, tmp_path: Path) -> None:
    """``exec: [./ci/build.sh]`` is a file of the snapshot commit and nothing else (R1): a file
    of that name beside the config is never run, and the run fails saying what to fix."""
    extra = ("  beside:\n    repository: hwlab\n    branch: main\n    lane: v03\n"
             '    trigger: {exec: ["./ci/beside.sh", "x"]}\n'
             "  escape:\n    repository: hwlab\n    branch: main\n    lane: v03\n"
             '    trigger: {exec: ["../../../../../cfg/ci/beside.sh"]}\n')
    build = make_build(tmp_path, upstream)
    path = write_config(follower_config(upstream, build.script) + extra, name="cfg/git-mirror.yaml")
    (path.parent / "ci").mkdir()
    script = path.parent / "ci" / "beside.sh"
    marker = tmp_path / "operator-file-ran"
    script.write_text(f'#!/bin/sh\necho ran > "{marker}"\n')
    script.chmod(0o755)
    for fid in ("beside", "escape"):
        res = run_cli("--config", path, "--json", "follower", "trigger", "--follower", fid,
                      "--confirm", "--wait")
        assert res.code == 1, res.stdout
        err = res.json["error"]
        assert err["code"] == "exec-not-in-snapshot", err
        assert res.json["run"]["status"] == "failed"
        assert res.json["commit"][:12] in err["message"]
        # the next step is to commit the script or declare an absolute path, not a retry
        assert err["hint"].startswith("commit ") and "absolute path" in err["hint"]
        assert "cleanup-runs" not in err["hint"]
        log = Path(res.json["run"]["log"]).read_text(encoding="utf-8")
        assert "exec-not-in-snapshot" in log or "nothing else" in log
    assert not marker.exists()

    # an absolute path is a program the operator declared on purpose: it runs
    absolute = ("  operator:\n    repository: hwlab\n    branch: main\n    lane: v03\n"
                f'    trigger: {{exec: ["{script}"]}}\n')
    path = write_config(follower_config(upstream, build.script) + extra + absolute,
                        name="cfg/git-mirror.yaml")
    res = run_cli("--config", path, "--json", "follower", "trigger", "--follower", "operator",
                  "--confirm", "--wait")
    assert res.code == 0, res.stdout
    assert marker.read_text(encoding="utf-8").strip() == "ran"


def test_follower_status_of_one_run_as_observed_now(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build, tmp_path: Path) -> None:
    first = trigger(cli, "--confirm", "--wait")
    assert first.code == 0, first.stdout
    name, built = first.json["run"]["name"], first.json["commit"]
    later = upstream.commit("main", "a later merge")
    assert cli("--json", "sync", "--confirm").code == 0
    res = cli("--json", "follower", "status", "--follower", FOLLOWER, "--pipeline-run", name)
    assert res.code == 0, res.stdout
    d = res.json
    run = d["pipelineRun"]
    assert run["name"] == name and run["status"] == "succeeded"
    assert run["commit"] == built and run["snapshotRef"] == SNAP_PREFIX + built
    assert run["publishedLaneCommit"] == build.seen(name, "pushed") == upstream.rev(LANE)
    assert d["flush"]["state"] == "flushed" and d["flush"]["upstreamHasPublished"] is True
    assert d["currentBranchTip"] == later != built
    assert "not this run's source" in d["currentBranchTipNote"]
    text = cli("follower", "status", "--follower", FOLLOWER, "--pipeline-run", name)
    assert text.code == 0 and built in text.stdout and "not this run's source" in text.stdout

    # a failed run that pushed: its lane commit waits in the mirror
    build.mode("push-then-fail")
    failed = trigger(cli, "--confirm", "--wait")
    assert failed.code == 1
    fname = failed.json["run"]["name"]
    d = cli("--json", "follower", "status", "--follower", FOLLOWER, "--pipeline-run", fname).json
    assert d["pipelineRun"]["status"] == "failed"
    assert d["pipelineRun"]["publishedLaneCommit"] == build.seen(fname, "pushed")
    assert d["flush"]["state"] == "pending" and d["pendingFlush"] is True

    unknown = cli("--json", "follower", "status", "--follower", FOLLOWER, "--pipeline-run",
                  "hwlab-runtime-20260101T000000Z-0000000")
    assert unknown.code == 1 and unknown.json["error"]["code"] == "not-found"


def test_trigger_in_human_text_names_the_lane_it_flushed(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build) -> None:
    """The flush after the run, in the words of flush's own push lines, with the repository
    left out (the follower's): ``  flushed <ref>  <from> -> <to>``."""
    lane_before = upstream.rev(LANE) or ""
    res = cli("follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    assert res.code == 0, res.stdout + res.stderr
    pushed = mirror.rev(LANE) or ""
    assert pushed != lane_before and upstream.rev(LANE) == pushed
    flushed = [line for line in res.stdout.splitlines() if line.startswith("  flushed ")]
    assert flushed == [f"  flushed {LANE}  {lane_before[:12]} -> {pushed[:12]}"], res.stdout
