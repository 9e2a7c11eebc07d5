"""``status`` on a kubernetes node when its serve answers reads only with a token
(``server.anonymousRead: false``): the service proxy carries none, so a Job reads the status,
and the result says why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from git_mirror.kube import jobs
from tests.support.cli import CliResult
from tests.support.gitutil import Repo
from tests.support.kubehttp import KubeHttp
from tests.support.server import serve_in_thread, write_server_config

NS = "devops-infra"


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.05)


def test_a_serve_that_wants_a_token_is_read_by_a_job(
        kube_http: KubeHttp, kcli: Callable[..., CliResult], upstream: Repo,
        tmp_path: Path) -> None:
    assert kcli("--node", "D601", "--json", "apply", "--confirm").code == 0
    kube_http.fake.add_secret(NS, "git-mirror-tokens", {"ci": "s3cr3t-token-value"})
    closed = write_server_config(tmp_path / "closed", upstream.url, anonymous=False)
    with serve_in_thread(closed) as served:
        assert served.client().get("/api/status").status_code == 401
        kube_http.fake.service_backends[(NS, "git-mirror-d601")] = served.url
        s = kcli("--node", "D601", "--json", "status")
    assert s.code == 0, s.stdout + s.stderr
    assert s.json["via"] == "job"
    assert [w["code"] for w in s.json["warnings"]] == ["serve-needs-token"]
    assert len(kube_http.fake.list("batch/v1", "Job", NS, {})) == 1
