"""After a kill at any instant, the next run of the same command succeeds with no hand repair.

Every case kills a real run (the CLI and all its git processes, SIGKILL to the process
group) and then runs the command again, plainly, in-process: it must succeed and leave the
mirror consistent with upstream. Stale git lock files are removed only by proof (no live
process of ours can hold them), and named in the result and the journal.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult
from tests.support.clients import Client
from tests.support.gitutil import Repo
from tests.support.killer import Killer

Cli = Callable[..., CliResult]
LANE = "refs/heads/gitops/v03"
STAGE_LANE = "refs/mirror-stage/heads/gitops/v03"


def _consistent(mirror: Repo, upstream: Repo) -> None:
    """Every declared upstream branch and tag is in the mirror, with its stage and snapshot."""
    refs = mirror.refs()
    for ref, oid in upstream.refs("refs/").items():
        if ref == "refs/heads/feature/undeclared":
            continue
        assert refs.get(ref) == oid, ref
        assert refs.get("refs/mirror-stage/" + ref.removeprefix("refs/")) == oid, ref
    snaps = [r for r in refs if r.startswith("refs/unidesk/snapshots/")]
    assert all(refs[r] == r.rsplit("/", 1)[1] for r in snaps)
    for branch in ("main", "release/1.0"):
        tip = refs[f"refs/heads/{branch}"]
        assert any(r.endswith(f"/{branch}/{tip}") for r in snaps), branch
    assert not list(mirror.path.rglob("*.lock")), "a lock file was left"


def _journal(config: Path) -> list[dict[str, object]]:
    runs = config.parent / ".git-mirror" / "state" / "hwlab" / "runs.jsonl"
    return [json.loads(line) for line in runs.read_text(encoding="utf-8").splitlines()]


def test_stale_ref_lock_left_by_a_killed_git_is_removed_and_named(
        cli: Cli, upstream: Repo, synced: Repo, config: Path) -> None:
    """The issue's reproduction: a left-over ``main.lock`` no longer stops every sync."""
    new = upstream.commit("main", "after the kill")
    for name in ("refs/heads/main.lock", "packed-refs.lock",
                 "refs/mirror-stage/heads/release/1.0.lock"):
        (synced.path / name).parent.mkdir(parents=True, exist_ok=True)
        (synced.path / name).write_text("0" * 40 + "\n", encoding="utf-8")
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    data = res.json
    assert sorted(f["file"] for f in data["recovered"]) == [
        "packed-refs.lock", "refs/heads/main.lock", "refs/mirror-stage/heads/release/1.0.lock"]
    assert synced.rev("refs/heads/main") == new
    assert _journal(config)[-1]["recovered"] == sorted(f["file"] for f in data["recovered"])
    _consistent(synced, upstream)
    # Nothing stale: the next run removes nothing.
    again = cli("--json", "sync", "--confirm")
    assert again.code == 0 and again.json["recovered"] == []


