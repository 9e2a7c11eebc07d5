"""A real smart-HTTP git server on 127.0.0.1: ``git http-backend`` (CGI) behind a small server.

Every request needs HTTP Basic auth with ``username`` / ``token`` (401 otherwise); with
``tls=True`` it serves HTTPS with a self-signed certificate for 127.0.0.1 whose PEM is
``cert`` (declare it as ``caBundle``). ``requests`` records ``(method, path, user, ok)``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_BODY = 64 * 1024 * 1024


def make_cert(base: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for IP 127.0.0.1, valid for two days."""
    cert, key = base / "server.crt", base / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@dataclass
class GitHttpServer:
    root: Path
    username: str
    token: str
    tls_dir: Path | None = None
    port: int = 0
    cert: Path | None = None
    requests: list[tuple[str, str, str | None, bool]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_dir is not None else "http"

    def url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{name}"

    def start(self) -> GitHttpServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while len(out) <= MAX_BODY:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                    raise ValueError("body too large")
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(min(length, MAX_BODY))

            def _serve(self) -> None:
                user = None
                ok = False
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    with contextlib.suppress(ValueError):
                        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                        ok = user == owner.username and password == owner.token
                parts = urlsplit(self.path)
                owner.requests.append((self.command, parts.path, user, ok))
                body = self._body() if self.command == "POST" else b""
                if not ok:
                    msg = b"authentication required\n"
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(owner.root), "GIT_HTTP_EXPORT_ALL": "1",
                    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                    "PATH_INFO": parts.path, "QUERY_STRING": parts.query,
                    "REQUEST_METHOD": self.command, "REMOTE_USER": user or "",
                    "REMOTE_ADDR": "127.0.0.1",
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                }
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                proc = subprocess.run(["git", "http-backend"], input=body, env=env,
                                      capture_output=True, timeout=120, check=False)
                raw = proc.stdout
                sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
                head, _, payload = raw.partition(sep)
                status = 200
                headers = []
                for line in head.decode("latin-1").splitlines():
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.tls_dir is not None:
            self.tls_dir.mkdir(parents=True, exist_ok=True)
            cert, key = make_cert(self.tls_dir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
            self.cert = cert
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
