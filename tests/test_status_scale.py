"""status of many repositories: one git process per repository, snapshots still checked."""

from __future__ import annotations

from collections.abc import Callable

from git_mirror.git import run as gitrun
from tests.support.cli import CliResult
from tests.support.gitutil import Repo


def test_status_is_one_git_process_per_repository_and_still_sees_a_missing_snapshot(
        cli: Callable[..., CliResult], synced: Repo, upstream: Repo) -> None:
    before = gitrun.spawned()
    res = cli("--json", "status")
    assert res.code == 0, res.stdout
    assert gitrun.spawned() - before == 1
    main = next(s for s in res.json["repositories"][0]["sources"] if s["branch"] == "main")
    tip = upstream.rev("refs/heads/main")
    assert main["snapshotRef"] == f"refs/unidesk/snapshots/hwlab-node-runtime/main/{tip}"
    release = next(s for s in res.json["repositories"][0]["sources"] if s["branch"] == "release/1.0")
    assert release["snapshotRef"] is not None
    # A snapshot that is not there is reported as such, not assumed from its name.
    synced.git("update-ref", "-d", main["snapshotRef"])
    again = cli("--json", "status")
    main = next(s for s in again.json["repositories"][0]["sources"] if s["branch"] == "main")
    assert main["snapshotRef"] is None
