"""Fixtures for kubernetes-node tests: a config with a kubernetes node, and the FAKE API server.

The API server here is :class:`tests.support.fakekube.FakeKube`, a fake: no cluster runs.
``fake`` installs it in-process behind the client seam; ``kube_http`` serves the same fake over
HTTP (:mod:`tests.support.kubehttp`) to the real lightkube client through a kubeconfig.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from git_mirror.kube.client import use_client_factory
from tests.support.cli import CliResult, run_cli
from tests.support.configs import HWLAB_REPOSITORY
from tests.support.fakekube import FakeKube
from tests.support.gitutil import Repo
from tests.support.kubehttp import KubeHttp

KUBE_CONFIG = """\
version: 1
snapshots:
  namespace: unidesk
proxies:
  corp: {{mode: http-connect, url: http://10.20.30.40:3128}}
server:
  listen: 0.0.0.0:8080
  tokens:
    ci: {{secretRef: {{kubernetes: {{name: git-mirror-tokens, key: ci}}}}, push: true}}
""" + HWLAB_REPOSITORY + """\
nodes:
  local: {{executor: local}}
  D601:
    executor: kubernetes
    kubernetes: {{context: d601, namespace: devops-infra, storageClass: fast, storageSize: 20Gi}}
    egressProxy: corp
"""


@pytest.fixture
def kube_config(write_config: Callable[..., Path], upstream: Repo) -> Path:
    return write_config(KUBE_CONFIG.format(url=upstream.url))


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeKube]:
    """The FAKE API server, installed as the client every kube operation gets."""
    server = FakeKube(tmp_path / "fakekube")
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    server.calls.clear()
    use_client_factory(lambda cfg, node: server)
    yield server
    use_client_factory(None)
    server.wait_idle()
    server.check()


@pytest.fixture
def kcli(kube_config: Path) -> Callable[..., CliResult]:
    def run(*args: str | Path) -> CliResult:
        return run_cli("--config", kube_config, *args)
    return run


@pytest.fixture
def kube_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeHttp]:
    """The FAKE API server over HTTP on 127.0.0.1, and a kubeconfig (contexts ``d601`` and
    ``other``) in ``KUBECONFIG``: every kube operation uses the real :class:`LightkubeClient`."""
    fake = FakeKube(tmp_path / "fakekube")
    fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    server = KubeHttp(fake).start()
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(
        tmp_path / "kubeconfig", {"d601": "devops-infra", "other": "other"})))
    use_client_factory(None)
    try:
        yield server
    finally:
        fake.wait_idle()
        server.stop()
        fake.check()
