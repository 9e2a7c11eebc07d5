"""A full disk ends in the JSON error object (``disk-full``), never a traceback; a flush whose
push landed reports it even when nothing else can be written.

The cache lives on a small tmpfs that the test fills to the last byte: a real ENOSPC from
the kernel, for git and for git-mirror alike. Mounting needs root (CI runs as root); without
it the tests are skipped and say why.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cli import CliResult
from tests.support.clients import Client
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
LANE = "refs/heads/gitops/v03"
STAGE_LANE = "refs/mirror-stage/heads/gitops/v03"


def fill(directory: Path) -> Path:
    """Write ``directory/filler`` until the file system has no byte left."""
    filler = directory / "filler"
    chunk = b"\0" * (64 << 10)
    with open(filler, "ab", buffering=0) as fh:
        for _ in range(100_000):  # bounded: the tmpfs is a few MiB
            try:
                fh.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        for size in (4096, 512, 1):  # the last partial blocks too
            while True:
                try:
                    fh.write(b"\0" * size)
                except OSError:
                    break
    return filler


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """The cache directory (``<config dir>/.git-mirror``) on its own 16 MiB tmpfs."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a full disk needs root (CI runs as root)")
    cache = tmp_path / ".git-mirror"
    cache.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(cache)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield cache
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)


def test_sync_on_a_full_disk_says_disk_full_then_works_once_space_is_back(
        small_disk: Path, cli: Cli, upstream: Repo, synced: Repo) -> None:
    new = upstream.commit("main", "arrives while the disk is full")
    for i in range(50):  # enough new objects that the fetch must write
        upstream.commit("release/1.0", f"payload {i}\n" + "x" * 4096)
    filler = fill(small_disk)
    res = cli("--json", "sync", "--confirm")
    assert res.code == 1, res.stdout
    data = res.json
    assert data["ok"] is False
    assert data["error"]["code"] == "disk-full", data["error"]
    assert "free space" in data["error"]["hint"]
    assert data["updated"] == [] and data["snapshots"] == []
    assert "Traceback" not in res.stderr
    assert synced.rev("refs/heads/main") != new
    status = cli("--json", "status")  # reads only: works on a full disk
    assert status.code == 0, status.stdout
    assert status.json["repositories"][0]["id"] == "hwlab"

    filler.unlink()
    again = cli("--json", "sync", "--confirm")
    assert again.code == 0, again.stdout
    assert synced.rev("refs/heads/main") == new


def test_a_flush_whose_push_landed_reports_it_on_a_full_disk(
        small_disk: Path, cli: Cli, upstream: Repo, synced: Repo, client: Client) -> None:
    """The disk fills while upstream takes the push: the stage update, the recovery sync
    and the journal all fail, and the result still says what was pushed."""
    before = upstream.rev(LANE)
    new = client.lane_commit("deploy on a full disk")
    hook = upstream.path / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\ndd if=/dev/zero of='{small_disk}/filler' "
                    "bs=4k 2>/dev/null\nexit 0\n", encoding="utf-8")
    hook.chmod(0o755)
    res = cli("--json", "flush", "--confirm")
    assert (small_disk / "filler").exists()
    assert res.code == 1, res.stdout
    data = res.json
    assert data["pushed"] == [{"repository": "hwlab", "ref": LANE, "from": before, "to": new}]
    assert data["partialSuccess"] == "push-succeeded-fetch-failed"
    assert data["partialSuccessRecovered"] is False
    assert data["error"]["code"] == "disk-full", data["error"]
    assert "git-mirror sync --confirm --wait" in data["error"]["hint"]
    warnings = data["repositories"][0]["warnings"]
    assert any("journal" in w and "disk-full" in w for w in warnings), warnings
    assert "Traceback" not in res.stderr
    assert upstream.rev(LANE) == new and synced.rev(STAGE_LANE) == before

    hook.unlink()
    (small_disk / "filler").unlink()
    again = cli("--json", "flush", "--confirm")
    assert again.code == 0, again.stdout
    assert again.json["pushed"] == [] and again.json["githubInSync"] is True
    assert synced.rev(STAGE_LANE) == new


def test_apply_of_a_new_repository_on_a_full_disk_says_disk_full(
        small_disk: Path, cli: Cli, config: Path, upstream: Repo, synced: Repo) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(text + f"""\
  second:
    upstream: {upstream.url}
    transport: {{mode: file}}
    sources: [{{branch: main}}]
""", encoding="utf-8")
    filler = fill(small_disk)
    res = cli("--json", "apply", "--confirm")
    assert res.code == 1, res.stdout + res.stderr
    assert res.json["error"]["code"] == "disk-full"
    assert "Traceback" not in res.stderr
    filler.unlink()
    assert cli("--json", "apply", "--confirm").code == 0
