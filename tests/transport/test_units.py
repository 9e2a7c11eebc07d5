"""Pieces of the transports on their own: URL parsing, socket paths, the tunnel, errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from git_mirror.errors import GitError, TransportError
from git_mirror.transport import ssh, tunnel
from git_mirror.transport.https import explain_https
from tests.support.proxy import ConnectProxy


@pytest.mark.parametrize(("url", "user", "host", "port"), [
    ("ssh://git@ssh.github.com:443/example/hwlab.git", "git", "ssh.github.com", 443),
    ("ssh://host/x.git", None, "host", 22),
    ("git@github.com:example/hwlab.git", "git", "github.com", 22),
])
def test_parse_target(url: str, user: str | None, host: str, port: int) -> None:
    t = ssh.parse_target(url)
    assert (t.user, t.host, t.port) == (user, host, port)
    assert t.known_hosts_name() == (host if port == 22 else f"[{host}]:{port}")


def test_socket_path_is_short_enough_for_a_unix_socket(tmp_path: Path) -> None:
    short = ssh._socket_path(Path("/c"), Path("/c/transport/r"), "0123456789abcdef")
    assert short == Path("/c/transport/r/cm-0123456789abcdef")
    deep = tmp_path / ("d" * 120)
    long_ = ssh._socket_path(deep, deep / "transport" / "r", "0123456789abcdef")
    assert long_ is not None and len(str(long_)) <= ssh.MAX_SOCKET_PATH
    assert long_.parent.stat().st_mode & 0o077 == 0
    # Same cache and key, same socket; another cache, another socket.
    assert ssh._socket_path(deep, deep / "transport" / "r", "0123456789abcdef") == long_
    assert ssh._socket_path(deep / "x", deep / "x/transport/r", "0123456789abcdef") != long_


def echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    return srv, int(srv.getsockname()[1])


def test_tunnel_connects_through_the_proxy_with_basic_auth() -> None:
    srv, port = echo_server()
    proxy = ConnectProxy(auth="u:p").start()
    try:
        sock, early = tunnel.open_tunnel(proxy.url, "u:p", "127.0.0.1", port)
        conn, _ = srv.accept()
        sock.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        sock.close()
        conn.close()
        assert early == b""
        assert proxy.tunnels == [f"127.0.0.1:{port}"]
        with pytest.raises(tunnel.TunnelError, match=r"refused CONNECT.*407"):
            tunnel.open_tunnel(proxy.url, "u:wrong", "127.0.0.1", port)
        proxy.refuse = True
        with pytest.raises(tunnel.TunnelError, match=r"refused CONNECT.*403"):
            tunnel.open_tunnel(proxy.url, "u:p", "127.0.0.1", port)
    finally:
        proxy.close()
        srv.close()


def test_tunnel_reports_an_unreachable_proxy() -> None:
    srv, port = echo_server()
    srv.close()  # nothing listens there now
    with pytest.raises(tunnel.TunnelError, match="cannot reach the proxy"):
        tunnel.open_tunnel(f"http://127.0.0.1:{port}", None, "127.0.0.1", 22, timeout=5)


def test_tunnel_main_writes_the_error_file(tmp_path: Path) -> None:
    srv, port = echo_server()
    srv.close()
    conf = tmp_path / "tunnel.json"
    err = tmp_path / "tunnel.err"
    conf.write_text(f'{{"name": "corp", "url": "http://127.0.0.1:{port}", "auth": null, '
                    f'"errorFile": "{err}"}}')
    assert tunnel.main(["--config", str(conf), "127.0.0.1", "22"]) == 1
    assert err.read_text().startswith(f"{tunnel.MARK} proxy corp: cannot reach the proxy")


def _explain_ssh(stderr: str) -> TransportError | GitError:
    exc = GitError("git ls-remote failed", stderr=stderr, returncode=128)
    out = ssh.explain_ssh(exc, rid="r", target=ssh.SshTarget("git", "h", 443), proxy_name="corp",
                          proxy_url="http://p:3128", identity_ref="file:id",
                          known_hosts_ref="file:kh")
    assert isinstance(out, TransportError | GitError)
    return out


@pytest.mark.parametrize(("stderr", "needle"), [
    ("Host key verification failed.\r\nfatal: Could not read",
     "does not match the declared knownHosts"),
    ("git@h: Permission denied (publickey).", "refused the declared identity (file:id)"),
    ("ssh: connect to host h port 443: Connection refused", "refused the connection"),
    ("ssh: Could not resolve hostname h: Name or service not known", "cannot be resolved"),
    ("kex_exchange_identification: Connection closed by remote host", "closed the connection"),
    (f"{tunnel.MARK} proxy corp: the proxy at p:3128 refused CONNECT to h:443: HTTP/1.1 403",
     "through the declared proxy corp"),
])
def test_ssh_failures_become_transport_errors(stderr: str, needle: str) -> None:
    out = _explain_ssh(stderr)
    assert isinstance(out, TransportError)
    assert needle in out.message
    assert out.hint and "git-mirror" in out.hint


def test_an_unknown_ssh_failure_stays_a_git_error_with_a_hint() -> None:
    out = _explain_ssh("fatal: something else entirely")
    assert type(out) is GitError
    assert out.hint == "git-mirror sync --repo r --confirm --wait"


@pytest.mark.parametrize(("stderr", "needle"), [
    ("fatal: unable to access 'https://h/r.git/': Received HTTP code 407 from proxy after CONNECT",
     "declared proxy corp"),
    ("fatal: unable to access 'https://h/r.git/': Failed to connect to p port 3128 after 0 ms",
     "declared proxy corp"),
    ("fatal: Authentication failed for 'https://h/r.git/'", "rejected the declared token"),
    ("fatal: unable to access 'https://h/r.git/': server certificate verification failed.",
     "TLS certificate"),
])
def test_https_failures_become_transport_errors(stderr: str, needle: str) -> None:
    exc = GitError("git ls-remote failed", stderr=stderr, returncode=128)
    out = explain_https(exc, rid="r", url="https://h/r.git", proxy_name="corp",
                        proxy_url="http://p:3128", token_ref="env:T")
    assert isinstance(out, TransportError)
    assert needle in out.message


def test_a_failed_push_points_at_flush() -> None:
    exc = GitError("git push failed", argv=["git", "push", "--porcelain", "ssh://h/r"],
                   stderr="Host key verification failed.", returncode=128)
    out = ssh.explain_ssh(exc, rid="r", target=ssh.SshTarget("git", "h", 22), proxy_name=None,
                          proxy_url=None, identity_ref="file:id", known_hosts_ref="file:kh")
    assert out.hint is not None and out.hint.endswith("git-mirror flush --repo r --confirm --wait")
