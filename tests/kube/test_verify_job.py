"""``verify`` and ``log`` on a kubernetes node read the node's cache through a Job."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from git_mirror.kube import jobs
from tests.support.cli import CliResult
from tests.support.fakekube import FakeKube
from tests.support.gitutil import Repo

NS = "devops-infra"


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.05)


def test_verify_and_log_run_as_jobs_on_the_node(fake: FakeKube, kcli: Callable[..., CliResult],
                                                upstream: Repo) -> None:
    assert kcli("--node", "D601", "apply", "--confirm").code == 0
    fake.add_secret(NS, "git-mirror-tokens", {"ci": "s3cr3t-token-value"})  # the pods mount it
    assert kcli("--node", "D601", "sync", "--confirm", "--wait").code == 0
    v = kcli("--node", "D601", "--json", "verify")
    assert v.code == 0, v.stdout
    assert v.json["executor"] == "kubernetes" and v.json["job"]["status"] == "succeeded"
    assert v.json["repositories"][0]["checkedRefs"] >= 5
    log = kcli("--node", "D601", "--json", "log", "--ref", "refs/heads/main")
    assert log.code == 0, log.stdout
    assert [(e["operation"], e["to"]) for e in log.json["entries"]] == \
        [("sync", upstream.rev("refs/heads/main"))]
    cmds = [j["spec"]["template"]["spec"]["containers"][0]["command"]
            for j in fake.list("batch/v1", "Job", NS, {})]
    assert ["log", "--ref", "refs/heads/main", "--limit", "200"] in [c[-5:] for c in cmds]
