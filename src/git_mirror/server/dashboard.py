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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from git_mirror.errors import Code, GitMirrorError
from git_mirror.redact import scrub
from git_mirror.server.auth import REALM

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
    return str(oid)[:12] if isinstance(oid, str) and oid else "-"


def duration(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    seconds = float(ms) / 1000
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["short"] = short
    env.filters["duration"] = duration
    return env


LEVELS = {"ok": "Healthy", "warning": "Needs attention", "failing": "Failing"}


def page_title(title: str, facts: dict[str, Any] | None) -> str:
    """The browser tab's title: the overall state first, so that a tab says it too."""
    if facts is None:
        return "Error · git-mirror"
    return f"{LEVELS[facts['level']]} · {title} · git-mirror · {facts['node']}"


def read_denied(rt: Runtime, request: Request) -> Response | None:
    """None when the caller may read (as for ``/api/status``); else the 401/403 answer."""
    decision = rt.auth.check(request.headers.get("authorization"), write=False)
    if decision.status == 0:
        request.scope.setdefault("state", {})["principal"] = decision.principal.name
        return None
    headers = {"WWW-Authenticate": REALM} if decision.status == 401 else {}
    return PlainTextResponse(decision.message + "\n", status_code=decision.status,
                             headers=headers)


class Dashboard:
    """The pages, rendered from :mod:`git_mirror.server.board` with Jinja2 templates."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.env = environment()
        self.static = {p.name: p.read_bytes() for p in (HERE / "static").iterdir()
                       if p.suffix in STATIC_TYPES}
        self._cached: tuple[float, dict[str, Any]] | None = None

    def _facts(self, server: dict[str, Any]) -> dict[str, Any]:
        from git_mirror.server.board import board

        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < FACTS_TTL_SECONDS:
            return cached[1]
        facts = board(self.rt.cfg, self.rt.node, server)
        self._cached = (time.monotonic(), facts)
        return facts

    async def _page(self, request: Request, template: str, pick: Any) -> Response:
        denied = read_denied(self.rt, request)
        if denied is not None:
            return denied
        # The scheduler's state is read here, on the event loop that changes it; the
        # cache (refs, journals) in a worker thread.
        server = self.rt.scheduler.to_json()
        try:
            facts = await run_in_threadpool(self._facts, server)
        except GitMirrorError as exc:
            facts = None
            said = exc.to_json()
            if not said.get("hint"):
                said["hint"] = "git-mirror status"  # the same reading, with its details
            error: dict[str, Any] | None = said
        except Exception as exc:  # an unreadable cache: say so on the page, not a traceback
            facts = None
            error = {"code": Code.INTERNAL, "message": f"cannot read the mirror's state: {exc}",
                     "hint": "git-mirror status"}
        else:
            error = None
        context: dict[str, Any] = {"error": error, "refresh": REFRESH_SECONDS, "title": "Error",
                                   "now": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        status = 500 if error else 200
        if facts is not None:
            context["b"] = facts
            found = pick(facts)
            if found is None:
                return PlainTextResponse("not found\n", status_code=404)
            context.update(found)
        context["full_title"] = page_title(str(context.get("title", "")), facts)
        tmpl = self.env.get_template("error.html" if error else template)
        headers = dict(HEADERS)
        if request.query_params.get("fragment") == "main":
            # Only the <main> element's content: what the script swaps in (and the title).
            html = "".join(tmpl.blocks["main"](tmpl.new_context(context)))
            headers["X-Page-Title"] = urllib.parse.quote(context["full_title"])
        else:
            html = tmpl.render(**context)
        return HTMLResponse(scrub(html), status_code=status, headers=headers)

    async def index(self, request: Request) -> Response:
        return await self._page(request, "index.html", lambda b: {"title": "Overview"})

    async def repository(self, request: Request) -> Response:
        rid = request.path_params["rid"]

        def pick(b: dict[str, Any]) -> dict[str, Any] | None:
            repo = next((r for r in b["repositories"] if r["id"] == rid), None)
            return None if repo is None else {"repo": repo, "title": f"Repository {rid}"}
        return await self._page(request, "repository.html", pick)

    async def follower(self, request: Request) -> Response:
        fid = request.path_params["fid"]

        def pick(b: dict[str, Any]) -> dict[str, Any] | None:
            f = next((f for f in b["followers"] if f["id"] == fid), None)
            return None if f is None else {"f": f, "title": f"Follower {fid}"}
        return await self._page(request, "follower.html", pick)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = self.static.get(name)
        if body is None:
            return PlainTextResponse("not found\n", status_code=404)
        return Response(body, media_type=STATIC_TYPES[Path(name).suffix],
                        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/repos/{rid}", self.repository, methods=["GET"]),
            Route("/followers/{fid}", self.follower, methods=["GET"]),
            Route("/static/{name}", self.asset, methods=["GET"]),
        ]
