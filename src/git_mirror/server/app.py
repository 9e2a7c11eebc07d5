"""The ASGI application of ``serve``: one route table, one runtime.

::

    GET  /<id>.git/info/refs?service=...      smart HTTP (server.smart_http)
    POST /<id>.git/git-upload-pack
    POST /<id>.git/git-receive-pack
    POST /hooks/github                         push webhooks (server.webhooks)
    GET  /api/status                           the ``status --json`` object, plus ``server``
    GET  /, /repos/<id>, /followers/<id>       the dashboard (server.dashboard)
    GET  /metrics                              Prometheus text format
    GET  /healthz                              the process answers
    GET  /readyz                               every repository synced once (or grace passed)

A pure ASGI middleware gives every request an id (``X-Request-Id``, taken from the client when
it is a sane token), binds it to the log context, counts the request by service and status
code, and writes one access log line. It never touches bodies, so git's streams pass through
unbuffered; it never logs headers, so no credential reaches a log.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from git_mirror import logs
from git_mirror.errors import GitMirrorError
from git_mirror.server.auth import Authenticator
from git_mirror.server.metrics import CONTENT_TYPE_LATEST, Metrics
from git_mirror.server.relay import Receive, Scope, Send
from git_mirror.server.scheduler import Scheduler
from git_mirror.server.smart_http import SmartHttp, header
from git_mirror.server.webhooks import GitHubWebhook

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
log = logs.get("git_mirror.server.http")


@dataclass
class Runtime:
    """Everything one ``serve`` process shares between requests and background jobs."""

    cfg: LoadedConfig
    node: str
    metrics: Metrics
    auth: Authenticator
    scheduler: Scheduler
    http: SmartHttp
    webhook: GitHubWebhook
    started: float = field(default_factory=time.monotonic)
    draining: bool = False
    stop_deadline: float | None = None   # monotonic; set when shutdown begins

    def begin_shutdown(self, grace: float) -> None:
        """Shutdown begins (once): not ready any more; what runs has ``grace`` seconds."""
        if not self.draining:
            self.draining = True
            self.stop_deadline = time.monotonic() + grace
            log.info("shutdown requested", graceSeconds=grace)


def service_of(scope: Scope) -> str:
    """The ``service`` label of a request: git service, or which endpoint."""
    path = str(scope.get("path", ""))
    if path.endswith("/git-upload-pack"):
        return "git-upload-pack"
    if path.endswith("/git-receive-pack"):
        return "git-receive-pack"
    if path.endswith("/info/refs"):
        qs = bytes(scope.get("query_string", b"")).decode("latin-1")
        if "service=git-receive-pack" in qs:
            return "git-receive-pack"
        return "git-upload-pack" if "service=git-upload-pack" in qs else "dumb"
    return {"/hooks/github": "webhook", "/api/status": "status", "/metrics": "metrics",
            "/healthz": "health", "/readyz": "health"}.get(path, _page_service(path))


def _page_service(path: str) -> str:
    return "dashboard" if path == "/" or path.startswith(("/repos/", "/followers/", "/static/")) \
        else "other"


class RequestContext:
    """Request id, access log and the HTTP request counter, around every request."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request with its id bound to every line logged while it runs."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        status = [500]
        started = time.monotonic()

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                message = dict(message)
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode())]
            await send(message)

        structlog.contextvars.bind_contextvars(requestId=rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            service = service_of(scope)
            self.metrics.http_requests.labels(service, str(status[0])).inc()
            state = scope.get("state") or {}
            log.info("request", method=scope.get("method"), path=scope.get("path"),
                     service=service, status=status[0], user=state.get("principal"),
                     durationMs=int((time.monotonic() - started) * 1000))
            structlog.contextvars.unbind_contextvars("requestId")


class AsgiEndpoint:
    """Marks a plain ASGI callable as a route endpoint (Starlette wraps functions only)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request to the handler as is."""
        await self.handler(scope, receive, send)


def build_runtime(cfg: LoadedConfig, *, node: str = "local", **ops: Any) -> Runtime:
    """Resolve secrets and wire the parts; raises ConfigError when a secret is unreadable."""
    metrics = Metrics()
    auth = Authenticator.from_config(cfg)
    scheduler = Scheduler(cfg, metrics, node=node, **ops)

    def pushed(rid: str) -> None:
        scheduler.request_flush(rid, reason="push")

    http = SmartHttp(cfg, auth, metrics, node=node, on_push=pushed)
    webhook = GitHubWebhook(cfg, scheduler, metrics)
    return Runtime(cfg, node, metrics, auth, scheduler, http, webhook)


async def converge(rt: Runtime) -> None:
    """``apply`` for this node's mirrors before serving them.

    In a pod, ``serve`` is the only thing that runs; the mirrors, their git settings and the
    ref protection hook must be in place before the first push is accepted. This is the very
    operation ``git-mirror apply --confirm`` runs on a local node, not a second code path.
    """
    from git_mirror.mirror.local_apply import apply_local
    from git_mirror.server.jobs import in_thread

    try:
        res = await in_thread(lambda: apply_local(rt.cfg, confirm=True, node=rt.node), "apply")
    except GitMirrorError as exc:
        log.error("apply at start failed; serving what is there", error=exc.to_json())
        return
    changed = [r.id for r in res.repositories if r.action != "unchanged"]
    log.info("mirrors converged to the YAML", changed=changed, orphaned=res.orphaned)


def build_app(rt: Runtime) -> Any:
    """The ASGI app: the route table behind the request-context middleware."""
    from git_mirror.server.dashboard import Dashboard, read_denied

    dashboard = Dashboard(rt)

    async def api_status(request: Request) -> Response:
        from git_mirror.mirror.status import status

        denied = read_denied(rt, request)
        if denied is not None:
            return denied
        try:
            data = await run_in_threadpool(lambda: status(rt.cfg, node=rt.node).to_json())
        except GitMirrorError as exc:
            return JSONResponse({"ok": False, "error": exc.to_json()}, status_code=500)
        data = dict(data)
        data["server"] = rt.scheduler.to_json()
        return JSONResponse(data)

    async def github(request: Request) -> Response:
        return await rt.webhook(request)

    async def metrics(_request: Request) -> Response:
        return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True, "uptimeSeconds": int(time.monotonic() - rt.started)})

    async def readyz(_request: Request) -> Response:
        ready = rt.scheduler.ready() and not rt.draining
        synced = {st.id: {"synced": st.synced} for st in rt.scheduler.repos.values()}
        body = {"ok": ready, "ready": ready, "draining": rt.draining, "repositories": synced}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return PlainTextResponse("not found\n", status_code=404)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await converge(rt)
        await rt.scheduler.start()
        log.info("serving", repositories=sorted(rt.scheduler.repos), node=rt.node)
        try:
            yield
        finally:
            grace = float(rt.cfg.model.server.shutdown_grace_seconds)
            rt.begin_shutdown(grace)
            left = max((rt.stop_deadline or 0) - time.monotonic(), 0.0)
            finished = await rt.scheduler.stop(left)
            log.info("stopped", jobsFinished=finished)

    routes = [
        Route("/{repo}/info/refs", AsgiEndpoint(rt.http.info_refs), methods=["GET"]),
        Route("/{repo}/git-upload-pack", AsgiEndpoint(rt.http.endpoint("git-upload-pack")),
              methods=["POST"]),
        Route("/{repo}/git-receive-pack", AsgiEndpoint(rt.http.endpoint("git-receive-pack")),
              methods=["POST"]),
        Route("/hooks/github", github, methods=["POST"]),
        Route("/api/status", api_status, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *dashboard.routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found})
    return RequestContext(app, rt.metrics)
