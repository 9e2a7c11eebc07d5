"""A small real HTTP CONNECT proxy on 127.0.0.1 that counts tunnels and can refuse them.

- ``tunnels``: every CONNECT target it opened (``host:port``), in order;
- ``requests``: every request line it saw (refused ones included);
- ``refuse = True``: answers every CONNECT with 403 and opens nothing;
- ``auth = "user:password"``: requires ``Proxy-Authorization: Basic`` (else 407);
- ``delay_up`` / ``delay_down`` (seconds): every chunk relayed client-to-server / server-to-
  client is delivered that much later, pipelined (a one-way latency, not a throughput cap),
  so tests and benchmarks see a slow, far-away link on loopback;
- ``stall = True``: reads the CONNECT request and then answers nothing, holding the
  connection until the client gives up or :meth:`close` (a proxy that accepts and hangs).

Threads are daemons; :meth:`ConnectProxy.close` stops the listener and closes every tunnel
it holds (which also ends ssh connections kept alive through it).
"""

from __future__ import annotations

import base64
import contextlib
import queue
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

MAX_HEAD = 64 * 1024
IDLE_TIMEOUT = 120.0


@dataclass
class ConnectProxy:
    port: int = 0
    refuse: bool = False
    auth: str | None = None
    delay_up: float = 0.0
    delay_down: float = 0.0
    stall: bool = False
    stalled: int = 0  # CONNECT requests held without an answer
    tunnels: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    auth_seen: list[str | None] = field(default_factory=list)
    _sock: socket.socket | None = None
    _open: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ConnectProxy:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stop.is_set():
                conn.close()
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _handle(self, conn: socket.socket) -> None:
        self._track(conn)
        upstream: socket.socket | None = None
        try:
            conn.settimeout(30)
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) < MAX_HEAD:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            request = lines[0]
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (ln.partition(":") for ln in lines[1:])}
            with self._lock:
                self.requests.append(request)
                self.auth_seen.append(headers.get("proxy-authorization"))
            method, target = [*request.split(" "), "", ""][:2]
            if method != "CONNECT":
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            if self.stall:
                with self._lock:
                    self.stalled += 1
                conn.settimeout(None)
                while not self._stop.is_set():
                    # Hold the connection open, answering nothing, until the client hangs up.
                    sel = selectors.DefaultSelector()
                    sel.register(conn, selectors.EVENT_READ)
                    ready = sel.select(timeout=0.5)
                    sel.close()
                    if ready and not conn.recv(4096):
                        return
                return
            if self.refuse:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            if self.auth is not None:
                want = "Basic " + base64.b64encode(self.auth.encode()).decode()
                if headers.get("proxy-authorization") != want:
                    conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                 b"Proxy-Authenticate: Basic realm=\"test\"\r\n"
                                 b"Content-Length: 0\r\n\r\n")
                    return
            host, _, port = target.rpartition(":")
            try:
                upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            except (OSError, ValueError):
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            self._track(upstream)
            with self._lock:
                self.tunnels.append(target)
            if self.delay_up or self.delay_down:
                time.sleep(self.delay_up + self.delay_down)  # the CONNECT turn crosses the link too
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            if self.delay_up or self.delay_down:
                self._relay_delayed(conn, upstream)
            else:
                self._relay(conn, upstream)
        except OSError:
            pass
        finally:
            for s in (conn, upstream):
                if s is not None:
                    with self._lock:
                        self._open.discard(s)
                    with contextlib.suppress(OSError):
                        s.close()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        for s in (a, b):
            s.settimeout(None)
            # As real proxies do: no Nagle delay on relayed request/response turns.
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        open_sides = 2
        try:
            while open_sides and not self._stop.is_set():
                events = sel.select(timeout=IDLE_TIMEOUT)
                if not events:
                    return
                for key, _ in events:
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    data = src.recv(65536)
                    if not data:
                        sel.unregister(src)
                        open_sides -= 1
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
                        continue
                    dst.sendall(data)
        finally:
            sel.close()

    def _relay_delayed(self, client: socket.socket, server: socket.socket) -> None:
        """Relay both directions, each chunk delivered ``delay_*`` seconds after it arrived."""
        for s in (client, server):
            s.settimeout(None)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
            pending: queue.Queue[tuple[float, bytes]] = queue.Queue()

            def deliver() -> None:
                while True:
                    due, data = pending.get()
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    if not data:
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
                        return
                    try:
                        dst.sendall(data)
                    except OSError:
                        return

            sender = threading.Thread(target=deliver, daemon=True)
            sender.start()
            try:
                while not self._stop.is_set():
                    data = src.recv(65536)
                    if not data:
                        break
                    pending.put((time.monotonic() + delay, data))
            except OSError:
                pass
            pending.put((time.monotonic() + delay, b""))  # end of stream, in order
            sender.join(timeout=IDLE_TIMEOUT)

        up = threading.Thread(target=pump, args=(client, server, self.delay_up), daemon=True)
        up.start()
        pump(server, client, self.delay_down)
        up.join(timeout=IDLE_TIMEOUT)

    def close(self) -> None:
        self._stop.set()
        if self._sock is not None:
            # shutdown() wakes a thread blocked in accept(); close() alone would leave the
            # port listening until that accept() returns.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        with self._lock:
            socks = list(self._open)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
