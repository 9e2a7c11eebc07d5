"""closeout: a delivery is proven from the cache, and every missing proof is named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CliResult
from tests.support.clients import Client
from tests.support.follower import FOLLOWER, LANE, Build
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
CHECKS = ["tipContainsMergeCommit", "runSucceeded", "runContainsMergeCommit", "deployedContainsRun",
          "pendingFlush", "githubInSync"]



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
    assert failed_checks(res) == ["tipContainsMergeCommit", "runContainsMergeCommit"]
    assert res.json["error"]["code"] == "closeout-failed"
    assert "tipContainsMergeCommit" in res.json["error"]["message"]
    assert res.json["error"]["hint"].startswith("git-mirror follower trigger")

    unknown = closeout(cli, "0123456789abcdef0123456789abcdef01234567")
    assert unknown.code == 1 and unknown.json["tipContainsMergeCommit"] is False
    assert failed_checks(unknown) == ["tipContainsMergeCommit", "runContainsMergeCommit"]
    # a commit the mirror does not know: fetch first, a trigger would not help
    assert unknown.json["error"]["hint"] == "git-mirror sync --repo hwlab --confirm --wait"
    assert "does not know" in unknown.json["error"]["message"]


def test_a_merge_the_cache_has_not_seen_fails_until_synced(cli: Cli, upstream: Repo) -> None:
    delivered(cli, upstream)
    newer = merge_pr(upstream, "PR 2")  # upstream has it; the cache does not (no network)
    res = closeout(cli, newer)
    assert res.code == 1
    assert failed_checks(res) == ["tipContainsMergeCommit", "runContainsMergeCommit"]
    assert res.json["error"]["hint"] == "git-mirror sync --repo hwlab --confirm --wait"


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
    assert failed_checks(res) == ["runSucceeded", "deployedContainsRun"]
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
    no_run = ["runSucceeded", "runContainsMergeCommit", "deployedContainsRun"]
    assert res.code == 1 and failed_checks(res) == no_run
    assert res.json["pipelineRun"]["status"] is None
    assert res.json["error"]["hint"] == ("git-mirror follower trigger --follower hwlab-runtime "
                                         "--confirm --wait")
    named = closeout(cli, tip, "--pipeline-run", "hwlab-runtime-20260101T000000Z-0000000")
    assert named.code == 1 and failed_checks(named) == no_run


def test_a_lane_commit_pending_flush_fails_closeout_until_flushed(
        cli: Cli, upstream: Repo, mirror: Repo, tmp_path: Path) -> None:
    merge, _ = delivered(cli, upstream)
    pending = Client(mirror.path, tmp_path / "ci-client").lane_commit("hotfix deploy")
    res = closeout(cli, merge)
    assert res.code == 1, res.stdout
    assert res.json["pendingFlush"] is True and res.json["githubInSync"] is False
    assert failed_checks(res) == ["pendingFlush", "githubInSync"]
    assert res.json["error"]["hint"] == "git-mirror flush --repo hwlab --confirm --wait"
    # the deployed revision is what upstream holds (as last observed), not the mirror's lane
    assert res.json["syncRevision"] == upstream.rev(LANE) != pending

    assert cli("--json", "flush", "--confirm", "--wait").code == 0
    res = closeout(cli, merge)
    assert res.code == 0, res.stdout
    assert res.json["syncRevision"] == pending == upstream.rev(LANE)


def test_closeout_usage_errors(cli: Cli) -> None:
    res = closeout(cli, "not-a-sha")
    assert res.code == 2 and res.json["error"]["code"] == "usage"
    text = cli("closeout", "--follower", FOLLOWER, "--merge-commit", "abcdef12")
    assert text.code == 1 and "FAIL" in text.stdout and "hint:" in text.stderr


def trigger(cli: Cli) -> CliResult:
    res = cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm", "--wait")
    assert res.code == 0, res.stdout
    return res


def test_a_merge_no_run_built_never_closes_out(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    """PR #1 merges and a run builds it; PR #2 merges and the mirror syncs it, but no run
    builds it: closeout of PR #2 fails, though the latest run succeeded and the tip has PR #2."""
    pr1, run1 = delivered(cli, upstream)
    pr2 = merge_pr(upstream, "PR 2")
    assert cli("--json", "sync", "--confirm", "--wait").code == 0
    res = closeout(cli, pr2)
    assert res.code == 1, res.stdout
    data = res.json
    assert data["ok"] is False and data["runContainsMergeCommit"] is False
    assert data["tipContainsMergeCommit"] is True
    assert data["pipelineRun"]["name"] == run1 and data["pipelineRun"]["status"] == "succeeded"
    assert failed_checks(res) == ["runContainsMergeCommit"]
    assert data["error"]["hint"] == (f"git-mirror follower trigger --follower {FOLLOWER} "
                                     "--confirm --wait")
    # naming the run that built the older commit does not prove the newer merge either
    named = closeout(cli, pr2, "--pipeline-run", run1)
    assert named.code == 1 and failed_checks(named) == ["runContainsMergeCommit"]
    assert closeout(cli, pr1, "--pipeline-run", run1).code == 0

    run2 = trigger(cli).json["run"]["name"]
    proved = closeout(cli, pr2)
    assert proved.code == 0, proved.stdout
    assert proved.json["pipelineRun"]["name"] == run2
    assert proved.json["pipelineRun"]["commit"] == mirror.rev("refs/heads/main")
    # a later run whose commit contains the earlier merge proves it ("the lane moved on")
    earlier = closeout(cli, pr1)
    assert earlier.code == 0 and earlier.json["pipelineRun"]["name"] == run2
    assert earlier.json["deployedContainsRun"] is True


