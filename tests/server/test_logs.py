"""One log pipeline: the same fields on every line, the request id down to the mirror layer,
UTC timestamps, and no secret on any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from git_mirror import logs
from git_mirror.redact import Secret
from tests.support.cli import run_cli
from tests.support.gitutil import Repo, run_git
from tests.support.server import (
    CI_TOKEN,
    Served,
    push_payload,
    sign,
    wait_for,
)

BASE_FIELDS = {"timestamp", "level", "logger", "event"}


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_utc(stamp: str) -> None:
    assert stamp.endswith("Z"), stamp
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert parsed.utcoffset() == UTC.utcoffset(None)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The pipeline configured as the CLI does, into a buffer; back to stderr afterwards."""
    out = io.StringIO()
    logs.configure(logging.INFO, stream=out)
    try:
        yield out
    finally:
        logs.configure(logging.WARNING)


def test_a_webhook_s_request_id_reaches_the_sync_it_caused(served: Served,
                                                           upstream: Repo) -> None:
    new = upstream.commit("main", "webhook")
    body = push_payload(f"{upstream.path.parent.name}/upstream")
    with served.client() as c:
        res = c.post("/hooks/github", content=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-Hub-Signature-256": sign(body)})
    assert res.status_code == 202
    request_id = res.headers["x-request-id"]
    wait_for(lambda: served.mirror().rev("refs/heads/main") == new, timeout=10)

    def mirror_line() -> dict[str, Any] | None:
        return next((e for e in lines(served.logs()) if e["logger"] == "git_mirror.sync"
                     and e.get("requestId") == request_id), None)
    line = wait_for(mirror_line, timeout=10)
    assert line["repository"] == "hwlab" and line["operation"] == "sync"
    assert line["ok"] is True


def test_a_push_s_request_id_reaches_the_flush_it_caused(tmp_path: Path, served: Served,
                                                         upstream: Repo) -> None:
    work = tmp_path / "work"
    run_git("clone", "-q", "--branch", "gitops/v03", served.repo_url(), str(work))
    (work / "deploy.yaml").write_text("image: v2\n")
    run_git("add", "deploy.yaml", cwd=work)
    run_git("commit", "-qm", "deploy v2", cwd=work)
    headers = {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "http.extraHeader",
               "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {CI_TOKEN}",
               "GIT_CONFIG_KEY_1": "http.extraHeader",
               "GIT_CONFIG_VALUE_1": "X-Request-Id: push-4711"}
    run_git("push", "-q", served.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work,
            env=headers)
    tip = run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
    wait_for(lambda: upstream.rev("refs/heads/gitops/v03") == tip, timeout=20)

    def flush_line() -> dict[str, Any] | None:
        return next((e for e in lines(served.logs()) if e["logger"] == "git_mirror.flush"
                     and e.get("requestId") == "push-4711"), None)
    line = wait_for(flush_line, timeout=10)
    assert line["repository"] == "hwlab" and line["operation"] == "flush"
    assert line["ok"] is True


def test_cli_and_serve_lines_have_the_same_fields_and_utc_timestamps(
        served: Served, upstream: Repo) -> None:
    with served.client() as c:
        c.get("/healthz", headers={"X-Request-Id": "fields-1"})
    served_line = wait_for(lambda: next((e for e in lines(served.logs())
                                         if e.get("requestId") == "fields-1"), None), timeout=5)
    serve_sync = next(e for e in lines(served.logs()) if e["logger"] == "git_mirror.sync")
    # In-process, the CLI takes the log over (to its stderr): it runs after serve's lines.
    res = run_cli("--config", served.runtime.cfg.path, "-v", "--json", "sync", "--confirm")
    assert res.code == 0, res.stderr
    cli_lines = lines(res.stderr)
    cli_sync = next(e for e in cli_lines if e["logger"] == "git_mirror.sync")
    for entry in [*cli_lines, served_line, serve_sync]:
        assert set(entry) >= BASE_FIELDS, entry
        assert "at" not in entry
        assert_utc(entry["timestamp"])
    # The mirror layer's line is the same line under the CLI and under serve, with the
    # operation that ran it (the command, or serve's job).
    assert set(cli_sync) <= set(serve_sync)
    assert cli_sync["operation"] == serve_sync["operation"] == "sync"


def test_a_secret_in_an_exception_message_is_scrubbed(captured: io.StringIO) -> None:
    secret = Secret("hunter2-token-0123456789", "env:TEST_TOKEN")
    value = secret.reveal()
    try:
        raise RuntimeError(f"upstream said: bad credentials {value}")
    except RuntimeError as exc:
        logging.getLogger("git_mirror.sync").warning("sync failed: %s", exc, exc_info=True,
                                                     extra={"repository": "hwlab"})
        logs.get("git_mirror.server.scheduler").warning("sync failed", error=str(exc))
    text = captured.getvalue()
    assert value not in text
    std, structured = lines(text)
    assert std["event"] == "sync failed: upstream said: bad credentials ***"
    assert "***" in std["exception"] and "RuntimeError" in std["exception"]
    assert std["repository"] == "hwlab"
    assert structured["error"] == "upstream said: bad credentials ***"
    assert set(std) >= BASE_FIELDS and set(structured) >= BASE_FIELDS
