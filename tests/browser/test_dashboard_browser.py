"""The dashboard in a real browser: what people see, kept current without a reload.

``serve`` runs in a thread on 127.0.0.1 with two repositories (one whose upstream is gone,
so that its failed sync shows an error and its hint) and one follower with a real run.
Its flush is held at a gate until the browser has seen the lane pending: the flush itself is
the real one, only its moment is chosen by the test.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.cli import run_cli
from tests.support.follower import make_build
from tests.support.gitutil import Repo, run_git
from tests.support.server import (
    CI_TOKEN,
    RO_TOKEN,
    Served,
    serve_in_thread,
    wait_for,
    write_server_config,
)

BEARER = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
          "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {CI_TOKEN}"}
WAIT_MS = 45_000
DOCS = Path(__file__).resolve().parents[2] / "docs"

EXTRA = """\
  broken:
    upstream: file://{missing}
    transport: {{mode: file}}
    sources:
      - branch: main
    lanes:
      v1: {{ref: gitops/v1}}
followers:
  hwlab-runtime:
    repository: hwlab
    branch: main
    lane: v03
    trigger: {{exec: ["{script}"]}}
"""


def setup_config(tmp_path: Path, upstream: Repo, *, anonymous: bool = True) -> Path:
    """Config, mirrors, one good sync, one failed sync and one follower run, by the CLI."""
    build = make_build(tmp_path, upstream)
    config = write_server_config(tmp_path / "srv", upstream.url, anonymous=anonymous)
    with open(config, "a", encoding="utf-8") as fh:
        fh.write(EXTRA.format(missing=tmp_path / "gone.git", script=build.script))
    assert run_cli("--config", config, "apply", "--confirm").code == 0
    assert run_cli("--config", config, "sync", "--repo", "hwlab", "--confirm", "--wait").code == 0
    assert run_cli("--config", config, "sync", "--repo", "broken", "--confirm", "--wait").code == 1
    res = run_cli("--config", config, "follower", "trigger", "--follower", "hwlab-runtime",
                  "--confirm", "--wait")
    assert res.code == 0, res.stdout + res.stderr
    return config


class Gate:
    """The real flush, started only when the test opens the gate (bounded wait)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()

    def __call__(self, cfg: Any, **kwargs: Any) -> Any:
        from git_mirror.mirror.flush import flush

        self.entered.set()
        self.open.wait(timeout=90)
        return flush(cfg, **kwargs)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def served(tmp_path: Path, upstream: Repo, gate: Gate) -> Iterator[Served]:
    config = setup_config(tmp_path, upstream)
    with serve_in_thread(config, flush_op=gate) as s:
        # Started: the first sync of each repository has run (one of them fails).
        wait_for(lambda: all(r["syncRuns"] >= 1 and not r["syncRunning"]
                             for r in s.runtime.scheduler.to_json()["repositories"]), timeout=30)
        try:
            yield s
        finally:
            gate.open.set()


def push_lane_commit(tmp_path: Path, s: Served) -> str:
    work = tmp_path / "work"
    run_git("clone", "-q", "--branch", "gitops/v03", s.repo_url(), str(work))
    (work / "deploy.yaml").write_text("image: v3\n")
    run_git("add", "deploy.yaml", cwd=work)
    run_git("commit", "-qm", "deploy v3", cwd=work)
    run_git("push", "-q", s.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work, env=BEARER)
    return run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()


