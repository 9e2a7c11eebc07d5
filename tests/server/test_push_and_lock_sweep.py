"""Client pushes through serve and the stale-lock sweep of sync/flush never meet on a lock:
a push holds the shared ref-writers flock (its receive-pack inherits it), the sweep takes it
exclusively for a moment."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from git_mirror.git import run as gitrun
from git_mirror.mirror import recovery
from git_mirror.server import smart_http
from tests.support.cli import run_cli
from tests.support.gitutil import Repo, run_git
from tests.support.server import (
    CI_TOKEN,
    Served,
    prepare_mirror,
    serve_in_thread,
    wait_for,
    write_server_config,
)

SLOW_RECEIVE = """#!/bin/sh
d='{dir}'
case " $* " in
  *" receive-pack "*" --advertise-refs "*) ;;
  *" receive-pack "*)
    touch "$d/in-flight"
    i=0
    while [ ! -e "$d/release" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done ;;
esac
exec {git} "$@"
"""


@pytest.fixture
def slow_served(tmp_path: Path, upstream: Repo,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """serve whose receive-pack waits (holding what it inherited) until the test releases it."""
    d = tmp_path / "slow"
    d.mkdir()
    wrapper = d / "git"
    wrapper.write_text(SLOW_RECEIVE.format(dir=d, git=shutil.which("git")), encoding="utf-8")
    wrapper.chmod(0o755)
    config = write_server_config(tmp_path / "srv", upstream.url)
    prepare_mirror(config)
    monkeypatch.setattr(gitrun, "GIT", str(wrapper))
    with serve_in_thread(config) as s:
        wait_for(lambda: s.client().get("/readyz").status_code == 200)
        yield s
    (d / "release").touch()


def _lane_commit(tmp_path: Path, served: Served) -> Path:
    work = tmp_path / "work"
    run_git("clone", "-q", "--branch", "gitops/v03", served.repo_url(), str(work))
    (work / "deploy.yaml").write_text("image: new\n")
    run_git("add", "deploy.yaml", cwd=work)
    run_git("commit", "-qm", "deploy", cwd=work)
    return work


def _push(work: Path, served: Served) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.Popen(["git", "push", "-q", served.repo_url(auth=f"ci:{CI_TOKEN}"),
                             "HEAD:refs/heads/gitops/v03"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_lock_file_is_kept_while_a_push_is_in_flight(
        tmp_path: Path, slow_served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery, "SWEEP_WAIT", 0.3)
    config = Path(slow_served.runtime.cfg.path)
    mirror = slow_served.mirror()
    work = _lane_commit(tmp_path, slow_served)
    push = _push(work, slow_served)
    try:
        wait_for(lambda: (tmp_path / "slow" / "in-flight").exists(), timeout=60)
        lock = mirror.path / "refs" / "heads" / "main.lock"
        lock.write_text("0" * 40 + "\n")
        res = run_cli("--config", config, "--json", "sync", "--confirm", "--wait")
        assert lock.exists(), "a lock file was removed while a receive-pack was alive"
        assert res.json["recovered"] == []
        assert any("in flight" in w for w in res.json["repositories"][0]["warnings"])
    finally:
        (tmp_path / "slow" / "release").touch()
        _, err = push.communicate(timeout=120)
    assert push.returncode == 0, err
    tip = run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
    assert mirror.rev("refs/heads/gitops/v03") == tip
    # Once the push is over, the stale file goes (the flush after the push may be first).
    res = run_cli("--config", config, "--json", "sync", "--confirm", "--wait")
    assert res.code == 0, res.stdout
    assert not lock.exists()


def test_a_push_waits_while_the_sweep_holds_the_lock_and_is_told_to_retry(
        tmp_path: Path, slow_served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smart_http, "PUSH_LOCK_WAIT", 0.5)
    (tmp_path / "slow" / "release").touch()  # receive-pack runs at once here
    work = _lane_commit(tmp_path, slow_served)
    state = Path(slow_served.runtime.cfg.cache_dir) / "state" / "hwlab"
    fd = recovery.open_writers(state)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a sweep holds for a moment
        push = _push(work, slow_served)
        _, err = push.communicate(timeout=120)
        assert push.returncode != 0
        assert b"503" in err or b"paused" in err, err
    finally:
        os.close(fd)
    push = _push(work, slow_served)
    _, err = push.communicate(timeout=120)
    assert push.returncode == 0, err


KILLED_RECEIVE = """#!/bin/sh
d='{dir}'
case " $* " in
  *" receive-pack "*" --advertise-refs "*) ;;
  *" receive-pack "*)
    if [ ! -e "$d/done" ]; then
      touch "$d/done"
      exec {git} -c core.hooksPath="$d/hooks" "$@"
    fi ;;
