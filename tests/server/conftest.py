"""The server suites' fixture: ``serve`` on a prepared mirror, ready (first sync done)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gitutil import Repo
from tests.support.server import (
    Served,
    prepare_mirror,
    serve_in_thread,
    wait_for,
    write_server_config,
)


@pytest.fixture
def served(tmp_path: Path, upstream: Repo) -> Iterator[Served]:
    config = write_server_config(tmp_path / "srv", upstream.url)
    prepare_mirror(config)
    with serve_in_thread(config) as s:
        wait_for(lambda: s.client().get("/readyz").status_code == 200)
        yield s