def test_a_lane_push_shows_pending_then_in_sync_without_a_reload(
        browser: Any, served: Served, gate: Gate, upstream: Repo, tmp_path: Path,
        artifacts: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(served.url + "/")
    # Every declared repository and lane is shown.
    expect(page.locator('[data-repo="hwlab"]')).to_be_visible()
    expect(page.locator('[data-repo="broken"]')).to_be_visible()
    lane = page.locator('[data-lane="hwlab/v03"]')
    expect(lane).to_be_visible()
    expect(page.locator('[data-lane="broken/v1"]')).to_be_visible()
    expect(lane).to_have_attribute("data-state", "in-sync")
    # The failed sync's error and its hint (the next command) are visible.
    hint = page.locator('[data-repo="broken"] .error .hint')
    expect(hint.first).to_be_visible()
    expect(hint.first).to_contain_text("git-mirror")
    expect(page.locator(".overall")).to_have_attribute("data-level", "failing")
    expect(page).to_have_title("Failing · Overview · git-mirror · local")
    page.evaluate("window.__notReloaded = true")

    tip = push_lane_commit(tmp_path, served)
    expect(lane).to_have_attribute("data-state", "pending", timeout=WAIT_MS)
    expect(lane).to_contain_text("pending flush")
    page.screenshot(path=str(artifacts / "dashboard-pending.png"), full_page=True)
    assert gate.entered.wait(timeout=30), "serve did not start a flush after the push"
    assert upstream.rev("refs/heads/gitops/v03") != tip
    gate.open.set()
    expect(lane).to_have_attribute("data-state", "in-sync", timeout=WAIT_MS)
    expect(lane).to_contain_text(tip[:12])
    assert upstream.rev("refs/heads/gitops/v03") == tip
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    expect(page.locator("#live")).to_contain_text("live")
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    assert (artifacts / "dashboard.png").stat().st_size > 10_000
    if os.environ.get("UPDATE_DASHBOARD_SCREENSHOT"):
        # The README's picture: UPDATE_DASHBOARD_SCREENSHOT=1 pytest tests/browser
        shutil.copyfile(artifacts / "dashboard-pending.png", DOCS / "dashboard.png")
    page.close()


def test_pages_link_to_each_other_and_show_the_follower_run(browser: Any, served: Served) -> None:
    page = browser.new_page()
    page.goto(served.url + "/")
    page.get_by_role("link", name="hwlab-runtime").first.click()
    expect(page).to_have_url(served.url + "/followers/hwlab-runtime")
    run = page.locator("[data-run]").first
    expect(run).to_contain_text("succeeded")
    expect(run).to_contain_text("refs/unidesk/snapshots/hwlab-node-runtime/main/")
    page.get_by_role("link", name="hwlab", exact=True).first.click()
    expect(page).to_have_url(served.url + "/repos/hwlab")
    expect(page.locator('[data-source="hwlab/main"]')).to_contain_text("refs/unidesk/snapshots/")
    expect(page.locator('[data-lane="hwlab/v03"]')).to_be_visible()
    page.close()


def test_readable_without_javascript_and_at_phone_width(browser: Any, served: Served,
                                                         artifacts: Path) -> None:
    context = browser.new_context(java_script_enabled=False,
                                  viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.goto(served.url + "/")
    expect(page.locator('[data-lane="hwlab/v03"]')).to_be_attached()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Failing")
    expect(page.locator('[data-repo="broken"] .hint').first).to_be_visible()
    # Without a script the page still refreshes itself, by a meta refresh.
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_attribute("content", "10")
    # Nothing wider than the phone: tables scroll inside their own box.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(artifacts / "dashboard-phone.png"), full_page=True)
    context.close()


def test_keyboard_reaches_the_content_first(browser: Any, served: Served) -> None:
    page = browser.new_page()
    page.goto(served.url + "/repos/broken")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#board"
    page.close()


CONTRAST = """() => {
  const lum = (css) => {
    const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      if (c !== "rgba(0, 0, 0, 0)" && c !== "transparent") { return c; }
    }
    return "rgb(255, 255, 255)";
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.offsetParent === null) { continue; }
    const a = lum(getComputedStyle(el).color), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) { low.push(el.tagName + "." + el.className + " " + ratio.toFixed(2)); }
  }
  return low;
}"""


def test_every_text_has_aa_contrast(browser: Any, served: Served) -> None:
    page = browser.new_page()
    for path in ("/", "/repos/broken", "/followers/hwlab-runtime"):
        page.goto(served.url + path)
        expect(page.locator(".overall")).to_be_visible()
        assert page.evaluate(CONTRAST) == [], path
    page.close()


def test_with_reads_closed_the_page_needs_a_token(browser: Any, tmp_path: Path,
                                                   upstream: Repo) -> None:
    config = setup_config(tmp_path, upstream, anonymous=False)
    with serve_in_thread(config) as s:
        anonymous = browser.new_context()
        answer = anonymous.request.get(s.url + "/")
        assert answer.status == 401
        assert answer.headers["www-authenticate"].startswith("Basic")   # the browser asks
        anonymous.close()
        # What a browser sends after its password prompt: HTTP Basic, the token as password.
        context = browser.new_context(http_credentials={"username": "ops", "password": RO_TOKEN})
        page = context.new_page()
        response = page.goto(s.url + "/")
        assert response is not None and response.status == 200
        expect(page.locator('[data-lane="hwlab/v03"]')).to_be_visible()
        expect(page.locator("#live")).to_contain_text("live", timeout=WAIT_MS)
        assert RO_TOKEN not in page.content()
        context.close()


def test_a_server_that_went_away_is_said_on_the_page(browser: Any, tmp_path: Path,
                                                    upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url)
    assert run_cli("--config", config, "sync", "--confirm").code == 0
    page = browser.new_page()
    with serve_in_thread(config) as s:
        page.goto(s.url + "/")
        expect(page.locator("#live")).to_contain_text("live", timeout=WAIT_MS)
    # serve stopped: the page keeps what it showed and says that it is not current.
    expect(page.locator("#live")).to_contain_text("not updating", timeout=WAIT_MS)
    expect(page.locator('[data-lane="hwlab/v03"]')).to_be_visible()
    page.close()
