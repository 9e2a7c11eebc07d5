"""Progress over the declared SSH transport, through the CONNECT proxy: git's progress of a
real ssh fetch and push is relayed, and no helper (the ssh ControlMaster that outlives the
fetch) keeps the relay waiting."""

from __future__ import annotations

import io
import threading

from git_mirror.config import load_config
from git_mirror.git import progress
from git_mirror.mirror.flush import flush
from git_mirror.mirror.sync import sync
from tests.support.gitutil import Repo
from tests.transport.conftest import SshSetup


def relays() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "git-stderr"]


def test_sync_and_flush_over_ssh_relay_gits_progress(ssh_setup: SshSetup, upstream: Repo) -> None:
    cfg = load_config(ssh_setup.config)
    seen = io.StringIO()
    with progress.reporting(progress.TerminalProgress(seen)):
        synced = sync(cfg, confirm=True, wait=True)
    assert synced.ok, synced.to_json()
    text = seen.getvalue()
    assert "hwlab: remote: Enumerating objects" in text
    assert "hwlab: synced in " in text
    assert relays() == []   # every relay ended with its git, not at its time-out

    mirror = Repo.at(ssh_setup.config.parent / ".git-mirror" / "repos" / "hwlab.git")
    lane = mirror.commit("gitops/v03", "deploy")
    seen = io.StringIO()
    with progress.reporting(progress.TerminalProgress(seen)):
        flushed = flush(cfg, confirm=True, wait=True)
    assert flushed.ok, flushed.to_json()
    assert "hwlab: Writing objects: 100%" in seen.getvalue()
    assert "hwlab: flushed in " in seen.getvalue()
    assert upstream.rev("refs/heads/gitops/v03") == lane
    assert relays() == []

