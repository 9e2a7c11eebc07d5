"""Sync over HTTPS with a token, through the declared CONNECT proxy, against a real
smart-HTTP git server (git http-backend) with Basic auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import mirror_repo
from tests.support.cli import run_cli
from tests.support.gitutil import Repo
from tests.support.httpgit import GitHttpServer
from tests.support.proxy import ConnectProxy
from tests.transport.conftest import https_config

GOOD = "good-token-0123456789"


def sync(config: Path):
    return run_cli("--config", config, "--json", "sync", "--confirm")


def test_sync_over_https_with_a_token_through_the_proxy(
        tmp_path: Path, https_server: GitHttpServer, proxy: ConnectProxy, upstream: Repo) -> None:
    (tmp_path / "token").write_text(GOOD + "\n")
    config = https_config(tmp_path / "git-mirror.yaml", https_server, proxy=proxy)
    res = sync(config)
    assert res.code == 0, res.stdout
    mirror = mirror_repo(config)
    assert mirror.rev("refs/heads/main") == upstream.rev("refs/heads/main")
    assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{https_server.port}"}
    served = [r for r in https_server.requests if r[3]]
    assert served and all(user == "x-access-token" for _, _, user, _ in served)
    # The token is nowhere in the mirror's config.
    assert GOOD not in (mirror.path / "config").read_text()


def test_wrong_token_is_a_clear_error(tmp_path: Path, https_server: GitHttpServer,
                                      proxy: ConnectProxy) -> None:
    (tmp_path / "token").write_text("wrong-token-9876543210\n")
    config = https_config(tmp_path / "git-mirror.yaml", https_server, proxy=proxy)
    res = sync(config)
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport"
    assert "rejected the declared token (file:token)" in err["message"]
    assert "git-mirror sync" in err["hint"]
    assert "wrong-token-9876543210" not in res.stdout + res.stderr
    assert mirror_repo(config).refs() == {}


def test_tls_is_verified_without_the_declared_ca(tmp_path: Path,
                                                 https_server: GitHttpServer) -> None:
    (tmp_path / "token").write_text(GOOD)
    config = https_config(tmp_path / "git-mirror.yaml", https_server, ca=False)
    res = sync(config)
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport"
    assert "TLS certificate" in err["message"] and "caBundle" in err["hint"]
    assert all(not ok for *_, ok in https_server.requests)


def test_refusing_proxy_over_https_is_a_clear_error(tmp_path: Path, https_server: GitHttpServer,
                                                    proxy: ConnectProxy) -> None:
    (tmp_path / "token").write_text(GOOD)
    proxy.refuse = True
    config = https_config(tmp_path / "git-mirror.yaml", https_server, proxy=proxy)
    res = sync(config)
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport"
    assert "proxy corp" in err["message"] and "no direct connection" in err["message"]
    assert https_server.requests == []
    assert proxy.requests


def test_proxy_basic_auth_over_https(tmp_path: Path, https_server: GitHttpServer,
                                     proxy: ConnectProxy) -> None:
    (tmp_path / "token").write_text(GOOD)
    (tmp_path / "proxy-auth").write_text("squid:proxy-pass-4242\n")
    proxy.auth = "squid:proxy-pass-4242"
    config = https_config(tmp_path / "git-mirror.yaml", https_server, proxy=proxy,
                          proxy_auth="{file: proxy-auth}")
    res = sync(config)
    assert res.code == 0, res.stdout
    assert proxy.tunnels
    proxy.auth = "squid:something-else"
    res = sync(config)
    assert res.code == 1
    assert res.json["error"]["code"] == "transport"
    assert "proxy corp" in res.json["error"]["message"]


def test_plain_http_loopback_with_a_token_ignores_host_proxies(
        tmp_path: Path, http_server: GitHttpServer, upstream: Repo,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("GIT_ASKPASS", "/bin/false")
    (tmp_path / "token").write_text(GOOD)
    config = https_config(tmp_path / "git-mirror.yaml", http_server)
    res = sync(config)
    assert res.code == 0, res.stdout
    assert mirror_repo(config).rev("refs/heads/main") == upstream.rev("refs/heads/main")


def test_no_token_declared_means_anonymous(tmp_path: Path, http_server: GitHttpServer) -> None:
    config = https_config(tmp_path / "git-mirror.yaml", http_server)
    text = config.read_text().replace("      token: {file: token}\n", "")
    config.write_text(text)
    res = sync(config)
    assert res.code == 1
    assert "anonymous access" in res.json["error"]["message"]


def test_unreachable_proxy_over_https_is_a_clear_error(tmp_path: Path, https_server: GitHttpServer,
                                                       proxy: ConnectProxy) -> None:
    (tmp_path / "token").write_text(GOOD)
    config = https_config(tmp_path / "git-mirror.yaml", https_server, proxy=proxy)
    proxy.close()  # declared, but nothing listens there any more
    res = sync(config)
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "transport"
    assert "proxy corp" in err["message"] and "no direct connection" in err["message"]
    assert https_server.requests == []
