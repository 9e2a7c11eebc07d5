"""Fixtures for the container image tests: the image is built once per session and unpacked once.

These tests run the real image with the real OCI runtime ``runc`` (root needed, as CI runs);
``scripts/install.sh`` installs mmdebstrap, umoci and runc. ``GIT_MIRROR_IMAGE_ARCHIVE`` names
a prebuilt archive (``.ci/run`` builds it once and checks its reproducibility first).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.oci import Container, Image, build_image, chown_tree, unpack


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    if os.geteuid() != 0:
        pytest.skip("building and running the image needs root (mmdebstrap, runc): CI runs as root")
    for tool in ("runc", "umoci", "mmdebstrap"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed: run scripts/install.sh")
    base = tmp_path_factory.mktemp("image")
    archive = build_image(base / "out")
    return unpack(archive, base / "unpacked")


@pytest.fixture(scope="session")
def runc_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runc-state")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """The pod's cache volume: a directory the image's user owns, mounted read-write."""
    path = tmp_path / "cache"
    path.mkdir()
    chown_tree(path)
    return path


@pytest.fixture
def container(image: Image, runc_state: Path, tmp_path: Path) -> Iterator[Container]:
    box = Container(image, runc_state, tmp_path / "bundles")
    yield box
    box.stop()