esac
exec {git} "$@"
"""

KILL_SELF_HOOK = """#!/bin/sh
if [ "$1" = prepared ]; then
  touch '{dir}/killed'
  kill -9 $PPID
fi
cat >/dev/null
"""


def test_a_receive_pack_killed_while_it_holds_the_lane_lock_is_recovered_by_the_next_sync(
        tmp_path: Path, upstream: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    """receive-pack dies (SIGKILL) between locking the lane and committing: the push fails,
    the lane's lock file stays; the next sync removes it and pushes work again."""
    d = tmp_path / "kill"
    (d / "hooks").mkdir(parents=True)
    wrapper = d / "git"
    wrapper.write_text(KILLED_RECEIVE.format(dir=d, git=shutil.which("git")), encoding="utf-8")
    wrapper.chmod(0o755)
    hook = d / "hooks" / "reference-transaction"
    hook.write_text(KILL_SELF_HOOK.format(dir=d), encoding="utf-8")
    hook.chmod(0o755)
    config = write_server_config(tmp_path / "srv", upstream.url)
    prepare_mirror(config)
    monkeypatch.setattr(gitrun, "GIT", str(wrapper))
    with serve_in_thread(config) as served:
        wait_for(lambda: served.client().get("/readyz").status_code == 200)
        mirror = served.mirror()
        before = mirror.rev("refs/heads/gitops/v03")
        work = _lane_commit(tmp_path, served)
        _, err = _push(work, served).communicate(timeout=120)
        assert (d / "killed").exists(), err
        lock = mirror.path / "refs" / "heads" / "gitops" / "v03.lock"
        assert lock.exists() and mirror.rev("refs/heads/gitops/v03") == before
        again = _push(work, served)
        _, err = again.communicate(timeout=120)
        assert again.returncode != 0  # the stale lock blocks the lane until a sweep
        res = run_cli("--config", config, "--json", "sync", "--confirm", "--wait")
        assert res.code == 0, res.stdout
        assert [f["file"] for f in res.json["recovered"]] == ["refs/heads/gitops/v03.lock"]
        last = _push(work, served)
        _, err = last.communicate(timeout=120)
        assert last.returncode == 0, err
        tip = run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
        assert mirror.rev("refs/heads/gitops/v03") == tip


class _Unflushed:
    """A flush that does nothing (and says so)."""

    ok = True

    def to_json(self) -> dict[str, object]:
        return {"ok": True, "pushed": []}


def test_pushes_and_sweeping_syncs_at_once_never_break_a_push(
        tmp_path: Path, upstream: Repo) -> None:
    """Lane pushes through serve, one after another, while separate sync processes sweep a
    stale lock file again and again: every push lands, every sync succeeds."""
    import threading

    config = write_server_config(tmp_path / "srv", upstream.url)
    prepare_mirror(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    # serve's own flush after each push sweeps lock files too, and in-process it wins the
    # race against a sync process every time: the syncs would have nothing left to sweep.
    # Its flush stands still here, so that the syncs are the sweepers this test is about.
    with serve_in_thread(config, flush_op=lambda cfg, **kw: _Unflushed()) as served:
        wait_for(lambda: served.client().get("/readyz").status_code == 200)
        mirror = served.mirror()
        work = _lane_commit(tmp_path, served)
        stop = threading.Event()
        syncs: list[tuple[int, str]] = []

        def sweep() -> None:
            for _ in range(40):  # bounded in count, and by the pushes' end
                if stop.is_set():
                    return
                (mirror.path / "refs" / "heads" / "main.lock").write_text("0" * 40 + "\n")
                proc = subprocess.run(
                    [sys.executable, "-m", "git_mirror.cli.main", "--config", str(config),
                     "--json", "sync", "--confirm", "--wait"],
                    capture_output=True, text=True, env=env, timeout=120)
                syncs.append((proc.returncode, proc.stdout))

        sweeper = threading.Thread(target=sweep)
        sweeper.start()
        pushed = []
        try:
            for i in range(12):
                (work / "deploy.yaml").write_text(f"image: {i}\n")
                run_git("commit", "-qam", f"deploy {i}", cwd=work)
                proc = _push(work, served)
                _, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
                pushed.append(run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip())
                assert mirror.rev("refs/heads/gitops/v03") == pushed[-1]
        finally:
            stop.set()
            sweeper.join(timeout=300)
    assert syncs and all(code == 0 for code, _ in syncs), syncs
    removed = sum(len(json.loads(out)["recovered"]) for _, out in syncs)
    assert removed >= 1
    print(f"pushes: {len(pushed)} landed; syncs: {len(syncs)} ok, {removed} stale lock(s) removed")
