"""A TCP relay on 127.0.0.1 that slows the server-to-client direction down.

Tests use it to keep a clone in flight long enough to do something to the server meanwhile
(send SIGTERM), without depending on how fast this machine is.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class ThrottledRelay:
    def __init__(self, target_port: int, bytes_per_second: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.rate = bytes_per_second
        self.down_bytes = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for src, dst, slow in ((client, server, False), (server, client, True)):
                threading.Thread(target=self._pipe, args=(src, dst, slow), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        src.settimeout(60)
        step = 16 << 10
        try:
            while not self._stop.is_set():
                data = src.recv(step)
                if not data:
                    break
                dst.sendall(data)
                if slow:
                    with self._lock:
                        self.down_bytes += len(data)
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)
