"""The typed results a kubernetes node reads back from a Job's JSON say what the local node
says: the closeout object and the ledger history survive the round trip whole, in order,
and a flush Job's summary has the local summary's fields plus its Job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from git_mirror.follower.results import (
    CloseoutHistory,
    CloseoutResult,
    FlushSummary,
    SyncSummary,
)
from tests.support.cli import CliResult
from tests.support.follower import FOLLOWER
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
JOB = {"name": "git-mirror-d601-flush-x", "namespace": "ns", "context": None,
       "status": "succeeded"}


def _as_a_job_said_it(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as run_job returns it: the Job's result with what the runner adds."""
    return {**data, "job": JOB, "executor": "kubernetes", "configApplied": True}


def test_a_closeout_read_back_from_a_job_is_the_same_object(cli: Cli, upstream: Repo,
                                                            mirror: Repo) -> None:
    assert cli("--json", "sync", "--confirm", "--wait").code == 0
    assert cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm",
               "--wait").code == 0
    merge = str(upstream.rev("refs/heads/main"))
    for expect_ok in (True, False):
        commit = merge if expect_ok else "0" * 40  # a commit the mirror does not know
        res = cli("--json", "closeout", "--follower", FOLLOWER, "--merge-commit", commit)
        assert res.code == (0 if expect_ok else 1), res.stdout
        said = _as_a_job_said_it(res.json)
        back = CloseoutResult.from_json(said)
        assert back.ok is expect_ok
        assert back.details == {"job": JOB, "executor": "kubernetes", "configApplied": True}
        assert list(back.to_json().items()) == list(said.items())


def test_the_closeout_history_read_back_from_a_job_is_the_same_object(
        cli: Cli, upstream: Repo, mirror: Repo) -> None:
    assert cli("--json", "sync", "--confirm", "--wait").code == 0
    merge = str(upstream.rev("refs/heads/main"))
    assert cli("--json", "closeout", "--follower", FOLLOWER, "--merge-commit", merge).code == 1
    res = cli("--json", "closeout", "--follower", FOLLOWER, "--history")
    assert res.code == 0, res.stdout
    assert len(res.json["closeouts"]) == 1
    said = _as_a_job_said_it(res.json)
    assert list(CloseoutHistory.from_json(said).to_json().items()) == list(said.items())


def test_a_jobs_flush_and_sync_summaries_are_the_local_ones_and_their_job() -> None:
    flushed = {"ok": False, "node": "D601", "dryRun": False, "lane": "v03", "pushed": [],
               "partialSuccess": None, "partialSuccessRecovered": False,
               "postPushRecovery": None, "pendingFlush": True, "githubInSync": False,
               "repositories": [], "error": {"code": "diverged", "message": "m", "hint": "h"},
               "job": JOB}
    summary = FlushSummary.from_job(flushed).to_json()
    assert list(summary) == ["ok", "pushed", "partialSuccess", "partialSuccessRecovered",
                             "postPushRecovery", "pendingFlush", "githubInSync", "error", "job"]
    assert summary == {k: flushed[k] for k in summary}
    synced = {"ok": True, "node": "D601", "updated": [], "snapshots": [], "error": None,
              "repositories": [], "job": JOB}
    assert SyncSummary.from_job(synced).to_json() == {
        "ok": True, "updated": [], "snapshots": [], "error": None, "job": JOB}
