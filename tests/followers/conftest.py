"""Fixtures of the local follower tests: a build script in its own repository and a config
whose follower runs it (see :mod:`tests.support.follower`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.follower import Build, follower_config, make_build
from tests.support.gitutil import Repo


@pytest.fixture
def build(tmp_path: Path, upstream: Repo) -> Build:
    return make_build(tmp_path, upstream)


@pytest.fixture
def config(write_config: Callable[..., Path], upstream: Repo, build: Build) -> Path:
    return write_config(follower_config(upstream, build.script))