def test_deployed_revision_must_contain_the_runs_lane_commit(
        cli: Cli, upstream: Repo, mirror: Repo, config: Path) -> None:
    merge, run = delivered(cli, upstream)
    record = json.loads((config.parent / ".git-mirror" / "state" / "followers" / FOLLOWER / "runs"
                         / f"{run}.json").read_text(encoding="utf-8"))
    published = record["publishedLaneCommit"]
    assert published and published == upstream.rev(LANE) == mirror.rev(LANE)
    assert record["laneTipBefore"] != published
    ok = closeout(cli, merge).json
    assert ok["pipelineRun"]["publishedLaneCommit"] == published
    assert ok["syncRevision"] == published and ok["deployedContainsRun"] is True

    # upstream's lane is rewound behind the run's commit (someone force-pushed): after a
    # sync the deployed revision no longer contains what the run published
    parent = upstream.git("rev-parse", f"{published}^")
    upstream.set_ref(LANE, parent)
    assert cli("--json", "sync", "--confirm", "--wait").code == 0
    assert mirror.rev("refs/mirror-stage/heads/gitops/v03") == parent
    res = closeout(cli, merge)
    assert res.code == 1, res.stdout
    assert res.json["deployedContainsRun"] is False
    assert "deployedContainsRun" in failed_checks(res)
    assert "does not contain" in next(c["message"] for c in res.json["checks"]
                                      if c["name"] == "deployedContainsRun")


def test_the_ledger_keeps_every_closeout_and_survives_cleanup_state(
        cli: Cli, upstream: Repo, config: Path) -> None:
    merge, run = delivered(cli, upstream)
    assert closeout(cli, merge).code == 0
    assert closeout(cli, "0123456789abcdef0123456789abcdef01234567").code == 1
    hist = cli("--json", "closeout", "--follower", FOLLOWER, "--history")
    assert hist.code == 0, hist.stdout
    entries = hist.json["closeouts"]
    assert [e["ok"] for e in entries] == [True, False]
    first = entries[0]
    assert first["mergeCommit"] == merge and first["pipelineRun"]["name"] == run
    assert first["pipelineRun"]["commit"] and first["pipelineRun"]["publishedLaneCommit"]
    assert first["syncRevision"] == upstream.rev(LANE) and first["at"].endswith("Z")
    assert first["checks"] == dict.fromkeys(CHECKS, True)
    assert entries[1]["failedChecks"] == ["tipContainsMergeCommit", "runContainsMergeCommit"]

    cleaned = cli("--json", "follower", "cleanup-state", "--follower", FOLLOWER, "--confirm")
    assert cleaned.code == 0 and cleaned.json["removed"]
    assert cli("--json", "follower", "status", "--follower", FOLLOWER).json["run"] is None
    after = cli("--json", "closeout", "--follower", FOLLOWER, "--history", "--merge-commit",
                merge[:10])
    assert [e["pipelineRun"]["name"] for e in after.json["closeouts"]] == [run]
    # the delivery is still proven: the ledger is the run's evidence, the rest is checked anew
    again = closeout(cli, merge)
    assert again.code == 0, again.stdout
    assert again.json["pipelineRun"]["name"] == run
    assert again.json["pipelineRun"]["evidence"].startswith("ledger")
    text = cli("closeout", "--follower", FOLLOWER, "--history")
    assert text.code == 0 and merge[:7] in text.stdout


def test_closeout_without_merge_commit_or_history_is_a_usage_error(cli: Cli) -> None:
    res = cli("--json", "closeout", "--follower", FOLLOWER)
    assert res.code == 2 and res.json["error"]["code"] == "usage"
    assert "--merge-commit" in res.json["error"]["message"]
