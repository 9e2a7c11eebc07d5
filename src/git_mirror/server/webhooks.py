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
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from git_mirror.config.secrets import resolve_secret
from git_mirror.errors import Code
from git_mirror import logs

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.redact import Secret
    from git_mirror.server.metrics import Metrics
    from git_mirror.server.scheduler import Scheduler

MAX_BODY = 25 << 20   # GitHub caps payloads at 25 MB
# Metric labels are one of these or "other": an unsigned sender cannot grow the label set.
KNOWN_EVENTS = frozenset({"push", "ping", "create", "delete", "pull_request", "release",
                          "repository", "workflow_run", "check_suite", "status"})
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?[^/:]+:(?!//)(.*)$")
log = logs.get("git_mirror.server.webhook")


def upstream_path(url: str) -> str:
    """The path part of an upstream URL, without leading or trailing slashes.

    ``ssh://git@host:443/org/repo.git`` -> ``org/repo.git``; ``git@host:org/repo`` ->
    ``org/repo``; ``/srv/git/repo.git`` -> ``srv/git/repo.git``.
    """
    if "://" in url:
        path = urlsplit(url).path
    else:
        m = _SCP_LIKE.match(url)
        path = m.group(1) if m and not url.startswith("/") else url
    return path.strip("/")


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
    401: (Code.UNAUTHORIZED, "sign each delivery: X-Hub-Signature-256: sha256=<HMAC-SHA256 of the "
                          "body keyed by server.webhookSecret>"),
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


def signature_ok(secret: bytes, body: bytes, header: str) -> bool:
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

    def targets(self, repository: dict[str, Any]) -> list[str]:
        full_name = repository.get("full_name")
        name = repository.get("name")
        return [rid for rid, repo in self.cfg.model.repositories.items()
                if matches(rid, repo.upstream, full_name if isinstance(full_name, str) else None,
                           name if isinstance(name, str) else None)]

    async def __call__(self, request: Request) -> Response:
        event = request.headers.get("x-github-event", "push")
        delivery = request.headers.get("x-github-delivery")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            return self._answer(event, "too-large", 413, {"ok": False, "message": "payload too large"})
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY:
                return self._answer(event, "too-large", 413,
                                    {"ok": False, "message": "payload too large"})
        sig = request.headers.get("x-hub-signature-256")
        if not sig:
            return self._answer(event, "unsigned", 401, {
                "ok": False, "message": "X-Hub-Signature-256 is missing"},
                headers={"WWW-Authenticate": 'HMAC realm="git-mirror"'})
        if self.secret is None:
            return self._answer(event, "no-secret", 403, {
                "ok": False, "message": "server.webhookSecret is not declared: no signature can be verified"})
        if not signature_ok(self.secret.reveal().encode(), bytes(body), sig):
            return self._answer(event, "bad-signature", 403, {
                "ok": False, "message": "X-Hub-Signature-256 does not match the body"})
        if event == "ping":
            return self._answer(event, "ok", 200, {"ok": True, "event": "ping"})
        try:
            payload = json.loads(_json_of(request.headers.get("content-type", ""), bytes(body)))
        except ValueError:
            return self._answer(event, "bad-payload", 400, {"ok": False, "message": "body is not JSON"})
        except RecursionError:
            return self._answer(event, "bad-payload", 400,
                                {"ok": False, "message": "body nests JSON too deeply"})
        repository = payload.get("repository") if isinstance(payload, dict) else None
        if not isinstance(repository, dict):
            return self._answer(event, "bad-payload", 400,
                                {"ok": False, "message": "payload has no repository object"})
        wrong = [key for key in ("full_name", "name")
                 if repository.get(key) is not None and not isinstance(repository[key], str)]
        if wrong:
            return self._answer(event, "bad-payload", 400, {
                "ok": False, "message": f"repository.{wrong[0]} must be a string"})
        if event != "push":
            return self._answer(event, "ignored", 202, {"ok": True, "event": event,
                                                        "repositories": [], "ignored": True})
        targets = self.targets(repository)
        results = {rid: self.scheduler.request_sync(rid, reason="webhook") for rid in targets}
        full_name = repository.get("full_name")
        log.info("webhook accepted", githubEvent=event, delivery=delivery,
                 fullName=full_name[:300] if isinstance(full_name, str) else None,
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
