"""``serve`` against the contract: webhook matching, 202 before the sync ends, signatures,
``/api/status`` as the ``status --json`` object, and the client push rules over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.cli import run_cli
from tests.support.gitutil import Repo, run_git
from tests.support.server import (
    CI_TOKEN,
    Served,
    prepare_mirror,
    push_payload,
    serve_in_thread,
    sign,
    wait_for,
    write_server_config,
)


def deliver(served: Served, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    with httpx.Client(base_url=served.url, timeout=30) as c:
        return c.post("/hooks/github", content=body, headers=headers)


def block_upstream_reads(tmp_path: Path, served: Served, upstream: Repo) -> tuple[Path, Path]:
    """Every read of upstream waits (bounded: 60 s) until the test creates ``release``."""
    d = tmp_path / "gate"
    d.mkdir()
    started, release = d / "started", d / "release"
    wrapper = d / "git-upload-pack"
    wrapper.write_text(f"""#!/bin/sh
touch '{started}'
i=0
while [ $i -lt 600 ] && [ ! -e '{release}' ]; do sleep 0.1; i=$((i + 1)); done
exec git upload-pack "$@"
""", encoding="utf-8")
    wrapper.chmod(0o755)
    served.mirror().git("config", f"remote.{upstream.url}.uploadpack", str(wrapper))
    return started, release


def test_a_webhook_is_answered_202_before_its_sync_ends(
        tmp_path: Path, served: Served, upstream: Repo) -> None:
    wait_for(lambda: not served.runtime.scheduler.repos["hwlab"].sync.busy, timeout=20)
    before = served.mirror().rev("refs/heads/main")
    new = upstream.commit("main", "while the webhook is answered")
    started, release = block_upstream_reads(tmp_path, served, upstream)
    try:
        body = push_payload(f"{upstream.path.parent.name}/upstream")
        res = deliver(served, body, sign(body))     # would time out if it waited for the sync
        assert res.status_code == 202 and res.json()["repositories"] == ["hwlab"]
        wait_for(started.exists, timeout=20)          # the sync it started is reading upstream
        assert served.mirror().rev("refs/heads/main") == before
    finally:
        release.touch()
    wait_for(lambda: served.mirror().rev("refs/heads/main") == new, timeout=30)


def test_webhook_matches_full_name_with_or_without_git_and_the_id(tmp_path: Path,
                                                                   upstream: Repo) -> None:
    plain = Repo(tmp_path / "org" / "plain")          # an upstream path without .git
    plain.commit("main", "plain start", parent=None)
    config = write_server_config(tmp_path / "srv", upstream.url)
    config.write_text(config.read_text(encoding="utf-8") + (
        f"  plain:\n    upstream: {plain.url}\n    transport: {{mode: file}}\n"
        "    sources:\n      - branch: main\n"), encoding="utf-8")
    prepare_mirror(config)
    with serve_in_thread(config) as served:
        wait_for(lambda: served.client().get("/readyz").status_code == 200, timeout=30)
        cases = [
            (push_payload(f"{upstream.path.parent.name}/upstream"), ["hwlab"]),       # + .git
            (push_payload(f"{upstream.path.parent.name}/upstream.git"), ["hwlab"]),
            (push_payload("org/plain"), ["plain"]),                                    # no .git
            (push_payload("someone/else", name="plain"), ["plain"]),                   # id == name
            (push_payload("rg/plain", name="other"), []),                # whole path segments
        ]
        for body, want in cases:
            res = deliver(served, body, sign(body))
            assert res.status_code == 202, res.text
            assert res.json()["repositories"] == want, (body, res.json())
        new = plain.commit("main", "plain moved")
        body = push_payload("org/plain")
        assert deliver(served, body, sign(body)).status_code == 202
        wait_for(lambda: served.mirror("plain").rev("refs/heads/main") == new, timeout=30)


def test_a_missing_or_bad_signature_is_refused_and_syncs_nothing(served: Served,
                                                                 upstream: Repo) -> None:
    body = push_payload(f"{upstream.path.parent.name}/upstream")
    for signature, status, code in ((None, 401, "unauthorized"),
                                    (sign(body, "not-the-secret"), 403, "forbidden"),
                                    ("sha1=" + "0" * 40, 403, "forbidden")):
        res = deliver(served, body, signature)
        assert res.status_code == status
        err = res.json()["error"]                    # every failure carries the error object
        assert err["code"] == code and err["message"] and err["hint"], err
        assert "webhook-secret-" not in res.text     # the secret's value is never echoed
    bad = b"not json"
    res = deliver(served, bad, sign(bad))
    assert res.status_code == 400 and res.json()["error"]["code"] == "bad-request"
    metrics = served.client().get("/metrics").text
    assert 'result="unsigned"' in metrics and 'result="bad-signature"' in metrics
    assert 'result="accepted"' not in metrics


def test_api_status_is_the_status_json_object(served: Served) -> None:
    api = served.client().get("/api/status")
    assert api.status_code == 200
    cli = run_cli("--config", served.runtime.cfg.path, "--json", "status").json
    data = api.json()
    for key in ("ok", "node", "source", "config", "pendingFlush", "githubInSync"):
        assert data[key] == cli[key], key
    assert [r["id"] for r in data["repositories"]] == [r["id"] for r in cli["repositories"]]
    for api_repo, cli_repo in zip(data["repositories"], cli["repositories"], strict=True):
        for key in ("transport", "proxy", "secrets", "refSources", "sources", "lanes",
                    "pendingFlush", "githubInSync"):
            assert api_repo[key] == cli_repo[key], key


def test_http_pushes_go_to_lanes_only_and_fast_forward_only(tmp_path: Path, served: Served) -> None:
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
           "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {CI_TOKEN}"}
    work = tmp_path / "work"
    run_git("clone", "-q", "--branch", "gitops/v03", served.repo_url(), str(work))
    run_git("commit", "-q", "--allow-empty", "-m", "lane work", cwd=work)
    tip = run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
    run_git("push", "-q", served.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work, env=env)
    assert served.mirror().rev("refs/heads/gitops/v03") == tip
    refused = {
        "HEAD~1:refs/heads/gitops/v03": b"non-fast-forward",
        "HEAD:refs/heads/main": b"source branches follow upstream",
        "HEAD:refs/tags/v9": b"tags follow upstream",
        "HEAD:refs/heads/not-a-lane": b"not a declared lane",
    }
    for refspec, why in refused.items():
        res = run_git("push", "--force", served.repo_url(), refspec, cwd=work, env=env, check=False)
        assert res.returncode != 0, refspec
        assert why in res.stderr, (refspec, res.stderr)
    assert served.mirror().rev("refs/heads/gitops/v03") == tip
    assert served.mirror().rev("refs/tags/v9") is None
