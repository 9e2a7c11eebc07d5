"""Followers and closeout against the contract's JSON shapes, dry runs and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CliResult
from tests.support.follower import FOLLOWER, LANE, SNAP_PREFIX, Build
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]



def one_object(res: CliResult) -> dict[str, object]:
    data = json.loads(res.stdout)          # exactly one JSON value, nothing around it
    assert isinstance(data, dict)
    return data


def test_trigger_and_closeout_json_have_the_contract_fields(
        cli: Cli, upstream: Repo, mirror: Repo, build: Build) -> None:
    tip = upstream.rev("refs/heads/main")
    res = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    data = one_object(res)
    assert res.code == 0 and data["ok"] is True, res.stdout
    run = data["run"]
    assert isinstance(run, dict) and {"name", "status"} <= set(run) and run["status"] == "succeeded"
    assert data["snapshotRef"] == SNAP_PREFIX + str(tip) and data["commit"] == tip
    merge = str(tip)
    close = cli("--json", "closeout", "--follower", FOLLOWER, "--merge-commit", merge)
    out = one_object(close)
    assert close.code == 0 and out["ok"] is True, close.stdout
    for key in ("mergeCommit", "pipelineRun", "syncRevision", "branchTip", "tipContainsMergeCommit",
                "runContainsMergeCommit", "deployedContainsRun", "pendingFlush", "githubInSync",
                "checks", "ok"):
        assert key in out, key
    assert out["pipelineRun"] == {**out["pipelineRun"],  # type: ignore[dict-item]
                                  "name": run["name"], "status": "succeeded", "commit": tip}
    assert out["syncRevision"] == upstream.rev(LANE)
    checks = out["checks"]
    assert isinstance(checks, list)
    assert [c["name"] for c in checks] == ["tipContainsMergeCommit", "runSucceeded",
                                           "runContainsMergeCommit", "deployedContainsRun",
                                           "pendingFlush", "githubInSync"]
    assert all({"name", "ok", "message"} <= set(c) and c["ok"] is True for c in checks)


def test_a_failed_closeout_exits_1_with_the_error_object(cli: Cli, upstream: Repo,
                                                         mirror: Repo, build: Build) -> None:
    assert cli("--json", "sync", "--confirm").code == 0
    merge = str(upstream.rev("refs/heads/main"))       # no run built it
    res = cli("--json", "closeout", "--follower", FOLLOWER, "--merge-commit", merge)
    data = one_object(res)
    assert res.code == 1 and data["ok"] is False
    err = data["error"]
    assert isinstance(err, dict) and err["code"] == "closeout-failed"
    assert err["message"] and str(err["hint"]).startswith("git-mirror follower trigger")
    checks = data["checks"]
    assert isinstance(checks, list)
    failed = [c["name"] for c in checks if not c["ok"]]
    assert "runContainsMergeCommit" in failed


def test_follower_dry_runs_change_nothing(cli: Cli, upstream: Repo, mirror: Repo, build: Build,
                                          config: Path) -> None:
    assert cli("--json", "sync", "--confirm").code == 0
    first = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    assert first.code == 0, first.stdout
    name = one_object(first)["run"]["name"]  # type: ignore[index]
    state = config.parent / ".git-mirror" / "state" / "followers" / FOLLOWER
    files = sorted(str(p) for p in state.rglob("*"))
    refs = mirror.refs(), upstream.refs()
    upstream.commit("main", "more work")
    for args in (["follower", "trigger", "--follower", FOLLOWER],
                 ["follower", "trigger", "--follower", FOLLOWER, "--dry-run", "--wait"],
                 ["follower", "cleanup-state", "--follower", FOLLOWER],
                 ["cleanup-runs", "--pipeline-run", str(name)]):
        res = cli("--json", *args)
        data = one_object(res)
        assert res.code == 0 and data["dryRun"] is True, (args, res.stdout)
        assert (mirror.refs(), upstream.refs()[LANE]) == (refs[0], refs[1][LANE]), args
        assert sorted(str(p) for p in state.rglob("*")) == files, args
    assert build.ran() == [name]
