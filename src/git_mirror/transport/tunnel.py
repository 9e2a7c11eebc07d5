"""An HTTP CONNECT tunnel for OpenSSH's ``ProxyCommand``: stdin/stdout <-> HOST:PORT via a proxy.

Run by the ssh wrapper as ``python -I tunnel.py --fdpass --config FILE HOST PORT``: once the
proxy has said 200, the connected socket is handed to ssh (``ProxyUseFdpass``) and this
process ends, so no relay of ours sits in the data path. Without ``--fdpass`` it relays
stdin/stdout itself. ``FILE`` is a
0600 JSON file under the cache written by :mod:`git_mirror.transport.ssh`::

    {"name": "corp", "url": "http://127.0.0.1:3128", "auth": "user:password" | null}

so the proxy credentials never appear in an argument list. The proxy is only a tunnel: the
bytes that pass are SSH's, encrypted end to end. If the proxy cannot be reached or refuses,
this exits non-zero with one line starting with ``git-mirror-tunnel:`` on stderr and in the
config's ``errorFile`` (the transport turns it into a clear error); there is no fallback to a
direct connection.

Deliberately standard library only and free of package imports, so it starts fast and runs
the same wherever the wrapper finds the interpreter.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import sys
import threading
from urllib.parse import urlsplit

MARK = "git-mirror-tunnel:"
CONNECT_TIMEOUT = 15.0
MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024


class TunnelError(Exception):
    """The tunnel could not be opened; the message names the proxy and what happened."""


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read the proxy's response head (bounded) and not one byte after it.

    Bytes after the head belong to the tunnel (the SSH server's banner may already be
    there), so the head is read a byte at a time: the socket can then be handed to ssh as
    it is. A head is a few dozen bytes. The second value is always empty (kept for callers
    that relay).
    """
    buf = bytearray()
    while not buf.endswith(b"\r\n\r\n"):
        if len(buf) > MAX_HEAD:
            raise TunnelError("the proxy's response head is too long")
        byte = sock.recv(1)
        if not byte:
            raise TunnelError("the proxy closed the connection before answering CONNECT")
        buf += byte
    return bytes(buf[:-4]), b""


def open_tunnel(proxy_url: str, auth: str | None, host: str, port: int,
                timeout: float = CONNECT_TIMEOUT) -> tuple[socket.socket, bytes]:
    """Connect to the proxy, ask for ``CONNECT host:port``; return the socket and early bytes."""
    parts = urlsplit(proxy_url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise TunnelError(f"proxy url {proxy_url} is not http://HOST:PORT")
    try:
        sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    except OSError as exc:
        raise TunnelError(f"cannot reach the proxy at {parts.hostname}:{parts.port}: "
                          f"{exc.strerror or exc}") from None
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if auth:
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(auth.encode()).decode())
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head, rest = _read_head(sock)
    except OSError as exc:
        sock.close()
        raise TunnelError(f"the proxy at {parts.hostname}:{parts.port} failed during CONNECT: "
                          f"{exc.strerror or exc}") from None
    except TunnelError:
        sock.close()
        raise
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or fields[1] != "200":
        sock.close()
        raise TunnelError(f"the proxy at {parts.hostname}:{parts.port} refused CONNECT to "
                          f"{target}: {status_line.strip()[:200]}")
    sock.settimeout(None)
    # git's exchanges are small request/response turns; without NODELAY, Nagle and delayed
    # ACKs add tens of milliseconds to each turn on this extra leg (ssh sets it only for
    # interactive sessions).
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, rest


def relay(sock: socket.socket, early: bytes, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """Copy stdin to the socket and the socket to stdout until either side ends."""
    def upstream() -> None:
        try:
            while True:
                data = os.read(stdin_fd, CHUNK)
                if not data:
                    break
                sock.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()
    try:
        if early:
            os.write(stdout_fd, early)
        while True:
            data = sock.recv(CHUNK)
            if not data:
                break
            view = memoryview(data)
            while view:
                n = os.write(stdout_fd, view)
                view = view[n:]
    except OSError:
        pass
    finally:
        sock.close()


def pass_fd(sock: socket.socket, out_fd: int = 1) -> None:
    """Hand the connected socket to ssh over ``out_fd`` (``ProxyUseFdpass``): ssh then talks
    to the proxy directly, and this process can end."""
    channel = socket.socket(fileno=os.dup(out_fd))
    try:
        socket.send_fds(channel, [b"\0"], [sock.fileno()])
    finally:
        channel.close()
        sock.close()


def main(argv: list[str]) -> int:
    """``[--fdpass] --config FILE HOST PORT``: open the tunnel, then hand the socket to ssh
    (``--fdpass``) or relay stdin/stdout; 0 when done, 1 when the tunnel failed, 2 on usage."""
    fdpass = bool(argv) and argv[0] == "--fdpass"
    if fdpass:
        argv = argv[1:]
    if len(argv) != 4 or argv[0] != "--config":
        sys.stderr.write(f"{MARK} usage: tunnel.py [--fdpass] --config FILE HOST PORT\n")
        return 2
    config_file, host, port_text = argv[1], argv[2], argv[3]
    name = "?"
    try:
        with open(config_file, encoding="utf-8") as fh:
            conf = json.load(fh)
        name = str(conf.get("name") or "?")
        sock, early = open_tunnel(str(conf["url"]), conf.get("auth"), host, int(port_text),
                                  timeout=float(conf.get("connectTimeout") or CONNECT_TIMEOUT))
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"{MARK} proxy {name}: cannot read the tunnel config: {exc}\n")
        return 1
    except TunnelError as exc:
        message = f"{MARK} proxy {name}: {exc}\n"
        sys.stderr.write(message)
        # OpenSSH sends a ProxyCommand's stderr to /dev/null when ControlPersist is on, so
        # the reason also goes to a file the transport reads when ssh fails.
        if conf.get("errorFile"):
            with contextlib.suppress(OSError), open(conf["errorFile"], "w", encoding="utf-8") as fh:
                fh.write(message)
        return 1
    if fdpass:
        pass_fd(sock)
    else:
        relay(sock, early)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
