"""closeout: a delivery is proven from the cache, and every missing proof is named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult
from tests.support.clients import Client
from tests.support.follower import FOLLOWER, LANE, Build, follower_config, make_build
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
CHECKS = ["tipContainsMergeCommit", "runSucceeded", "pendingFlush", "githubInSync"]


@pytest.fixture
def build(tmp_path: Path, upstream: Repo) -> Build:
    return make_build(tmp_path, upstream)


@pytest.fixture
def config(write_config: Callable[..., Path], upstream: Repo, build: Build) -> Path:
    return write_config(follower_config(upstream, build.script))


def merge_pr(upstream: Repo, title: str) -> str:
    """A PR branch off main, merged into main with a two-parent merge commit."""
    base = upstream.rev("refs/heads/main")
    assert base
    feature = upstream.commit(None, f"{title}: change", parent=base)
    tree = upstream.git("rev-parse", f"{feature}^{{tree}}")
    merge = upstream.git("commit-tree", tree, "-p", base, "-p", feature, "-m", f"Merge {title}")
    upstream.set_ref("refs/heads/main", merge)
    return merge


def closeout(cli: Cli, merge: str, *extra: str) -> CliResult:
    return cli("--json", "closeout", "--follower", FOLLOWER, "--merge-commit", merge, *extra)


def failed_checks(res: CliResult) -> list[str]:
    return [c["name"] for c in res.json["checks"] if not c["ok"]]


def delivered(cli: Cli, upstream: Repo) -> tuple[str, str]:
    merge = merge_pr(upstream, "PR 1")
    res = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    assert res.code == 0, res.stdout
    return merge, res.json["run"]["name"]


def test_closeout_passes_after_a_good_run(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    merge, run = delivered(cli, upstream)
    for extra in ((), ("--pipeline-run", run)):
        res = closeout(cli, merge, *extra)
        assert res.code == 0, res.stdout
        data = res.json
        assert data["ok"] is True and "error" not in data
        assert data["mergeCommit"] == merge
        assert data["pipelineRun"]["name"] == run and data["pipelineRun"]["status"] == "succeeded"
        assert data["branchTip"] == upstream.rev("refs/heads/main") == mirror.rev("refs/heads/main")
        assert data["tipContainsMergeCommit"] is True
        assert data["pendingFlush"] is False and data["githubInSync"] is True
        assert data["syncRevision"] == mirror.rev(LANE) == upstream.rev(LANE)
        assert [c["name"] for c in data["checks"]] == CHECKS
        assert all(c["ok"] and c["status"] == "pass" for c in data["checks"])
    short = closeout(cli, merge[:10])
    assert short.code == 0 and short.json["mergeCommit"] == merge


def test_closeout_holds_after_later_merges(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    first, _ = delivered(cli, upstream)
    later = merge_pr(upstream, "PR 2")
    res = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    assert res.code == 0, res.stdout
    data = closeout(cli, first).json
    assert data["ok"] is True and data["branchTip"] == later
    assert data["pipelineRun"]["name"] == res.json["run"]["name"]
    assert data["runContainsMergeCommit"] is True


def test_merge_commit_not_in_the_tip_fails(cli: Cli, upstream: Repo) -> None:
    delivered(cli, upstream)
    other = upstream.rev("refs/heads/release/1.0")
    assert other
    res = closeout(cli, other)
    assert res.code == 1, res.stdout
    assert res.json["ok"] is False and res.json["tipContainsMergeCommit"] is False
    assert failed_checks(res) == ["tipContainsMergeCommit"]
    assert res.json["error"]["code"] == "closeout-failed"
    assert "tipContainsMergeCommit" in res.json["error"]["message"]
    assert res.json["error"]["hint"].startswith("git-mirror follower trigger")

    unknown = closeout(cli, "0123456789abcdef0123456789abcdef01234567")
    assert unknown.code == 1 and unknown.json["tipContainsMergeCommit"] is False
    assert failed_checks(unknown) == ["tipContainsMergeCommit"]


def test_a_merge_the_cache_has_not_seen_fails_until_synced(cli: Cli, upstream: Repo) -> None:
    delivered(cli, upstream)
    newer = merge_pr(upstream, "PR 2")  # upstream has it; the cache does not (no network)
    res = closeout(cli, newer)
    assert res.code == 1 and failed_checks(res) == ["tipContainsMergeCommit"]


def test_a_failed_run_fails_closeout(cli: Cli, upstream: Repo, build: Build) -> None:
    merge = merge_pr(upstream, "PR 1")
    build.mode("fail")
    run = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    assert run.code == 1
    name = run.json["run"]["name"]
    res = closeout(cli, merge)
    assert res.code == 1, res.stdout
    assert res.json["pipelineRun"]["name"] == name
    assert res.json["pipelineRun"]["status"] == "failed"
    assert failed_checks(res) == ["runSucceeded"]
    assert f"cleanup-runs --pipeline-run {name} --confirm" in res.json["error"]["hint"]

    # an older good run named explicitly still proves its own delivery
    build.mode("ok")
    good = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    assert closeout(cli, merge).code == 0
    assert closeout(cli, merge, "--pipeline-run", name).code == 1
    assert closeout(cli, merge, "--pipeline-run", good.json["run"]["name"]).code == 0


def test_no_run_or_an_unknown_run_fails_closeout(cli: Cli, upstream: Repo) -> None:
    assert cli("--json", "sync", "--confirm").code == 0
    tip = upstream.rev("refs/heads/main") or ""
    res = closeout(cli, tip)
    assert res.code == 1 and failed_checks(res) == ["runSucceeded"]
    assert res.json["pipelineRun"]["status"] is None
    named = closeout(cli, tip, "--pipeline-run", "hwlab-runtime-20260101T000000Z-0000000")
    assert named.code == 1 and failed_checks(named) == ["runSucceeded"]


def test_a_lane_commit_pending_flush_fails_closeout_until_flushed(
        cli: Cli, upstream: Repo, mirror: Repo, tmp_path: Path) -> None:
    merge, _ = delivered(cli, upstream)
    pending = Client(mirror.path, tmp_path / "ci-client").lane_commit("hotfix deploy")
    res = closeout(cli, merge)
    assert res.code == 1, res.stdout
    assert res.json["pendingFlush"] is True and res.json["githubInSync"] is False
    assert failed_checks(res) == ["pendingFlush", "githubInSync"]
    assert res.json["error"]["hint"] == "git-mirror flush --repo hwlab --confirm --wait"
    assert res.json["syncRevision"] == pending

    assert cli("--json", "flush", "--confirm", "--wait").code == 0
    res = closeout(cli, merge)
    assert res.code == 0, res.stdout
    assert res.json["syncRevision"] == pending == upstream.rev(LANE)


def test_closeout_usage_errors(cli: Cli) -> None:
    res = closeout(cli, "not-a-sha")
    assert res.code == 2 and res.json["error"]["code"] == "usage"
    text = cli("closeout", "--follower", FOLLOWER, "--merge-commit", "abcdef12")
    assert text.code == 1 and "FAIL" in text.stdout and "hint:" in text.stderr
