"""Canary secrets: planted values must appear in no output, log, error, argv or mirror file.

The identity, the token and the proxy password come from ``{env: NAME}`` refs with
recognisable values. Every CLI output (JSON and text, success and failure), every file the
product wrote under the cache (except the 0600 files it hands to ssh), the recorded argv of
every git and ssh process, and the command line of every process still running (the shared
ssh connection and its tunnel) are scanned for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import mirror_repo
from tests.support.cli import CliResult, run_cli
from tests.support.clients import Client
from tests.support.httpgit import GitHttpServer
from tests.support.proxy import ConnectProxy
from tests.transport.conftest import SshSetup, https_config

PROXY_USER, PROXY_PASS = "canaryuser", "canary-proxy-pass-7731"
TOKEN = "canary-token-5f3a9c20e1"
SECRET_FILES = {"identity", "tunnel.json"}  # handed to ssh by path, 0600


def all_cmdlines() -> str:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                    "utf-8", "replace"))
            except OSError:
                continue
    return "\n".join(out)


def cache_files(cache: Path) -> dict[Path, str]:
    files = {}
    for path in cache.rglob("*"):
        if path.is_file() and "objects" not in path.parts:
            files[path] = path.read_text(errors="replace")
    return files


def run_everything(config: Path) -> list[CliResult]:
    runs = [
        run_cli("--config", config, "validate"),
        run_cli("--config", config, "--json", "sync"),
        run_cli("--config", config, "--json", "sync", "--confirm"),
        run_cli("--config", config, "sync", "--confirm"),
        run_cli("--config", config, "--json", "status"),
        run_cli("--config", config, "status"),
        run_cli("--config", config, "--json", "apply"),
        run_cli("--config", config, "--json", "flush"),
        run_cli("--config", config, "--json", "flush", "--confirm"),
        run_cli("--config", config, "flush", "--confirm"),
    ]
    # A lane commit from CI, flushed upstream: the push path is scanned as well.
    Client(mirror_repo(config).path, config.parent / "ci").lane_commit("deploy v2")
    runs.append(run_cli("--config", config, "--json", "flush", "--confirm"))
    assert runs[-1].code == 0 and runs[-1].json["pushed"], runs[-1].stdout
    return runs


def assert_nowhere(canaries: list[str], texts: dict[str, str]) -> None:
    for name, text in texts.items():
        for canary in canaries:
            assert canary not in text, f"canary found in {name}"


def test_ssh_identity_and_proxy_password_appear_nowhere(
        ssh_setup: SshSetup, monkeypatch: pytest.MonkeyPatch,
        argv_log: Callable[[], str]) -> None:
    key = (ssh_setup.keys / "id_ed25519").read_text()
    monkeypatch.setenv("GM_CANARY_IDENTITY", key)
    monkeypatch.setenv("GM_CANARY_PROXY", f"{PROXY_USER}:{PROXY_PASS}")
    ssh_setup.proxy.auth = f"{PROXY_USER}:{PROXY_PASS}"
    (ssh_setup.keys / "id_ed25519").unlink()
    config = ssh_setup.write(identity="{env: GM_CANARY_IDENTITY}",
                             proxy_auth="{env: GM_CANARY_PROXY}")
    runs = run_everything(config)
    assert runs[2].code == 0, runs[2].stdout
    assert ssh_setup.proxy.tunnels, "the tunnel went through the authenticating proxy"
    live = all_cmdlines()  # the shared connection and its tunnel are still running
    # And a failing run: the proxy now refuses; its error output is scanned too.
    ssh_setup.proxy.refuse = True
    ssh_setup.write(identity="{env: GM_CANARY_IDENTITY}", proxy_auth="{env: GM_CANARY_PROXY}",
                    known_hosts="# changed pin\n" + ssh_setup.sshd.known_hosts_line)
    failed = run_cli("--config", config, "--json", "sync", "--confirm")
    assert failed.code == 1 and failed.json["error"]["code"] == "transport"
    runs.append(failed)

    body = [ln for ln in key.splitlines() if len(ln) > 20 and not ln.startswith("-----")]
    canaries = [PROXY_PASS, f"{PROXY_USER}:{PROXY_PASS}", *body]
    cache = config.parent / ".git-mirror"
    texts = {f"run {i} stdout": r.stdout for i, r in enumerate(runs)}
    texts.update({f"run {i} stderr": r.stderr for i, r in enumerate(runs)})
    texts["argv"] = argv_log()
    texts["live cmdlines"] = live
    for path, text in cache_files(cache).items():
        if path.name in SECRET_FILES:
            assert path.stat().st_mode & 0o777 == 0o600, path
            continue
        texts[str(path)] = text
    assert_nowhere(canaries, texts)
    assert "ssh" in texts["argv"] and "ProxyCommand=" in texts["argv"]


def test_https_token_and_proxy_password_appear_nowhere(
        tmp_path: Path, https_server: GitHttpServer, proxy: ConnectProxy,
        monkeypatch: pytest.MonkeyPatch, argv_log: Callable[[], str]) -> None:
    https_server.token = TOKEN
    proxy.auth = f"{PROXY_USER}:{PROXY_PASS}"
    monkeypatch.setenv("GM_CANARY_TOKEN", TOKEN)
    monkeypatch.setenv("GM_CANARY_PROXY", f"{PROXY_USER}:{PROXY_PASS}")
    config = https_config(tmp_path / "git-mirror.yaml", https_server, proxy=proxy,
                          token="{env: GM_CANARY_TOKEN}", proxy_auth="{env: GM_CANARY_PROXY}")
    runs = run_everything(config)
    assert runs[2].code == 0, runs[2].stdout
    assert proxy.tunnels
    https_server.token = "the-server-wants-another-token"
    failed = run_cli("--config", config, "--json", "sync", "--confirm")
    assert failed.code == 1 and failed.json["error"]["code"] == "transport"
    runs.append(failed)

    canaries = [TOKEN, PROXY_PASS]
    texts = {f"run {i} stdout": r.stdout for i, r in enumerate(runs)}
    texts.update({f"run {i} stderr": r.stderr for i, r in enumerate(runs)})
    texts["argv"] = argv_log()
    texts.update({str(p): t for p, t in cache_files(config.parent / ".git-mirror").items()})
    assert_nowhere(canaries, texts)
    assert "http.proxyAuthMethod=basic" in texts["argv"]
