"""``git-mirror serve``: uvicorn on ``server.listen`` with a staged shutdown.

SIGTERM or SIGINT: stop accepting connections, let in-flight git requests finish, let the
running sync or flush finish, all within ``server.shutdownGraceSeconds``; then return, so the
command exits 0. (uvicorn would re-raise the signal after a graceful stop, turning a clean
shutdown into death by signal; :class:`GracefulServer` does not.)
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from git_mirror import logs
from git_mirror.config.urls import parse_listen
from git_mirror.errors import Code

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.server.app import Runtime

HANDLED = (signal.SIGTERM, signal.SIGINT)


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` too) as (host, port); the config checked it."""
    address = parse_listen(listen)
    return address.host, address.port


def _http_kind() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


class GracefulServer(uvicorn.Server):
    """A uvicorn server whose shutdown is ours: tell the runtime, and never re-raise."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    def handle_exit(self, sig: int, _frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: begin the staged shutdown (a second SIGINT forces the exit).
        The signal handler's interface; the frame is not needed."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
        self.runtime.begin_shutdown(float(self.config.timeout_graceful_shutdown or 0))

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Our handlers for SIGTERM and SIGINT while serving (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """The start-up of uvicorn, then one line that says where it listens."""
        await super().startup(sockets=sockets)
        if self.started:
            logs.get("git_mirror.server").info("listening", host=self.config.host, port=self.port)

    @property
    def port(self) -> int | None:
        """The bound port (useful with port 0), once started."""
        for server in getattr(self, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return None


def make_server(cfg: LoadedConfig, *, node: str = "local", host: str | None = None,
                port: int | None = None, **ops: Any) -> GracefulServer:
    """Build the runtime, the app and the uvicorn server (not started)."""
    from git_mirror.server.app import build_app, build_runtime

    rt = build_runtime(cfg, node=node, **ops)
    app = build_app(rt)
    lhost, lport = split_listen(cfg.model.server.listen)
    config = uvicorn.Config(
        app, host=host or lhost, port=lport if port is None else port,
        # The stock asyncio loop, not uvloop: it starts git with vfork (about 1 ms), where
        # uvloop forks the whole interpreter (about 5 ms), and every git request starts one.
        loop="asyncio", http=_http_kind(), lifespan="on", log_config=None,
        access_log=False, server_header=False, proxy_headers=False,
        timeout_graceful_shutdown=cfg.model.server.shutdown_grace_seconds,
        timeout_keep_alive=30,
    )
    return GracefulServer(config, rt)


@dataclass(frozen=True)
class ServeResult:
    """How a ``serve`` that stopped cleanly ended."""

    node: str
    listen: str
    uptime_seconds: int
    server: dict[str, Any]     # the scheduler's state at the end (as in ``/api/status``)

    def to_json(self) -> dict[str, Any]:
        """The closing record the CLI prints."""
        return {"ok": True, "node": self.node, "listen": self.listen,
                "uptimeSeconds": self.uptime_seconds, "server": self.server}


def serve(cfg: LoadedConfig, *, node: str = "local") -> ServeResult:
    """Run until SIGTERM/SIGINT; return how it ended (the CLI prints it, exit 0)."""
    from git_mirror.errors import GitMirrorError

    logs.configure(logs.level_of(default="info"))
    server = make_server(cfg, node=node)
    started = time.monotonic()
    try:
        server.run()
    except SystemExit as exc:
        # uvicorn exits when it cannot bind or when start-up fails; its log says why.
        raise GitMirrorError(
            f"serve could not start on {cfg.model.server.listen} (exit {exc.code}); "
            "see the log above",
            code=Code.SERVE, hint=f"free the address or change server.listen in {cfg.path}",
        ) from None
    return ServeResult(node, cfg.model.server.listen, int(time.monotonic() - started),
                       server.runtime.scheduler.to_json())
