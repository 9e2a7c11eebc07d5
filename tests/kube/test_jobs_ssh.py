"""A kubernetes node syncing over SSH through its declared proxy, with secrets from Secrets.

The API server is the FAKE of tests/support/fakekube.py (not a cluster); the sshd and the
CONNECT proxy are real, on 127.0.0.1. The Job's pod reads its identity and known_hosts from
the mounted Secret (``{kubernetes: {name, key}}``) and reaches upstream only through the
node's ``egressProxy`` (R8), the one endpoint the rendered NetworkPolicy allows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from git_mirror.kube import jobs
from tests.support.cli import run_cli
from tests.support.fakekube import FakeKube
from tests.support.gitutil import Repo, run_git
from tests.support.proxy import ConnectProxy
from tests.support.sshd import Sshd

NS = "devops-infra"
CONFIG = """\
version: 1
snapshots:
  namespace: unidesk
proxies:
  corp: {{mode: http-connect, url: "{proxy}"}}
server:
  listen: 0.0.0.0:8080
repositories:
  hwlab:
    upstream: {url}
    transport:
      mode: ssh
      identity: {{kubernetes: {{name: hwlab-ssh, key: id_ed25519}}}}
      knownHosts: {{kubernetes: {{name: hwlab-ssh, key: known_hosts}}}}
    sources:
      - branch: main
        snapshotGroup: hwlab-node-runtime
nodes:
  D601:
    executor: kubernetes
    kubernetes: {{context: d601, namespace: devops-infra}}
    egressProxy: corp
"""




def test_sync_over_ssh_through_the_node_proxy_with_mounted_secrets(
        tmp_path: Path, fake: FakeKube, sshd: Sshd, proxy: ConnectProxy, upstream: Repo,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.05)
    config = tmp_path / "ssh-node" / "git-mirror.yaml"
    config.parent.mkdir()
    config.write_text(CONFIG.format(proxy=proxy.url, url=sshd.url("upstream.git")))
    applied = run_cli("--config", config, "--node", "D601", "--json", "apply", "--confirm")
    assert applied.code == 0, applied.stdout
    policy = fake.get("networking.k8s.io/v1", "NetworkPolicy", "git-mirror-d601", NS)
    assert policy is not None
    assert policy["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "127.0.0.1/32"}}],
                                         "ports": [{"protocol": "TCP", "port": proxy.port}]}]
    key = sshd.client_key.read_text()
    fake.add_secret(NS, "hwlab-ssh", {"id_ed25519": key, "known_hosts": sshd.known_hosts_line})

    r = run_cli("--config", config, "--node", "D601", "--json", "sync", "--confirm", "--wait")
    assert r.code == 0, r.stdout + r.stderr
    assert r.json["job"]["status"] == "succeeded"
    main = upstream.rev("refs/heads/main")
    mirror = fake.volume_dir(NS, "git-mirror-d601-cache") / "repos" / "hwlab.git"
    tip = run_git("--git-dir", str(mirror), "rev-parse", "refs/heads/main")
    assert tip.stdout.decode().strip() == main
    assert proxy.tunnels and all(t == f"127.0.0.1:{sshd.port}" for t in proxy.tunnels)
    key_line = next(ln for ln in key.splitlines() if len(ln) > 40)
    assert key_line not in r.stdout + r.stderr
    job = fake.list("batch/v1", "Job", NS, {})[0]
    assert key_line not in str(job)

    st = run_cli("--config", config, "--node", "D601", "--json", "status")
    assert st.code == 0, st.stdout
    repo = st.json["repositories"][0]
    assert repo["proxy"]["name"] == "corp"
    assert [s["sourceRef"] for s in repo["secrets"]] == ["kubernetes:hwlab-ssh/id_ed25519",
                                                          "kubernetes:hwlab-ssh/known_hosts"]
    assert all(s["fingerprint"] for s in repo["secrets"])
