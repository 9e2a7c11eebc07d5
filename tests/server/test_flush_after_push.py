"""A lane push through serve reaches upstream by itself: flush after push, with back-off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.gitutil import Repo, run_git
from tests.support.server import (
    CI_TOKEN,
    Served,
    prepare_mirror,
    serve_in_thread,
    wait_for,
    write_server_config,
)

BEARER = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
          "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {CI_TOKEN}"}


def push_lane_commit(tmp_path: Path, s: Served) -> str:
    work = tmp_path / "work"
    run_git("clone", "-q", "--branch", "gitops/v03", s.repo_url(), str(work))
    (work / "deploy.yaml").write_text("image: v2\n")
    run_git("add", "deploy.yaml", cwd=work)
    run_git("commit", "-qm", "deploy v2", cwd=work)
    run_git("push", "-q", s.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work, env=BEARER)
    return run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()


def api_status(s: Served) -> dict[str, Any]:
    with s.client() as c:
        data: dict[str, Any] = c.get("/api/status").json()
    return data


def test_a_lane_push_is_flushed_upstream_without_a_command(tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url)
    prepare_mirror(config)
    with serve_in_thread(config) as s:
        tip = push_lane_commit(tmp_path, s)
        wait_for(lambda: upstream.rev("refs/heads/gitops/v03") == tip, timeout=20)
        status = wait_for(lambda: (lambda d: d if not d["pendingFlush"] else None)(api_status(s)),
                          timeout=10)
        assert status["githubInSync"] is True
        lane = status["repositories"][0]["lanes"][0]
        assert lane["mirrorCommit"] == lane["githubCommit"] == tip


def test_with_upstream_down_flush_backs_off_and_lands_later(tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url, attempts=50)
    prepare_mirror(config)
    away = upstream.path.with_name("upstream-away.git")
    with serve_in_thread(config) as s:
        upstream.path.rename(away)        # upstream is down
        try:
            tip = push_lane_commit(tmp_path, s)

            def failed_attempts() -> list[dict[str, Any]]:
                repo = api_status(s)["server"]["repositories"][0]
                return [a for a in repo["flushAttempts"] if not a["ok"]]
            wait_for(lambda: len(failed_attempts()) >= 3, timeout=20)
            status = api_status(s)
            assert status["pendingFlush"] is True
            assert status["repositories"][0]["lanes"][0]["mirrorCommit"] == tip
            assert status["server"]["repositories"][0]["flushNextRetryAt"] is not None
            times = [a["at"] for a in failed_attempts()]
            assert times == sorted(times)
        finally:
            away.rename(upstream.path)    # upstream is back
        wait_for(lambda: upstream.rev("refs/heads/gitops/v03") == tip, timeout=20)
        wait_for(lambda: api_status(s)["pendingFlush"] is False, timeout=10)
        metrics = s.client().get("/metrics").text
        assert 'git_mirror_flush_total{repository="hwlab",result="error"}' in metrics
        assert 'git_mirror_flush_total{repository="hwlab",result="ok"}' in metrics
    journal = (config.parent / ".git-mirror" / "state" / "hwlab" / "runs.jsonl").read_text()
    assert journal.count('"kind": "flush-attempt"') >= 4
