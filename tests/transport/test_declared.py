"""Status discloses the declared transport exactly; drift and forbidden protocols are errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from git_mirror.errors import GitError
from git_mirror.git.remote import RemoteEnv, ls_remote
from tests.conftest import mirror_repo
from tests.support.cli import run_cli
from tests.transport.conftest import SshSetup


def keygen_fingerprints(path: Path) -> list[str]:
    out = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[1] for line in out.splitlines()]


def test_status_shows_mode_proxy_and_fingerprints_as_declared(ssh_setup: SshSetup) -> None:
    auth = ssh_setup.keys / "proxy-auth"
    auth.write_text("user:pw-123456\n")
    ssh_setup.proxy.auth = "user:pw-123456"
    config = ssh_setup.write(proxy_auth="{file: keys/proxy-auth}")
    assert run_cli("--config", config, "--json", "sync", "--confirm").code == 0
    res = run_cli("--config", config, "--json", "status")
    assert res.code == 0, res.stdout
    data = res.json
    assert data["source"] == "yaml"
    repo = data["repositories"][0]
    assert repo["transport"]["mode"] == "ssh"
    assert repo["transport"]["url"] == ssh_setup.sshd.url("upstream.git")
    assert repo["transport"]["source"] == "yaml"
    assert repo["transport"]["at"].startswith(f"{config}:")
    assert repo["proxy"] == {"mode": "http-connect", "name": "corp", "url": ssh_setup.proxy.url,
                             "source": "yaml", "at": repo["proxy"]["at"]}
    secrets = {s["role"]: s for s in repo["secrets"]}
    assert secrets["identity"]["sourceRef"] == "file:keys/id_ed25519"
    assert secrets["identity"]["fingerprint"] == keygen_fingerprints(
        ssh_setup.keys / "id_ed25519")[0]
    assert secrets["knownHosts"]["sourceRef"] == "file:keys/known_hosts"
    assert secrets["knownHosts"]["fingerprint"] == ",".join(
        keygen_fingerprints(ssh_setup.keys / "known_hosts"))
    assert secrets["proxyAuth"]["sourceRef"] == "file:keys/proxy-auth"
    assert secrets["proxyAuth"]["fingerprint"].startswith("sha256:")
    assert "pw-123456" not in res.stdout


def test_ssh_mode_with_an_https_url_is_drift(ssh_setup: SshSetup) -> None:
    config = ssh_setup.write(url="https://127.0.0.1:1/upstream.git")
    for args in (("status",), ("sync", "--confirm"), ("validate",)):
        res = run_cli("--config", config, "--json", *args)
        assert res.code == 2, args
        assert res.json["error"]["code"] == "drift"
        assert "transport.mode is 'ssh'" in res.json["error"]["message"]


def test_https_token_on_an_ssh_repository_is_drift(ssh_setup: SshSetup) -> None:
    config = ssh_setup.write()
    text = config.read_text().replace("      knownHosts:",
                                      "      token: {file: keys/t}\n      knownHosts:")
    config.write_text(text)
    res = run_cli("--config", config, "--json", "sync", "--confirm")
    assert res.code == 2
    assert res.json["error"]["code"] == "drift"


def test_on_disk_remote_config_that_differs_from_yaml_is_drift(ssh_setup: SshSetup) -> None:
    config = ssh_setup.config
    assert run_cli("--config", config, "--json", "sync", "--confirm").code == 0
    mirror = mirror_repo(config)
    mirror.git("config", "gitmirror.proxy", "none")
    res = run_cli("--config", config, "--json", "sync", "--confirm")
    assert res.code == 1
    assert res.json["error"]["code"] == "drift"
    assert res.json["error"]["hint"] == "git-mirror apply --confirm"
    assert run_cli("--config", config, "--json", "apply", "--confirm").code == 0
    assert run_cli("--config", config, "--json", "sync", "--confirm").code == 0


def test_ext_and_undeclared_protocols_never_run(tmp_path: Path) -> None:
    planted = tmp_path / "ext-ran"
    for allow in ("ssh", "https", "file"):
        remote = RemoteEnv(url=f"ext::sh -c touch% {planted}", allow_protocol=allow)
        with pytest.raises(GitError) as info:
            ls_remote(remote, ["refs/heads/*"])
        assert "ext" in info.value.stderr
        assert not planted.exists()
    # A file:// URL under an ssh declaration is refused by git itself.
    upstream = tmp_path / "up.git"
    subprocess.run(["git", "init", "-q", "--bare", str(upstream)], check=True)
    with pytest.raises(GitError) as info:
        ls_remote(RemoteEnv(url=f"file://{upstream}", allow_protocol="ssh"), ["refs/heads/*"])
    assert "file" in info.value.stderr


def test_transport_settings_in_the_mirror_config_are_drift_and_apply_removes_them(
        ssh_setup: SshSetup, tmp_path: Path) -> None:
    config = ssh_setup.config
    assert run_cli("--config", config, "--json", "sync", "--confirm").code == 0
    mirror = mirror_repo(config)
    elsewhere = tmp_path / "elsewhere.git"
    subprocess.run(["git", "init", "-q", "--bare", str(elsewhere)], check=True)
    # Would rewrite the declared ssh:// URL to another repository.
    mirror.git("config", f"url.File://{elsewhere}.insteadOf", ssh_setup.sshd.url("upstream.git"))
    mirror.git("config", "core.sshCommand", "ssh -o StrictHostKeyChecking=no")
    res = run_cli("--config", config, "--json", "sync", "--confirm")
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "drift" and "insteadof" in err["message"]
    assert err["hint"] == "git-mirror apply --confirm"
    assert run_cli("--config", config, "--json", "apply", "--confirm").code == 0
    assert "insteadof" not in (mirror.path / "config").read_text().lower()
    assert "sshcommand" not in (mirror.path / "config").read_text().lower()
    assert run_cli("--config", config, "--json", "sync", "--confirm").code == 0


def test_an_identity_from_the_environment_has_its_ssh_fingerprint(
        ssh_setup: SshSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    key = ssh_setup.keys / "id_ed25519"
    monkeypatch.setenv("GM_IDENTITY", key.read_text())
    config = ssh_setup.write(identity="{env: GM_IDENTITY}")
    res = run_cli("--config", config, "--json", "status")
    secrets = {s["role"]: s for s in res.json["repositories"][0]["secrets"]}
    assert secrets["identity"]["sourceRef"] == "env:GM_IDENTITY"
    assert secrets["identity"]["fingerprint"] == keygen_fingerprints(key)[0]


def test_logs_disclose_the_transport_as_declared(ssh_setup: SshSetup,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="git_mirror.transport"):
        assert run_cli("--config", ssh_setup.config, "--json", "sync", "--confirm").code == 0
    records = [r for r in caplog.records if r.name == "git_mirror.transport"]
    assert records
    info = records[0].transport  # type: ignore[attr-defined]
    assert info["mode"] == "ssh" and info["source"] == "yaml"
    assert info["proxy"] == {"name": "corp", "mode": "http-connect", "url": ssh_setup.proxy.url}
    fp = keygen_fingerprints(ssh_setup.keys / "id_ed25519")[0]
    assert {"role": "identity", "sourceRef": "file:keys/id_ed25519",
            "fingerprint": fp} in info["secrets"]
    assert "source=yaml" in records[0].getMessage() and fp in records[0].getMessage()


def test_a_password_in_the_upstream_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    config = tmp_path / "git-mirror.yaml"
    config.write_text("version: 1\nrepositories:\n  r:\n"
                      "    upstream: https://x:inline-pass-99@127.0.0.1/r.git\n"
                      "    transport: {mode: https}\n")
    res = run_cli("--config", config, "--json", "validate")
    assert res.code == 2
    assert "password" in res.json["error"]["message"]
    assert "inline-pass-99" not in res.stdout + res.stderr
