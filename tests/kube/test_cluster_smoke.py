"""scripts/cluster-smoke.sh, step by step, against the FAKE API server over HTTP (no cluster).

The script is what an operator runs on a real cluster (kind, k3d); here it runs unchanged with
the real CLI and the real lightkube client, pointed by ``KUBECONFIG`` at
:mod:`tests.support.kubehttp`, whose Jobs and PipelineRuns run for real. Argo CD is played by
a thread that syncs the Application once the lane moved upstream (as its controller would).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.kube.conftest import KUBE_CONFIG
from tests.kube.test_followers import APP, FID, FOLLOWERS, LANE, NS, pipeline
from tests.support.gitutil import Repo
from tests.support.kubehttp import KubeHttp

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster-smoke.sh"


def test_cluster_smoke_steps_pass_against_the_http_fake(
        kube_http: KubeHttp, write_config: Callable[..., Path], upstream: Repo,
        tmp_path: Path) -> None:
    fake = kube_http.fake
    config = write_config(KUBE_CONFIG.format(url=upstream.url) + FOLLOWERS.format(app=APP))
    (tmp_path / "observed").mkdir()
    # What the operator prepares beside git-mirror: the token Secret, the Pipeline, Argo CD.
    fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    fake.add_secret(NS, "git-mirror-tokens", {"ci": "s3cr3t-token-value"})
    fake.create(pipeline(tmp_path / "observed", tmp_path / "mode"))
    fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}})
    fake.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                 "metadata": {"name": APP, "namespace": "argocd"},
                 "spec": {"project": "default",
                          "source": {"repoURL": upstream.url, "targetRevision": "gitops/v03",
                                     "path": "."},
                          "destination": {"server": "https://kubernetes.default.svc",
                                          "namespace": "hwlab"}}})
    lane_before = upstream.rev(LANE)
    stop = threading.Event()

    def argo_controller() -> None:
        deadline = time.monotonic() + 600
        while not stop.is_set() and time.monotonic() < deadline:
            if upstream.rev(LANE) != lane_before:
                fake.argo_sync("argocd", APP)
                return
            stop.wait(0.2)

    argo = threading.Thread(target=argo_controller, daemon=True)
    argo.start()
    env_cli = str(Path(sys.executable).parent / "git-mirror")
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "--config", str(config), "--node", "D601", "--lane", "v03",
             "--follower", FID, "--load", "none"],
            capture_output=True, timeout=900, check=False,
            env={**__import__("os").environ, "GIT_MIRROR": env_cli,
                 "SMOKE_CLOSEOUT_TRIES": "20", "SMOKE_CLOSEOUT_INTERVAL": "1"})
    finally:
        stop.set()
        argo.join(30)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    for step in ("apply", "apply-again", "sync", "flush", "status", "trigger", "closeout"):
        assert f"cluster-smoke: ok   {step}\n" in out, out
    assert "all steps passed on node D601" in out
    # what the steps did is in the fake: Jobs ran, a PipelineRun succeeded, the lane moved
    ops = sorted(j["metadata"]["labels"]["git-mirror/operation"]
                 for j in fake.list("batch/v1", "Job", NS, {}))
    assert ops.count("sync") == 2 and ops.count("flush") == 3
    assert upstream.rev(LANE) != lane_before
    methods = {m for m, _, _ in kube_http.requests}
    assert {"GET", "POST", "PATCH"} <= methods


def test_cluster_smoke_stops_at_the_first_failing_step(
        kube_http: KubeHttp, write_config: Callable[..., Path], upstream: Repo) -> None:
    config = write_config(KUBE_CONFIG.format(url=upstream.url))
    # The token Secret is missing: apply works, the sync Job's pod never starts (Pending).
    env_cli = str(Path(sys.executable).parent / "git-mirror")
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--config", str(config), "--node", "D601", "--load", "bogus"],
        capture_output=True, timeout=300, check=False,
        env={**__import__("os").environ, "GIT_MIRROR": env_cli})
    assert proc.returncode == 2 and "--load is kind:CLUSTER" in proc.stderr.decode()
    upstream.path.rename(upstream.path.with_name("gone.git"))
    kube_http.fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    kube_http.fake.add_secret(NS, "git-mirror-tokens", {"ci": "s3cr3t-token-value"})
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--config", str(config), "--node", "D601"],
        capture_output=True, timeout=600, check=False,
        env={**__import__("os").environ, "GIT_MIRROR": env_cli})
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 1, out + err
    assert "cluster-smoke: ok   apply-again" in out
    assert "cluster-smoke: FAILED at sync" in err
    assert "cluster-smoke: ok   flush" not in out
