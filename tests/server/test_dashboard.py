"""The dashboard's pages over HTTP: what they hold, who may read them, what they never show."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import httpx
import pytest

from tests.support.gitutil import Repo
from tests.support.server import (
    CI_TOKEN,
    HOOK_SECRET,
    RO_TOKEN,
    Served,
    prepare_mirror,
    serve_in_thread,
    wait_for,
    write_server_config,
)


def test_the_front_page_shows_every_repository_and_lane(served: Served) -> None:
    with served.client() as c:
        page = c.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert 'data-repo="hwlab"' in html
    assert 'data-lane="hwlab/v03" data-state="in-sync"' in html
    assert 'data-level="ok"' in html and ">Healthy<" in html
    assert '<script src="/static/dashboard.js" defer>' in html
    # Self-contained: every link and script is the server's own.
    targets = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert targets and all(t.startswith(("/", "#", "data:")) for t in targets), targets
    for secret in (CI_TOKEN, RO_TOKEN, HOOK_SECRET):
        assert secret not in html


def test_the_fragment_is_the_main_element_only(served: Served) -> None:
    with served.client() as c:
        full = c.get("/repos/hwlab").text
        part = c.get("/repos/hwlab", params={"fragment": "main"})
    assert part.status_code == 200
    assert "<html" not in part.text and "<main" not in part.text
    assert 'data-source="hwlab/main"' in part.text
    assert part.text.strip() in full
    # The tab's title leads with the overall state, also for the live fragment.
    assert "<title>Healthy · Repository hwlab · git-mirror · local</title>" in full
    assert urllib.parse.unquote(part.headers["x-page-title"]) == \
        "Healthy · Repository hwlab · git-mirror · local"


def test_unknown_pages_are_404_and_assets_have_their_type(served: Served) -> None:
    with served.client() as c:
        assert c.get("/repos/nope").status_code == 404
        assert c.get("/followers/nope").status_code == 404
        assert c.get("/static/nope.js").status_code == 404
        js = c.get("/static/dashboard.js")
        css = c.get("/static/dashboard.css")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "fragment" in js.text
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/", "/repos/hwlab", "/api/status"])
def test_with_anonymous_reads_off_the_pages_need_a_token(tmp_path: Path, upstream: Repo,
                                                         path: str) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url, anonymous=False)
    prepare_mirror(config)
    with serve_in_thread(config) as s, s.client() as c:
        anonymous = c.get(path)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == 'Basic realm="git-mirror"'
        wrong = c.get(path, headers={"Authorization": "Bearer not-a-token"})
        assert wrong.status_code == 401
        basic = c.get(path, auth=httpx.BasicAuth("anyone", RO_TOKEN))
        assert basic.status_code == 200
        bearer = c.get(path, headers={"Authorization": f"Bearer {CI_TOKEN}"})
        assert bearer.status_code == 200
        assert "hwlab" in bearer.text


def test_a_failed_sync_shows_its_error_and_hint(tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url)
    prepare_mirror(config)
    upstream.path.rename(tmp_path / "away.git")
    from tests.support.cli import run_cli

    assert run_cli("--config", config, "sync", "--confirm").code == 1
    with serve_in_thread(config) as s, s.client() as c:
        html = c.get("/").text
    assert 'data-level="failing"' in html
    assert "hwlab: the last sync failed" in html
    # The error's hint, whatever else it says first, ends in the command to run.
    assert re.search(r'class="hint">Next: <code>[^<]*git-mirror sync --repo hwlab --confirm '
                     r'--wait</code>', html), html


def test_closeouts_of_the_ledger_and_audit_events_are_shown(tmp_path: Path,
                                                             upstream: Repo) -> None:
    """The closeout ledger and the audit journal, in the line formats their writers use."""
    config = write_server_config(tmp_path / "srv", upstream.url)
    with open(config, "a", encoding="utf-8") as fh:
        fh.write("followers:\n  rt:\n    repository: hwlab\n    branch: main\n    lane: v03\n"
                 "    trigger: {exec: [/bin/true]}\n")
    prepare_mirror(config)
    state = config.parent / ".git-mirror" / "state"
    (state / "ledger").mkdir(parents=True)
    (state / "ledger" / "closeout.jsonl").write_text(json.dumps({
        "at": "2026-01-01T00:00:00Z", "follower": "rt", "ok": False, "mergeCommit": "ab" * 20,
        "pipelineRun": {"name": "rt-run-1", "status": "succeeded"}, "syncRevision": "cd" * 20,
        "branchTip": "ef" * 20,
        "checks": {"tipContainsMergeCommit": True, "pendingFlush": False}}) + "\n"
        + json.dumps({"follower": "other", "mergeCommit": "99" * 20, "checks": {}}) + "\n")
    (state / "hwlab" / "audit.jsonl").write_text(json.dumps({
        "at": "2999-01-01T00:00:00.000Z", "repository": "hwlab", "operation": "push",
        "ref": "refs/heads/gitops/v03", "from": "12" * 20, "to": "34" * 20, "where": "mirror",
        "token": "ci", "requestId": "r1"}) + "\n")
    with serve_in_thread(config) as s, s.client() as c:
        html = c.get("/followers/rt").text
        front = c.get("/").text
    assert "Merge commit" in html and "abababababab" in html and "not proven" in html
    assert '<span class="flag yes">pass</span> <strong>tipContainsMergeCommit</strong>' in html
    assert '<span class="flag no">fail</span> <strong>pendingFlush</strong>' in html
    assert "999999999999" not in html   # another follower's closeout
    assert 'href="/followers/rt"' in front and 'href="/repos/hwlab"' in html
    newest = front.split('<table class="events">', 1)[1].split("</tr>", 2)[1]
    assert "push <code>refs/heads/gitops/v03</code>" in newest and "(token ci)" in newest


def test_a_mirror_git_cannot_read_is_an_error_page_with_a_hint(tmp_path: Path,
                                                               upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url)
    prepare_mirror(config)
    with serve_in_thread(config) as s, s.client() as c:
        assert c.get("/").status_code == 200
        packed = config.parent / ".git-mirror" / "repos" / "hwlab.git" / "packed-refs"
        packed.write_text("this is not a packed-refs file\n")
        # Within a second (the shared reading of the cache), the page says so.
        page = wait_for(lambda: (lambda r: r if r.status_code == 500 else None)(c.get("/")),
                        timeout=10)
        part = c.get("/", params={"fragment": "main"})
    assert page.status_code == 500
    assert "Cannot read the mirror's state" in page.text
    assert 'class="hint">Next: <code>' in page.text
    assert part.status_code == 500 and "Cannot read the mirror's state" in part.text
