"""``POST /hooks/github``: GitHub push webhooks start a sync.

The body is checked against ``X-Hub-Signature-256`` (``sha256=<hex HMAC of the body keyed by
server.webhookSecret>``) with :func:`hmac.compare_digest`: a missing signature is 401, a wrong
one (or no secret declared, so nothing can be verified) is 403. A push event syncs every
declared repository whose upstream path ends with ``repository.full_name`` (with or without
``.git``) or whose id equals ``repository.name``; the answer, 202, goes out before the sync
finishes (the scheduler coalesces a storm of deliveries into at most one more sync).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from git_mirror import logs
from git_mirror.config.secrets import resolve_secret
from git_mirror.config.urls import url_path
from git_mirror.errors import Code

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.redact import Secret
    from git_mirror.server.metrics import Metrics
    from git_mirror.server.scheduler import Scheduler

MAX_BODY = 25 << 20   # GitHub caps payloads at 25 MB
# Metric labels are one of these or "other": an unsigned sender cannot grow the label set.
KNOWN_EVENTS = frozenset({"push", "ping", "create", "delete", "pull_request", "release",
                          "repository", "workflow_run", "check_suite", "status"})
log = logs.get("git_mirror.server.webhook")


def upstream_path(url: str) -> str:
    """The path part of an upstream URL, without leading or trailing slashes.

    ``ssh://git@host:443/org/repo.git`` -> ``org/repo.git``; ``git@host:org/repo`` ->
    ``org/repo``; ``/srv/git/repo.git`` -> ``srv/git/repo.git``.
    """
    return url_path(url)


def matches(rid: str, upstream: str, full_name: str | None, name: str | None) -> bool:
    """CONTRACT section 3: path ends with full_name (with or without .git), or id == name.

    "Ends with" is taken on path segments (``org/repo`` does not match ``myorg/repo``) and
    without regard to case, as GitHub treats owner and repository names.
    """
    if name and rid == name:
        return True
    if not full_name:
        return False
    path = upstream_path(upstream).lower()
    want = full_name.strip("/").lower()
    for candidate in (want, want + ".git"):
        if path == candidate or path.endswith("/" + candidate):
            return True
    return False


# A refused delivery's error object (CONTRACT section 3: every failure carries one).
_REFUSALS: dict[int, tuple[Code, str]] = {
    401: (Code.UNAUTHORIZED, "sign each delivery: X-Hub-Signature-256: sha256=<HMAC-SHA256 "
                             "of the body keyed by server.webhookSecret>"),
    403: (Code.FORBIDDEN, "give the forge the secret server.webhookSecret names, then redeliver"),
    400: (Code.BAD_REQUEST, "send a GitHub push event (application/json, or a form with payload)"),
    413: (Code.TOO_LARGE, "GitHub payloads are at most 25 MB; send a push event"),
}


def _json_of(content_type: str, body: bytes) -> bytes:
    """The JSON document of a delivery: the body, or its ``payload`` form field.

    GitHub sends either ``application/json`` or ``application/x-www-form-urlencoded`` with
    the JSON in ``payload``; the signature covers the body as sent, either way.
    """
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        values = parse_qs(body.decode("utf-8", "replace")).get("payload")
        return values[0].encode() if values else b""
    return body


class _Refused(Exception):
    """A delivery refused: the metric's ``result`` label, the HTTP status, what to say."""

    def __init__(self, result: str, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.status = status
        self.message = message
        self.headers = headers


async def _read_body(request: Request) -> bytes:
    """The body, at most MAX_BODY bytes (413 beyond), read as it streams in."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        raise _Refused("too-large", 413, "payload too large")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY:
            raise _Refused("too-large", 413, "payload too large")
    return bytes(body)


@dataclass(frozen=True)
class PushedRepository:
    """What a delivery says of the repository it is about."""

    full_name: str | None   # "owner/name"
    name: str | None


def _repository_of(content_type: str, body: bytes) -> PushedRepository:
    """The payload's ``repository`` object, its names strings or absent; else 400."""
    try:
        payload = json.loads(_json_of(content_type, body))
    except ValueError:
        raise _Refused("bad-payload", 400, "body is not JSON") from None
    except RecursionError:
        raise _Refused("bad-payload", 400, "body nests JSON too deeply") from None
    repository = payload.get("repository") if isinstance(payload, dict) else None
    if not isinstance(repository, dict):
        raise _Refused("bad-payload", 400, "payload has no repository object")
    wrong = [key for key in ("full_name", "name")
             if repository.get(key) is not None and not isinstance(repository[key], str)]
    if wrong:
        raise _Refused("bad-payload", 400, f"repository.{wrong[0]} must be a string")
    return PushedRepository(repository.get("full_name"), repository.get("name"))


def signature_ok(secret: bytes, body: bytes, header: str) -> bool:
    """``header`` is ``sha256=`` and the HMAC-SHA256 of ``body`` keyed by ``secret``
    (compared in constant time)."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


class GitHubWebhook:
    """The webhook endpoint; the secret is read once, at start."""

    def __init__(self, cfg: LoadedConfig, scheduler: Scheduler, metrics: Metrics) -> None:
        self.cfg = cfg
        self.scheduler = scheduler
        self.metrics = metrics
        ref = cfg.model.server.webhook_secret
        self.secret: Secret | None = (resolve_secret(ref, cfg, role="webhookSecret",
                                                     key=("server", "webhookSecret"))
                                      if ref is not None else None)

    def targets(self, repository: PushedRepository) -> list[str]:
        """The declared repositories a push of ``repository`` concerns (:func:`matches`)."""
        return [rid for rid, repo in self.cfg.model.repositories.items()
                if matches(rid, repo.upstream, repository.full_name, repository.name)]

    async def __call__(self, request: Request) -> Response:
        """Answer one delivery: 202 and a sync request per matching repository, 200 for a
        ping, or a refusal with its error object."""
        event = request.headers.get("x-github-event", "push")
        try:
            body = await _read_body(request)
            self._verify(request.headers.get("x-hub-signature-256"), body)
            if event == "ping":
                return self._answer(event, "ok", 200, {"ok": True, "event": "ping"})
            repository = _repository_of(request.headers.get("content-type", ""), body)
        except _Refused as refused:
            return self._answer(event, refused.result, refused.status,
                                {"ok": False, "message": refused.message},
                                headers=refused.headers)
        if event != "push":
            return self._answer(event, "ignored", 202, {"ok": True, "event": event,
                                                        "repositories": [], "ignored": True})
        return self._accept(event, request.headers.get("x-github-delivery"), repository)

    def _verify(self, signature: str | None, body: bytes) -> None:
        """The delivery is signed with ``server.webhookSecret``; else :class:`_Refused`."""
        if not signature:
            raise _Refused("unsigned", 401, "X-Hub-Signature-256 is missing",
                           {"WWW-Authenticate": 'HMAC realm="git-mirror"'})
        if self.secret is None:
            raise _Refused("no-secret", 403, "server.webhookSecret is not declared: "
                                             "no signature can be verified")
        if not signature_ok(self.secret.reveal().encode(), body, signature):
            raise _Refused("bad-signature", 403, "X-Hub-Signature-256 does not match the body")

    def _accept(self, event: str, delivery: str | None,
                repository: PushedRepository) -> Response:
        """A push event: a sync request for every repository it names."""
        targets = self.targets(repository)
        results = {rid: self.scheduler.request_sync(rid, reason="webhook") for rid in targets}
        full_name = repository.full_name
        log.info("webhook accepted", githubEvent=event, delivery=delivery,
                 fullName=full_name[:300] if full_name is not None else None,
                 repositories=targets, requests=results)
        return self._answer(event, "accepted", 202, {
            "ok": True, "event": event, "repositories": targets,
            "sync": [{"id": rid, "request": r} for rid, r in results.items()]})

    def _answer(self, event: str, result: str, status: int, body: dict[str, Any],
                headers: dict[str, str] | None = None) -> Response:
        self.metrics.webhooks.labels(event if event in KNOWN_EVENTS else "other", result).inc()
        if status >= 400:
            log.warning("webhook refused", githubEvent=event[:100], result=result, status=status)
            code, hint = _REFUSALS.get(status, (Code.ERROR, None))
            body = {**body, "error": {"code": code, "message": body.get("message"), "hint": hint}}
        return JSONResponse(body, status_code=status, headers=headers)