def test_lock_files_are_kept_while_a_client_push_is_in_flight(
        cli: Cli, upstream: Repo, synced: Repo, config: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A push through serve holds the shared ref-writers flock: its locks are never removed."""
    from git_mirror.mirror import recovery

    monkeypatch.setattr(recovery, "SWEEP_WAIT", 0.3)
    upstream.commit("main", "pending")
    lock = synced.path / "refs" / "heads" / "main.lock"
    lock.write_text("0" * 40 + "\n", encoding="utf-8")
    state = config.parent / ".git-mirror" / "state" / "hwlab"
    fd = recovery.open_writers(state)
    try:
        assert recovery.try_shared(fd)  # what serve holds while receive-pack runs
        res = cli("--json", "sync", "--confirm")
        assert lock.exists()
        assert res.json["recovered"] == []
        # The transaction failed on the lock: the result claims no ref change.
        assert res.code == 1 and res.json["error"]["code"] == "conflict"
        assert "client push" in res.json["error"]["hint"]
        assert res.json["updated"] == [] and res.json["snapshots"] == []
        assert any("main.lock" in w for w in res.json["repositories"][0]["warnings"])
    finally:
        os.close(fd)
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert [f["file"] for f in res.json["recovered"]] == ["refs/heads/main.lock"]
    _consistent(synced, upstream)


def test_sync_killed_before_and_after_every_git_call_then_sync_succeeds(
        cli: Cli, upstream: Repo, synced: Repo, config: Path, tmp_path: Path) -> None:
    killer = Killer.create(tmp_path)
    upstream.commit("main", "probe")
    killer.reset()
    rc, _, err = killer.run(config, "sync", "--confirm")
    assert rc == 0, err
    calls = len(killer.calls)
    assert calls >= 3, killer.calls
    outcomes = {"killed": 0, "re-run ok": 0}
    for n in range(1, calls + 1):
        for when in ("before", "after"):
            upstream.commit("main", f"{when} {n}")
            upstream.commit(f"release/k{n}{when}", "new branch",
                            parent=upstream.rev("refs/heads/main"))
            killer.reset(f"{when} {n}")
            rc, _, err = killer.run(config, "sync", "--confirm")
            if killer.killed:
                assert rc == -signal.SIGKILL, err
                outcomes["killed"] += 1
            res = cli("--json", "sync", "--confirm")
            assert res.code == 0, (when, n, res.stdout)
            outcomes["re-run ok"] += 1
            _consistent(synced, upstream)
    # Most points are reached (the last "after" may fall past the end of a shorter run).
    assert outcomes["killed"] >= calls, outcomes
    print(f"sync kill points: {2 * calls}, {outcomes}")


def test_sync_killed_while_update_ref_holds_its_locks_then_sync_succeeds(
        cli: Cli, upstream: Repo, synced: Repo, config: Path, tmp_path: Path) -> None:
    killer = Killer.create(tmp_path)
    for i in range(3):
        new = upstream.commit("main", f"aimed {i}")
        upstream.commit("release/1.0", f"aimed {i}")
        killer.reset("update-ref")
        rc, _, err = killer.run(config, "sync", "--confirm")
        assert killer.killed == "update-ref" and rc == -signal.SIGKILL, err
        left = sorted(str(p.relative_to(synced.path)) for p in synced.path.rglob("*.lock"))
        assert "refs/heads/main.lock" in left  # the kill came while git held its locks
        assert synced.rev("refs/heads/main") != new  # nothing committed
        res = cli("--json", "sync", "--confirm")
        assert res.code == 0, res.stdout
        assert sorted(f["file"] for f in res.json["recovered"]) == left
        assert synced.rev("refs/heads/main") == new
        _consistent(synced, upstream)


def test_a_git_left_running_by_a_killed_parent_keeps_the_repository_locked(
        cli: Cli, upstream: Repo, synced: Repo, config: Path, tmp_path: Path) -> None:
    """Only the CLI is killed: what its git calls left running still holds the lock, so no
    sync can remove a lock file such a git may own; once it ends, sync runs."""
    killer = Killer.create(tmp_path)
    killer.reset("linger")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_MIRROR_GIT_BINARY"] = str(killer.dir / "git")
    upstream.commit("main", "while a git lingers")
    proc = subprocess.Popen(
        [sys.executable, "-m", "git_mirror.cli.main", "--config", str(config), "--json", "sync",
         "--confirm"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        start_new_session=True)
    try:
        # Sync's first git call runs under the repository lock and inherits it; the sleep it
        # leaves holds the call's output pipes too, so sync makes no second call while the
        # sleep lasts. The call is logged by the wrapper, which already holds the lock.
        deadline = time.monotonic() + 30
        while not killer.calls and time.monotonic() < deadline:
            time.sleep(0.02)
        assert killer.calls, "sync started no git call within 30 s"
        proc.kill()  # the parent only
        proc.wait(timeout=30)
        res = cli("--json", "sync", "--confirm")
        assert res.code == 1 and res.json["error"]["code"] == "busy", res.stdout
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the lingering children
    lock = config.parent / ".git-mirror" / "state" / "hwlab" / "lock"
    fd = os.open(lock, os.O_RDWR)
    try:
        deadline = time.monotonic() + 30
        while True:  # the flock is free once every child is gone
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the repository lock still held after 30 s"
                time.sleep(0.05)
    finally:
        os.close(fd)
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    _consistent(synced, upstream)


def test_flush_killed_before_and_after_every_git_call_then_flush_succeeds(
        cli: Cli, upstream: Repo, synced: Repo, client: Client, config: Path,
        tmp_path: Path) -> None:
    killer = Killer.create(tmp_path)
    client.lane_commit("probe")
    killer.reset()
    rc, _, err = killer.run(config, "flush", "--confirm")
    assert rc == 0, err
    calls = len(killer.calls)
    assert calls >= 2, killer.calls
    outcomes = {"killed": 0, "re-run ok": 0, "landed before kill": 0}
    for n in range(1, calls + 1):
        for when in ("before", "after"):
            new = client.lane_commit(f"{when} {n}")
            killer.reset(f"{when} {n}")
            rc, _, err = killer.run(config, "flush", "--confirm")
            if killer.killed:
                assert rc == -signal.SIGKILL, err
                outcomes["killed"] += 1
                outcomes["landed before kill"] += upstream.rev(LANE) == new
            res = cli("--json", "flush", "--confirm")
            assert res.code == 0, (when, n, res.stdout)
            data = res.json
            assert data["partialSuccess"] is None, (when, n, data)
            assert data["pendingFlush"] is False and data["githubInSync"] is True
            outcomes["re-run ok"] += 1
            assert upstream.rev(LANE) == new and synced.rev(STAGE_LANE) == new
    assert outcomes["killed"] >= calls, outcomes
    print(f"flush kill points: {2 * calls}, {outcomes}")


def test_flush_killed_in_its_post_push_stage_update_then_flush_succeeds(
        cli: Cli, upstream: Repo, synced: Repo, client: Client, config: Path,
        tmp_path: Path) -> None:
    """The push landed, the kill came while the stage update held its locks: the next flush
    is a plain success, not a partial one, and so is every one after it."""
    killer = Killer.create(tmp_path)
    before = synced.rev(STAGE_LANE)
    new = client.lane_commit("deploy")
    killer.reset("update-ref")
    rc, _, err = killer.run(config, "flush", "--confirm")
    assert killer.killed == "update-ref" and rc == -signal.SIGKILL, err
    assert upstream.rev(LANE) == new  # landed
    assert (synced.path / "refs/mirror-stage/heads/gitops/v03.lock").exists()
    assert synced.rev(STAGE_LANE) == before
    for _ in range(2):
        res = cli("--json", "flush", "--confirm")
        assert res.code == 0, res.stdout
        data = res.json
        assert data["partialSuccess"] is None and data["pushed"] == []
        assert data["pendingFlush"] is False and data["githubInSync"] is True
    assert synced.rev(STAGE_LANE) == new
    assert _journal(config)[-2]["recovered"] == ["refs/mirror-stage/heads/gitops/v03.lock"]


@pytest.mark.parametrize("hook", ["pre-receive", "post-receive"])
def test_flush_killed_while_git_push_runs_then_flush_succeeds(
        cli: Cli, upstream: Repo, synced: Repo, client: Client, config: Path,
        tmp_path: Path, hook: str) -> None:
    killer = Killer.create(tmp_path)
    killer.arm_upstream(upstream.path)
    before = upstream.rev(LANE)
    new = client.lane_commit("deploy")
    killer.reset()
    killer.arm(hook)
    rc, _, err = killer.run(config, "flush", "--confirm")
    assert killer.killed == hook and rc == -signal.SIGKILL, err
    assert upstream.rev(LANE) == (before if hook == "pre-receive" else new)
    res = cli("--json", "flush", "--confirm")
    assert res.code == 0, res.stdout
    data = res.json
    assert data["partialSuccess"] is None
    assert data["pendingFlush"] is False and data["githubInSync"] is True
    # Pushed again only when the first push never landed.
    assert len(data["pushed"]) == (1 if hook == "pre-receive" else 0)
    assert upstream.rev(LANE) == new and synced.rev(LANE) == new
    assert synced.rev(STAGE_LANE) == new


def test_first_sync_killed_at_every_git_call_then_sync_succeeds(
        cli: Cli, upstream: Repo, mirror: Repo, config: Path, tmp_path: Path) -> None:
    """The first sync creates the mirror (init, config, hooks): a kill anywhere in it is
    repaired by the next sync as well."""
    import shutil

    killer = Killer.create(tmp_path)
    killer.reset()
    rc, _, err = killer.run(config, "sync", "--confirm")
    assert rc == 0, err
    calls = len(killer.calls)
    assert calls >= 8, killer.calls
    cache = config.parent / ".git-mirror"
    outcomes = {"killed": 0, "re-run ok": 0}
    # init, the first settings, the last ones, the first reads and the transaction: a sample,
    # the mirror's creation costs a process per setting.
    points = sorted({1, 2, 3, calls // 2, calls - 3, calls - 2, calls - 1, calls})
    for n in points:
        for when in ("before", "after"):
            shutil.rmtree(cache)
            killer.reset(f"{when} {n}")
            rc, _, err = killer.run(config, "sync", "--confirm")
            if killer.killed:
                assert rc == -signal.SIGKILL, err
                outcomes["killed"] += 1
            res = cli("--json", "sync", "--confirm")
            assert res.code == 0, (when, n, killer.calls, res.stdout)
            outcomes["re-run ok"] += 1
            _consistent(mirror, upstream)
            assert [p.name for p in (cache / "repos").iterdir()] == ["hwlab.git"]
    assert outcomes["killed"] >= len(points), outcomes
    print(f"first-sync kill points: {2 * len(points)} of {2 * calls}, {outcomes}")


def test_snapshots_prune_and_apply_also_run_after_a_kill(
        cli: Cli, upstream: Repo, synced: Repo) -> None:
    tip = synced.rev("refs/heads/main")
    lock = synced.path / f"refs/unidesk/snapshots/hwlab-node-runtime/main/{tip}.lock"
    lock.write_text("0" * 40 + "\n", encoding="utf-8")
    (synced.path / "config.lock").write_text("", encoding="utf-8")
    res = cli("--json", "snapshots", "prune", "--confirm")
    assert res.code == 0, res.stdout
    assert sorted(res.json["recovered"]) == sorted(
        ["config.lock", str(lock.relative_to(synced.path))])
    # apply, killed while git config held config.lock, with a setting left to write
    synced.git("config", "--unset", "gc.auto")
    (synced.path / "config.lock").write_text("", encoding="utf-8")
    res = cli("--json", "apply", "--confirm")
    assert res.code == 0, res.stdout
    assert res.json["repositories"][0]["recovered"] == ["config.lock"]
    assert synced.git("config", "gc.auto") == "0"


def test_sync_killed_at_random_instants_then_sync_succeeds(
        cli: Cli, upstream: Repo, synced: Repo, config: Path) -> None:
    """SIGKILL of the whole group after a random delay, many times, each followed by a plain
    sync; each round brings dozens of new branches, so that the kill often lands inside the
    ref transaction."""
    import random

    rng = random.Random(1313)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    base = upstream.rev("refs/heads/main") or ""
    outcomes = {"killed": 0, "finished first": 0, "locks left": 0, "re-run ok": 0}
    for round_ in range(12):
        upstream.git("update-ref", "--stdin", input="".join(
            f"create refs/heads/release/r{round_}-{i} {base}\n" for i in range(60)).encode())
        upstream.commit("main", f"round {round_}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "git_mirror.cli.main", "--config", str(config), "--json",
             "sync", "--confirm"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            start_new_session=True)
        try:
            proc.wait(timeout=rng.uniform(0.2, 1.2))
            outcomes["finished first"] += 1
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            outcomes["killed"] += 1
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            proc.communicate(timeout=30)
        deadline = time.monotonic() + 30
        while True:  # every git of the killed group is gone before the re-run
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        outcomes["locks left"] += bool(list(synced.path.rglob("*.lock")))
        res = cli("--json", "sync", "--confirm")
        assert res.code == 0, (round_, res.stdout)
        outcomes["re-run ok"] += 1
        _consistent(synced, upstream)
    assert outcomes["re-run ok"] == 12
    print(f"random-instant sync kills: {outcomes}")
