"""A real browser for the dashboard tests: Debian's chromium driven by Playwright.

Playwright's own browser download cannot work here (and is not needed): it launches the
``chromium`` that ``scripts/install.sh`` installs. Screenshots go to ``test-artifacts/`` at
the top of the repository, or to ``$GIT_MIRROR_TEST_ARTIFACTS``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("GIT_MIRROR_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("GIT_MIRROR_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "test-artifacts")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium per test module; Playwright's driver stops with it, before other tests."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install.sh (it installs chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a loaded 2-core machine: generous, still bounded
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
