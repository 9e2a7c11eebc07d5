"""Sync over SSH through the declared CONNECT proxy, against a real sshd (R8, R13)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import mirror_repo
from tests.support.cli import run_cli
from tests.support.gitutil import Repo
from tests.transport.conftest import SshSetup


def sync(config: Path, *extra: str):
    return run_cli("--config", config, "--json", "sync", "--confirm", *extra)


def test_sync_over_ssh_goes_through_the_proxy_and_reuses_the_connection(
        ssh_setup: SshSetup, upstream: Repo) -> None:
    before = ssh_setup.sshd.connections()
    res = sync(ssh_setup.config)
    assert res.code == 0, res.stdout
    assert res.json["ok"] is True
    mirror = mirror_repo(ssh_setup.config)
    assert mirror.rev("refs/heads/main") == upstream.rev("refs/heads/main")
    assert mirror.rev("refs/mirror-stage/tags/v1.0") == upstream.rev("refs/tags/v1.0")
    target = f"127.0.0.1:{ssh_setup.sshd.port}"
    assert ssh_setup.proxy.tunnels == [target]
    assert ssh_setup.sshd.connections() == before + 1
    assert any(s.startswith("git-upload-pack '/upstream.git'") for s in ssh_setup.sshd.services())

    # A no-op sync rides the shared connection: no new tunnel, no new TCP connection.
    services = len(ssh_setup.sshd.services())
    res = sync(ssh_setup.config)
    assert res.code == 0, res.stdout
    assert res.json["updated"] == []
    assert ssh_setup.proxy.tunnels == [target]
    assert ssh_setup.sshd.connections() == before + 1
    assert len(ssh_setup.sshd.services()) == services + 1

    # New upstream commits arrive over the same connection too.
    new = upstream.commit("main", "third")
    res = sync(ssh_setup.config)
    assert res.code == 0, res.stdout
    assert mirror.rev("refs/heads/main") == new
    assert ssh_setup.proxy.tunnels == [target]


def test_a_changed_pin_never_rides_the_old_connection(ssh_setup: SshSetup) -> None:
    assert sync(ssh_setup.config).code == 0
    assert len(ssh_setup.proxy.tunnels) == 1
    # Same host key, but the declared known_hosts changed: a new connection, verified anew.
    ssh_setup.write(known_hosts="# rotated\n" + ssh_setup.sshd.known_hosts_line)
    assert sync(ssh_setup.config).code == 0
    assert len(ssh_setup.proxy.tunnels) == 2


def test_hostile_environment_changes_nothing(ssh_setup: SshSetup, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    planted = tmp_path / "hostile-ran"
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("GIT_SSH_COMMAND", f"touch {planted}; false")
    monkeypatch.setenv("GIT_SSH", f"/bin/sh -c 'touch {planted}'")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "no-agent.sock"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.sshcommand'='touch {planted}'")
    monkeypatch.setenv("SSH_ASKPASS", f"/bin/sh -c 'touch {planted}'")
    res = sync(ssh_setup.config)
    assert res.code == 0, res.stdout
    assert ssh_setup.proxy.tunnels == [f"127.0.0.1:{ssh_setup.sshd.port}"]
    assert not planted.exists()


def test_wrong_known_hosts_entry_is_refused(ssh_setup: SshSetup, tmp_path: Path,
                                            upstream: Repo) -> None:
    assert sync(ssh_setup.config).code == 0
    mirror = mirror_repo(ssh_setup.config)
    before = mirror.refs()
    upstream.commit("main", "while the pin is wrong")
    services = len(ssh_setup.sshd.services())
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = Path(str(other) + ".pub").read_text().split()[:2]
    ssh_setup.write(known_hosts=f"[127.0.0.1]:{ssh_setup.sshd.port} {kind} {blob}\n")
    res = sync(ssh_setup.config)
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport"
    assert "host key" in err["message"] and "knownHosts" in err["message"]
    assert "git-mirror" in err["hint"]
    # The shared connection of the old pin was not used, and no ref changed.
    assert mirror.refs() == before
    assert len(ssh_setup.sshd.services()) == services


def test_refusing_proxy_is_a_clear_error_and_no_direct_connection(ssh_setup: SshSetup) -> None:
    ssh_setup.proxy.refuse = True
    before = ssh_setup.sshd.connections()
    res = sync(ssh_setup.config)
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport"
    assert "proxy corp" in err["message"] and "403" in err["message"]
    assert "no direct connection" in err["message"]
    assert "corp" in err["hint"]
    assert ssh_setup.proxy.requests == [f"CONNECT 127.0.0.1:{ssh_setup.sshd.port} HTTP/1.1"]
    assert ssh_setup.proxy.tunnels == []
    assert ssh_setup.sshd.connections() == before
    assert mirror_repo(ssh_setup.config).refs() == {}


def test_unreachable_proxy_is_a_clear_error(ssh_setup: SshSetup) -> None:
    from tests.support.sshd import free_port

    ssh_setup.write(proxy_url=f"http://127.0.0.1:{free_port()}")
    before = ssh_setup.sshd.connections()
    res = sync(ssh_setup.config)
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport"
    assert "proxy corp" in err["message"] and "cannot reach the proxy" in err["message"]
    assert ssh_setup.sshd.connections() == before


def test_without_a_proxy_it_connects_directly_as_declared(ssh_setup: SshSetup) -> None:
    ssh_setup.write(use_proxy=False)
    res = sync(ssh_setup.config)
    assert res.code == 0, res.stdout
    assert ssh_setup.proxy.requests == []
    assert ssh_setup.sshd.services()


def test_identity_refused_is_a_clear_error(ssh_setup: SshSetup, tmp_path: Path) -> None:
    stranger = tmp_path / "keys" / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    ssh_setup.write(identity="{file: keys/stranger}")
    res = sync(ssh_setup.config)
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport"
    assert "refused the declared identity (file:keys/stranger)" in err["message"]


def test_node_egress_proxy_applies_when_the_repository_declares_none(ssh_setup: SshSetup) -> None:
    ssh_setup.write(use_proxy=False)
    text = ssh_setup.config.read_text() + "nodes:\n  local: {executor: local, egressProxy: corp}\n"
    ssh_setup.config.write_text(text)
    res = sync(ssh_setup.config)
    assert res.code == 0, res.stdout
    assert ssh_setup.proxy.tunnels == [f"127.0.0.1:{ssh_setup.sshd.port}"]
    status = run_cli("--config", ssh_setup.config, "--json", "status").json
    assert status["repositories"][0]["proxy"]["name"] == "corp"


def test_identity_file_under_the_cache_is_private(ssh_setup: SshSetup) -> None:
    assert sync(ssh_setup.config).code == 0
    tdir = ssh_setup.config.parent / ".git-mirror" / "transport"
    assert os.stat(tdir).st_mode & 0o777 == 0o700
    assert os.stat(tdir / "hwlab" / "identity").st_mode & 0o777 == 0o600
    assert os.stat(tdir / "hwlab" / "tunnel.json").st_mode & 0o777 == 0o600


def test_a_repository_proxy_of_mode_none_wins_over_the_node_proxy(ssh_setup: SshSetup) -> None:
    config = ssh_setup.write()
    text = config.read_text().replace("proxies:\n", "proxies:\n  direct: {mode: none}\n")
    text = text.replace("      proxy: corp\n", "      proxy: direct\n")
    config.write_text(text + "nodes:\n  local: {executor: local, egressProxy: corp}\n")
    res = sync(config)
    assert res.code == 0, res.stdout
    assert ssh_setup.proxy.requests == []
    status = run_cli("--config", config, "--json", "status").json["repositories"][0]
    assert status["proxy"]["name"] == "direct" and status["proxy"]["mode"] == "none"


def test_closing_the_shared_connection_makes_the_next_sync_connect_again(
        ssh_setup: SshSetup) -> None:
    from git_mirror.config import load_config
    from git_mirror.transport.ssh import close_shared

    assert sync(ssh_setup.config).code == 0
    assert close_shared(load_config(ssh_setup.config), "hwlab") is True
    assert close_shared(load_config(ssh_setup.config), "hwlab") is False
    assert sync(ssh_setup.config).code == 0
    assert len(ssh_setup.proxy.tunnels) == 2


def test_the_named_nodes_egress_proxy_applies_with_node(ssh_setup: SshSetup) -> None:
    """`--node edge` reaches upstream through edge's egressProxy; the local node goes direct."""
    ssh_setup.write(use_proxy=False)
    text = ssh_setup.config.read_text()
    ssh_setup.config.write_text(text + "nodes:\n  local: {executor: local}\n"
                                "  edge: {executor: local, egressProxy: corp}\n")
    res = run_cli("--config", ssh_setup.config, "--node", "edge", "--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert ssh_setup.proxy.tunnels == [f"127.0.0.1:{ssh_setup.sshd.port}"]
    status = run_cli("--config", ssh_setup.config, "--node", "edge", "--json", "status").json
    assert status["node"] == "edge"
    assert status["repositories"][0]["proxy"]["name"] == "corp"
