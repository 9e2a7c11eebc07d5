"""Fixtures for the transport tests: a real sshd, a CONNECT proxy, a smart-HTTP git server,
and recorders for the argv of every git and ssh process the product starts."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.configs import HWLAB_SOURCES
from tests.support.gitutil import Repo
from tests.support.httpgit import GitHttpServer
from tests.support.proxy import ConnectProxy
from tests.support.sshd import Sshd

SSH_CONFIG = """\
version: 1
snapshots:
  namespace: unidesk
proxies:
  corp: {{mode: http-connect, url: "{proxy_url}"{proxy_auth}}}
repositories:
  hwlab:
    upstream: {url}
    transport:
      mode: ssh
      identity: {identity}
      knownHosts: {{file: keys/known_hosts}}
{proxy_line}""" + HWLAB_SOURCES

HTTPS_CONFIG = """\
version: 1
snapshots:
  namespace: unidesk
proxies:
  corp: {{mode: http-connect, url: "{proxy_url}"{proxy_auth}}}
repositories:
  hwlab:
    upstream: {url}
    transport:
      mode: https
      token: {token}
{ca_line}{proxy_line}""" + HWLAB_SOURCES




@dataclass
class SshSetup:
    config: Path
    keys: Path
    sshd: Sshd
    proxy: ConnectProxy

    def write(self, *, use_proxy: bool = True, identity: str | None = None,
              known_hosts: str | None = None, proxy_url: str | None = None,
              proxy_auth: str | None = None, url: str | None = None) -> Path:
        (self.keys / "known_hosts").write_text(known_hosts if known_hosts is not None
                                               else self.sshd.known_hosts_line)
        self.config.write_text(textwrap.dedent(SSH_CONFIG.format(
            url=url or self.sshd.url("upstream.git"),
            identity=identity or "{file: keys/id_ed25519}",
            proxy_url=proxy_url or self.proxy.url,
            proxy_auth=f", auth: {proxy_auth}" if proxy_auth else "",
            proxy_line="      proxy: corp\n" if use_proxy else "")))
        return self.config


@pytest.fixture
def ssh_setup(tmp_path: Path, sshd: Sshd, proxy: ConnectProxy) -> SshSetup:
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(sshd.client_key, keys / "id_ed25519")
    shutil.copy(str(sshd.client_key) + ".pub", keys / "id_ed25519.pub")
    setup = SshSetup(tmp_path / "git-mirror.yaml", keys, sshd, proxy)
    setup.write()
    return setup


@pytest.fixture
def https_server(tmp_path: Path, upstream: Repo) -> Iterator[GitHttpServer]:
    server = GitHttpServer(tmp_path, "x-access-token", "good-token-0123456789",
                           tls_dir=tmp_path / "tls").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def http_server(tmp_path: Path, upstream: Repo) -> Iterator[GitHttpServer]:
    server = GitHttpServer(tmp_path, "x-access-token", "good-token-0123456789").start()
    try:
        yield server
    finally:
        server.close()


def https_config(path: Path, server: GitHttpServer, *, token: str = "{file: token}",
                 proxy: ConnectProxy | None = None, proxy_auth: str | None = None,
                 ca: bool = True) -> Path:
    path.write_text(textwrap.dedent(HTTPS_CONFIG.format(
        url=server.url("upstream.git"), token=token,
        proxy_url=proxy.url if proxy else "http://127.0.0.1:9",
        proxy_auth=f", auth: {proxy_auth}" if proxy_auth else "",
        ca_line=f"      caBundle: {server.cert}\n" if ca and server.cert else "",
        proxy_line="      proxy: corp\n" if proxy else "")))
    return path


RECORDER = """#!/bin/sh
printf '%s\\0' "$0" "$@" >> {log}
printf '\\n' >> {log}
exec {real} "$@"
"""


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], str]:
    """Record the argv of every git and ssh process the product starts; returns a reader."""
    import git_mirror.git.run as run
    import git_mirror.transport.ssh as ssh

    log = tmp_path / "argv.log"
    log.write_text("")
    bindir = tmp_path / "recorders"
    bindir.mkdir()
    for name, real in (("git", shutil.which("git")), ("ssh", shutil.which("ssh"))):
        script = bindir / name
        script.write_text(RECORDER.format(log=log, real=real))
        script.chmod(0o755)
    monkeypatch.setattr(run, "GIT", str(bindir / "git"))
    monkeypatch.setattr(ssh, "SSH_BINARY", str(bindir / "ssh"))
    return lambda: log.read_text(errors="replace")
