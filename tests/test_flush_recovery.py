"""R15: the push landed but the recheck failed; and a flush killed between push and recheck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CliResult
from tests.support.clients import LANE, Client
from tests.support.faults import inject
from tests.support.gitutil import Repo

STAGE_LANE = "refs/mirror-stage/heads/gitops/v03"
Cli = Callable[..., CliResult]




def test_failed_recheck_is_recovered_by_one_sync(cli: Cli, upstream: Repo, synced: Repo,
                                                 client: Client, tmp_path: Path) -> None:
    before = upstream.rev(LANE)
    new = client.lane_commit("deploy v2")
    fault = inject(tmp_path, upstream, synced, fail=1)

    res = cli("--json", "flush", "--confirm")
    assert res.code == 0, res.stdout
    data = res.json
    assert fault.failures == 1  # the recheck really failed once
    assert data["ok"] is True
    assert data["partialSuccess"] == "push-succeeded-fetch-failed"
    assert data["partialSuccessRecovered"] is True
    rec = data["postPushRecovery"]
    assert rec["action"] == "sync" and rec["ok"] is True
    assert data["pushed"] == [{"repository": "hwlab", "ref": LANE, "from": before, "to": new}]
    assert data["pendingFlush"] is False and data["githubInSync"] is True
    assert upstream.rev(LANE) == new
    assert synced.rev(STAGE_LANE) == new
    assert len(fault.pushes) == 1


def test_unrecovered_recheck_fails_with_the_sync_hint(cli: Cli, upstream: Repo, synced: Repo,
                                                      client: Client, tmp_path: Path) -> None:
    before = upstream.rev(LANE)
    new = client.lane_commit("deploy v2")
    fault = inject(tmp_path, upstream, synced, fail=1000)

    res = cli("--json", "flush", "--confirm")
    assert res.code == 1, res.stdout
    data = res.json
    assert fault.failures >= 2  # the recheck and the recovery sync both failed
    assert data["ok"] is False
    assert data["partialSuccess"] == "push-succeeded-fetch-failed"
    assert data["partialSuccessRecovered"] is False
    assert data["postPushRecovery"]["action"] == "sync"
    assert data["postPushRecovery"]["ok"] is False
    assert data["error"]["code"]
    assert data["error"]["hint"] == "git-mirror sync --confirm --wait"
    # The push itself landed and is told; nothing is lost locally.
    assert data["pushed"] == [{"repository": "hwlab", "ref": LANE, "from": before, "to": new}]
    assert upstream.rev(LANE) == new
    assert synced.rev(LANE) == new
    assert synced.rev(STAGE_LANE) == before
    assert data["githubInSync"] is False

    fault.remove()
    sync = cli("--json", "sync", "--confirm", "--wait")
    assert sync.code == 0, sync.stdout
    st = cli("--json", "status").json
    assert st["githubInSync"] is True and st["pendingFlush"] is False
    assert synced.rev(STAGE_LANE) == new


def test_killed_flush_then_flush_again_ends_in_sync(config: Path, cli: Cli, upstream: Repo,
                                                   synced: Repo, client: Client,
                                                   tmp_path: Path) -> None:
    before = upstream.rev(LANE)
    new = client.lane_commit("deploy v2")
    fault = inject(tmp_path, upstream, synced, block=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "git_mirror.cli.main", "--config", str(config), "--json",
         "flush", "--confirm"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not fault.blocked() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fault.blocked(), proc.communicate(timeout=5)
        # The push is done (upstream moved), the recheck hangs: kill the whole flush.
        assert upstream.rev(LANE) == new
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert synced.rev(STAGE_LANE) == before  # the recheck never ran
    assert cli("--json", "status").json["pendingFlush"] is True

    fault.remove()
    res = cli("--json", "flush", "--confirm", "--wait")
    assert res.code == 0, res.stdout
    assert res.json["pushed"] == []  # nothing pushed twice
    assert res.json["pendingFlush"] is False and res.json["githubInSync"] is True
    assert len(fault.pushes) == 1
    assert upstream.rev(LANE) == new  # nothing lost
    assert synced.rev(LANE) == new
    assert synced.rev(STAGE_LANE) == new
