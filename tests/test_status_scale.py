"""status of many repositories: one for-each-ref per repository, snapshots still checked."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.cli import CliResult
from tests.support.gitutil import Repo


def test_status_reads_refs_once_per_repository_and_still_sees_a_missing_snapshot(
        cli: Callable[..., CliResult], synced: Repo, upstream: Repo,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[list[str]] = []
    real_run = subprocess.run

    def run(argv: Any, *args: Any, **kwargs: Any) -> Any:
        if "for-each-ref" in argv:
            reads.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    res = cli("--json", "status")
    monkeypatch.setattr(subprocess, "run", real_run)
    assert res.code == 0, res.stdout
    # One read of every ref per repository, for the entry (heads, stage heads, the declared
    # sources' snapshots) and the integrity check alike.
    assert len(reads) == len(res.json["repositories"]) == 1, reads
    assert reads[0][-2:] == ["--", "refs/"], reads
    assert res.json["repositories"][0]["integrity"]["ok"] is True
    main = next(s for s in res.json["repositories"][0]["sources"] if s["branch"] == "main")
    tip = upstream.rev("refs/heads/main")
    assert main["snapshotRef"] == f"refs/unidesk/snapshots/hwlab-node-runtime/main/{tip}"
    release = next(s for s in res.json["repositories"][0]["sources"]
                   if s["branch"] == "release/1.0")
    assert release["snapshotRef"] is not None
    # A snapshot that is not there is reported as such, not assumed from its name.
    synced.git("update-ref", "-d", main["snapshotRef"])
    again = cli("--json", "status")
    main = next(s for s in again.json["repositories"][0]["sources"] if s["branch"] == "main")
    assert main["snapshotRef"] is None
