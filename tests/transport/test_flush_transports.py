"""flush over SSH and HTTPS through the declared proxy; partial success over SSH (R5, R15)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import mirror_repo
from tests.support.cli import CliResult, run_cli
from tests.support.clients import LANE, Client
from tests.support.gitutil import Repo
from tests.support.httpgit import GitHttpServer
from tests.support.proxy import ConnectProxy
from tests.transport.conftest import SshSetup, https_config

STAGE_LANE = "refs/mirror-stage/heads/gitops/v03"
PARTIAL = "push-succeeded-fetch-failed"


def run(config: Path, *args: str) -> CliResult:
    return run_cli("--config", config, "--json", *args)


def prepared(config: Path, tmp_path: Path) -> tuple[Repo, Client]:
    """apply and sync done; a CI client that pushes lane commits into the mirror."""
    assert run(config, "apply", "--confirm").code == 0
    res = run(config, "sync", "--confirm")
    assert res.code == 0, res.stdout
    mirror = mirror_repo(config)
    return mirror, Client(mirror.path, tmp_path / "ci")


def test_flush_over_ssh_through_the_proxy(ssh_setup: SshSetup, upstream: Repo,
                                          tmp_path: Path) -> None:
    mirror, client = prepared(ssh_setup.config, tmp_path)
    before = upstream.rev(LANE)
    new = client.lane_commit("deploy v2")
    res = run(ssh_setup.config, "flush", "--confirm")
    assert res.code == 0, res.stdout
    data = res.json
    assert data["ok"] is True
    assert data["pushed"] == [{"repository": "hwlab", "ref": LANE, "from": before, "to": new}]
    assert data["partialSuccess"] is None
    assert data["pendingFlush"] is False and data["githubInSync"] is True
    assert upstream.rev(LANE) == new
    assert mirror.rev(STAGE_LANE) == new
    assert "git-receive-pack '/upstream.git'" in ssh_setup.sshd.services()
    # The push and its recheck rode the one shared connection through the proxy.
    assert ssh_setup.proxy.tunnels == [f"127.0.0.1:{ssh_setup.sshd.port}"]


def test_partial_success_over_ssh_is_recovered(ssh_setup: SshSetup, upstream: Repo,
                                               tmp_path: Path) -> None:
    mirror, client = prepared(ssh_setup.config, tmp_path)
    new = client.lane_commit("deploy v2")
    # The server's forced command fails the first upload-pack after the push.
    ssh_setup.sshd.inject("fail-upload-after-push")
    res = run(ssh_setup.config, "flush", "--confirm")
    assert res.code == 0, res.stdout
    data = res.json
    assert data["ok"] is True
    assert data["partialSuccess"] == PARTIAL
    assert data["partialSuccessRecovered"] is True
    assert data["postPushRecovery"]["action"] == "sync"
    assert data["postPushRecovery"]["ok"] is True
    assert data["pendingFlush"] is False and data["githubInSync"] is True
    services = ssh_setup.sshd.services()
    pushed_at = services.index("git-receive-pack '/upstream.git'")
    assert services[pushed_at + 1].startswith("git-upload-pack")  # the one that failed
    assert not (ssh_setup.sshd.dir / "fail-next-upload").exists()
    assert upstream.rev(LANE) == new
    assert mirror.rev(STAGE_LANE) == new


def test_flush_over_ssh_with_a_wrong_pin_points_at_flush(ssh_setup: SshSetup, upstream: Repo,
                                                         tmp_path: Path) -> None:
    _, client = prepared(ssh_setup.config, tmp_path)
    before = upstream.rev(LANE)
    client.lane_commit("deploy v2")
    ssh_setup.write(known_hosts=f"[127.0.0.1]:{ssh_setup.sshd.port} " + " ".join(
        Path(str(ssh_setup.keys / "id_ed25519") + ".pub").read_text().split()[:2]) + "\n")
    res = run(ssh_setup.config, "flush", "--confirm")
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport" and "knownHosts" in err["message"]
    assert err["hint"].endswith("git-mirror flush --repo hwlab --confirm --wait")
    assert upstream.rev(LANE) == before


def test_flush_over_https_with_a_token_through_the_proxy(
        tmp_path: Path, https_server: GitHttpServer, proxy: ConnectProxy, upstream: Repo) -> None:
    (tmp_path / "token").write_text(https_server.token)
    config = https_config(tmp_path / "git-mirror.yaml", https_server, proxy=proxy)
    mirror, client = prepared(config, tmp_path)
    before = upstream.rev(LANE)
    new = client.lane_commit("deploy v2")
    res = run(config, "flush", "--confirm")
    assert res.code == 0, res.stdout
    data = res.json
    assert data["ok"] is True
    assert data["pushed"] == [{"repository": "hwlab", "ref": LANE, "from": before, "to": new}]
    assert upstream.rev(LANE) == new
    assert mirror.rev(STAGE_LANE) == new
    assert ("POST", "/upstream.git/git-receive-pack", "x-access-token",
            True) in https_server.requests
    assert set(proxy.tunnels) == {f"127.0.0.1:{https_server.port}"}


def test_flush_over_https_with_a_wrong_token_is_a_clear_error(
        tmp_path: Path, https_server: GitHttpServer, upstream: Repo) -> None:
    (tmp_path / "token").write_text(https_server.token)
    config = https_config(tmp_path / "git-mirror.yaml", https_server)
    _, client = prepared(config, tmp_path)
    before = upstream.rev(LANE)
    client.lane_commit("deploy v2")
    (tmp_path / "token").write_text("not-the-token-31337")
    res = run(config, "flush", "--confirm")
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport" and "rejected the declared token" in err["message"]
    assert err["hint"].endswith("git-mirror flush --repo hwlab --confirm --wait")
    assert upstream.rev(LANE) == before
    assert "not-the-token-31337" not in res.stdout + res.stderr


def test_flush_refuses_a_mirror_whose_remote_config_drifted(ssh_setup: SshSetup, upstream: Repo,
                                                           tmp_path: Path) -> None:
    mirror, client = prepared(ssh_setup.config, tmp_path)
    before = upstream.rev(LANE)
    client.lane_commit("deploy v2")
    mirror.git("config", "remote.upstream.url", "ssh://git@elsewhere.invalid/x.git")
    res = run(ssh_setup.config, "flush", "--confirm")
    assert res.code == 1
    assert res.json["error"]["code"] == "drift"
    assert res.json["error"]["hint"] == "git-mirror apply --confirm"
    assert upstream.rev(LANE) == before
