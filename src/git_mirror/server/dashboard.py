"""The dashboard of ``serve``: server-rendered HTML for the people who run the mirror.

::

    GET /                       overall state, repositories, followers, scheduler, events
    GET /repos/<id>             one repository: transport, secrets, runs, sources, lanes
    GET /followers/<id>         one follower: runs and closeouts
    GET /static/<file>          the page's stylesheet and script (package data)

Every page is complete HTML that reads without JavaScript (and, without it, refreshes
itself by a ``<noscript>`` meta refresh). With JavaScript, ``dashboard.js`` asks for the
same URL with ``?fragment=main`` every few seconds and swaps the ``<main>`` element: the
page updates without a reload, rendered by the same templates.

Access: the rules of ``/api/status``, that is of a git read. Anonymous when
``server.anonymousRead`` is true; otherwise a declared token (HTTP Basic password, as
``git`` sends it, or ``Bearer``). A 401 asks the browser for credentials.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from git_mirror.errors import Code, GitMirrorError
from git_mirror.redact import scrub
from git_mirror.server.auth import REALM
from git_mirror.server.views import Board, ErrorView

if TYPE_CHECKING:
    from jinja2 import Environment

    from git_mirror.server.app import Runtime

HERE = Path(__file__).parent
REFRESH_SECONDS = 2.0
# Every open page asks every REFRESH_SECONDS; they share one reading of the cache per second.
FACTS_TTL_SECONDS = 1.0
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# Everything the page loads is its own: no CDN, no inline script.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def short(oid: Any) -> str:
    """The ``short`` filter: the first 12 hex digits of an object id, or ``-``."""
    return str(oid)[:12] if isinstance(oid, str) and oid else "-"


def duration(ms: Any) -> str:
    """The ``duration`` filter: milliseconds as people read them (``1.5 s``, ``3 min``)."""
    if not isinstance(ms, int | float):
        return "-"
    seconds = float(ms) / 1000
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def environment() -> Environment:
    """The templates' Jinja2 environment: autoescaped, with the page's filters."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["short"] = short
    env.filters["duration"] = duration
    return env


LEVELS = {"ok": "Healthy", "warning": "Needs attention", "failing": "Failing"}


def page_title(title: str, facts: Board | None) -> str:
    """The browser tab's title: the overall state first, so that a tab says it too."""
    if facts is None:
        return "Error · git-mirror"
    return f"{LEVELS[facts.level]} · {title} · git-mirror · {facts.node}"


def read_denied(rt: Runtime, request: Request) -> Response | None:
    """None when the caller may read (as for ``/api/status``); else the 401/403 answer."""
    decision = rt.auth.check(request.headers.get("authorization"), write=False)
    if decision.status == 0:
        request.scope.setdefault("state", {})["principal"] = decision.principal.name
        return None
    headers = {"WWW-Authenticate": REALM} if decision.status == 401 else {}
    return PlainTextResponse(decision.message + "\n", status_code=decision.status,
                             headers=headers)


def unreadable(exc: Exception) -> ErrorView:
    """What the error page says when the mirror's state cannot be read."""
    if isinstance(exc, GitMirrorError):
        said = ErrorView.of(exc.to_json())
        # Without a hint of its own: the same reading, with its details.
        return said if said.hint else replace(said, hint="git-mirror status")
    return ErrorView(Code.INTERNAL, f"cannot read the mirror's state: {exc}",
                     "git-mirror status")


# What a page shows of the board: None for the front page, else (context name, the
# repository's or follower's view, or None when it is not declared).
Pick = Callable[["Board"], tuple[str, Any] | None]


class Dashboard:
    """The pages, rendered from :mod:`git_mirror.server.board` with Jinja2 templates."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.env = environment()
        self.static = {p.name: p.read_bytes() for p in (HERE / "static").iterdir()
                       if p.suffix in STATIC_TYPES}
        self._cached: tuple[float, Board] | None = None

    def _facts(self, server: dict[str, Any]) -> Board:
        from git_mirror.server.board import board

        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < FACTS_TTL_SECONDS:
            return cached[1]
        facts = board(self.rt.cfg, self.rt.node, server)
        self._cached = (time.monotonic(), facts)
        return facts

    async def _read(self) -> Board | ErrorView:
        """The board, or why it cannot be read. The scheduler's state is read here, on the
        event loop that changes it; the cache (refs, journals) in a worker thread."""
        server = self.rt.scheduler.to_json()
        try:
            return await run_in_threadpool(self._facts, server)
        # The page's last resort: an unreadable cache is said on the page, not a traceback.
        except Exception as exc:  # noqa: BLE001
            return unreadable(exc)

    async def _page(self, request: Request, template: str, title: str,
                    pick: Pick | None = None) -> Response:
        denied = read_denied(self.rt, request)
        if denied is not None:
            return denied
        read = await self._read()
        context: dict[str, Any] = {"error": None, "refresh": REFRESH_SECONDS, "title": "Error",
                                   "now": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        facts = read if isinstance(read, Board) else None
        if facts is None:
            context["error"] = read
        else:
            context.update(b=facts, title=title)
            found = pick(facts) if pick else None
            if found is not None and found[1] is None:
                return PlainTextResponse("not found\n", status_code=404)
            if found is not None:
                context[found[0]] = found[1]
        context["full_title"] = page_title(str(context["title"]), facts)
        return self._render("error.html" if facts is None else template, context, request,
                            status=500 if facts is None else 200)

    def _render(self, template: str, context: dict[str, Any], request: Request, *,
                status: int) -> Response:
        tmpl = self.env.get_template(template)
        headers = dict(HEADERS)
        if request.query_params.get("fragment") == "main":
            # Only the <main> element's content: what the script swaps in (and the title).
            html = "".join(tmpl.blocks["main"](tmpl.new_context(context)))
            headers["X-Page-Title"] = urllib.parse.quote(context["full_title"])
        else:
            html = tmpl.render(**context)
        return HTMLResponse(scrub(html), status_code=status, headers=headers)

    async def index(self, request: Request) -> Response:
        """``GET /``: everything at a glance."""
        return await self._page(request, "index.html", "Overview")

    async def repository(self, request: Request) -> Response:
        """``GET /repos/<id>``: one repository."""
        rid = request.path_params["rid"]
        return await self._page(request, "repository.html", f"Repository {rid}",
                                lambda b: ("repo", b.repository(rid)))

    async def follower(self, request: Request) -> Response:
        """``GET /followers/<id>``: one follower."""
        fid = request.path_params["fid"]
        return await self._page(request, "follower.html", f"Follower {fid}",
                                lambda b: ("f", b.follower(fid)))

    async def asset(self, request: Request) -> Response:
        """``GET /static/<file>``: the page's stylesheet and script."""
        name = request.path_params["name"]
        body = self.static.get(name)
        if body is None:
            return PlainTextResponse("not found\n", status_code=404)
        return Response(body, media_type=STATIC_TYPES[Path(name).suffix],
                        headers={"Cache-Control": "max-age=300",
                                 "X-Content-Type-Options": "nosniff"})

    def routes(self) -> list[Route]:
        """The dashboard's routes, for the app's route table."""
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/repos/{rid}", self.repository, methods=["GET"]),
            Route("/followers/{fid}", self.follower, methods=["GET"]),
            Route("/static/{name}", self.asset, methods=["GET"]),
        ]
