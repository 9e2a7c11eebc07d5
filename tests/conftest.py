"""Shared fixtures: a real bare upstream, a config file for it, and the CLI."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cli import CliResult, run_cli
from tests.support.clients import Client
from tests.support.configs import HWLAB_REPOSITORY
from tests.support.gitutil import Repo
from tests.support.proxy import ConnectProxy
from tests.support.sshd import Sshd, start_sshd


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No host git config or config path leaks into a test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GIT_MIRROR_CONFIG", raising=False)
    for var in list(os.environ):
        if var.startswith("GIT_") and var != "GIT_MIRROR_GIT_BINARY":
            monkeypatch.delenv(var, raising=False)


@pytest.fixture
def upstream(tmp_path: Path) -> Repo:
    """A bare upstream with main, release/1.0, release/2.0, an undeclared branch, a tag and a
    lane."""
    repo = Repo(tmp_path / "upstream.git")
    base = repo.commit("main", "initial", parent=None)
    repo.commit("main", "second")
    repo.commit("release/1.0", "r1", parent=base)
    repo.commit("release/2.0", "r2", parent=base)
    repo.commit("feature/undeclared", "wip", parent=base)
    repo.tag("v1.0", repo.rev("refs/heads/release/1.0") or "")
    repo.commit("gitops/v03", "lane start", parent=None)
    repo.git("symbolic-ref", "HEAD", "refs/heads/main")
    return repo


BASE_CONFIG = """\
version: 1
snapshots:
  namespace: unidesk
""" + HWLAB_REPOSITORY


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str | None = None, *, url: str | None = None,
              name: str = "git-mirror.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        body = text if text is not None else BASE_CONFIG.format(url=url)
        path.write_text(textwrap.dedent(body), encoding="utf-8")
        return path
    return write


@pytest.fixture
def config(write_config: Callable[..., Path], upstream: Repo) -> Path:
    return write_config(url=upstream.url)


@pytest.fixture
def mirror(config: Path) -> Repo:
    """The mirror repository of ``hwlab`` (it exists once apply or sync ran)."""
    return mirror_repo(config)


@pytest.fixture
def cli(config: Path) -> Callable[..., CliResult]:
    """Run ``git-mirror --config CONFIG ARGS...`` in-process."""
    def run(*args: str | Path) -> CliResult:
        return run_cli("--config", config, *args)
    return run


def mirror_repo(config: Path, rid: str = "hwlab") -> Repo:
    return Repo.at(config.parent / ".git-mirror" / "repos" / f"{rid}.git")


@pytest.fixture
def synced(cli: Callable[..., CliResult], mirror: Repo) -> Repo:
    """apply and sync done: the mirror holds upstream's refs and the protection hook."""
    assert cli("--json", "apply", "--confirm").code == 0
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    return mirror


@pytest.fixture
def client(synced: Repo, tmp_path: Path) -> Client:
    """A CI clone of the synced mirror that publishes lane commits."""
    return Client(synced.path, tmp_path / "ci")


@pytest.fixture
def sshd(tmp_path: Path, upstream: Repo) -> Iterator[Sshd]:
    """A real OpenSSH sshd on 127.0.0.1 serving the test directory's repositories."""
    if not shutil.which("sshd") and not Path("/usr/sbin/sshd").exists():
        pytest.fail("sshd is not installed: run scripts/install.sh")
    server = start_sshd(tmp_path / "sshd", tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    """A real HTTP CONNECT proxy on 127.0.0.1 that counts its tunnels."""
    p = ConnectProxy().start()
    try:
        yield p
    finally:
        p.close()
