"""Git's smart HTTP protocol for every declared repository, at ``/<id>.git``.

::

    GET  /<id>.git/info/refs?service=git-upload-pack|git-receive-pack
    POST /<id>.git/git-upload-pack
    POST /<id>.git/git-receive-pack

Each request runs one ``git upload-pack`` / ``git receive-pack --stateless-rpc`` (started by
:func:`git_mirror.git.run.start_git_async`, the git layer's streaming door) and relays bytes
between the client and the process, both ways, in bounded chunks with back-pressure: the
request body goes to git's stdin with ``drain`` after every write, git's stdout goes to the
client with ``await send`` (which waits while the socket's buffer is full). Memory does not
grow with the size of a pack. Protocol v2 is chosen by the client's ``Git-Protocol`` header,
passed to git as ``GIT_PROTOCOL``; ``Content-Encoding: gzip`` request bodies are inflated on the
way, in bounded steps. When the client goes away, the git process is killed. The relay
itself, step by step, is :mod:`git_mirror.server.relay`.

These handlers are plain ASGI callables (no request/response objects) so that nothing buffers
a body behind our back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from git_mirror import logs
from git_mirror.git.run import AsyncGit, children_inherit, start_git_async
from git_mirror.mirror.layout import RepoLayout
from git_mirror.mirror.protect import PUSH_RECORD_ENV
from git_mirror.server.auth import REALM, Authenticator, Principal
from git_mirror.server.jobs import current_request_id
from git_mirror.server.relay import Receive, Relay, Scope, Send, pkt_line, plain

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.server.metrics import Metrics

SERVICES = ("git-upload-pack", "git-receive-pack")
PUSH_LOCK_WAIT = 30.0     # seconds a push waits while sync or flush sweeps stale lock files
_PROTOCOL_RE = re.compile(r"^[A-Za-z0-9=:._-]{1,256}$")
ENCODINGS = ("", "identity", "gzip", "x-gzip")

log = logs.get("git_mirror.server.http")


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


@dataclass
class GitCall:
    """What one request asks git to do."""

    rid: str
    git_dir: Path
    service: str          # git-upload-pack | git-receive-pack
    advertise: bool       # info/refs
    principal: Principal
    record: Path | None = None   # where the hook writes the updates it accepted (pushes)


class SmartHttp:
    """The three git endpoints, for every repository declared in the config."""

    def __init__(self, cfg: LoadedConfig, auth: Authenticator, metrics: Metrics, *,
                 node: str = "local",
                 on_push: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.auth = auth
        self.metrics = metrics
        self.node = node
        self.on_push = on_push
        self.repos = {rid: RepoLayout.of(cfg, rid).git_dir for rid in cfg.model.repositories}
        self.state_dirs = {rid: RepoLayout.of(cfg, rid).state_dir for rid in cfg.model.repositories}
        self.config_path = str(cfg.path.resolve())
        self._active: set[AsyncGit] = set()

    # --- routing -----------------------------------------------------------------------
    def repository(self, name: str) -> str | None:
        """``hwlab.git`` or ``hwlab`` -> ``hwlab`` when declared."""
        if name.endswith(".git") and name[:-4] in self.repos:
            return name[:-4]
        return name if name in self.repos else None

    async def info_refs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /<id>.git/info/refs?service=...``: the refs advertisement."""
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        service = (query.get("service") or [""])[0]
        if service not in SERVICES:
            await plain(send, 403, "only the smart HTTP protocol is served: "
                                   "use a git client newer than 1.6.6")
            return
        call = await self._prepare(scope, send, service, advertise=True)
        if call is not None:
            await self._run(scope, receive, send, call)

    def endpoint(self, service: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        """The ASGI handler of ``POST /<id>.git/<service>``."""
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            ctype = header(scope, b"content-type") or ""
            if ctype.split(";")[0].strip() != f"application/x-{service}-request":
                await plain(send, 415, f"expected Content-Type application/x-{service}-request")
                return
            call = await self._prepare(scope, send, service, advertise=False)
            if call is not None:
                await self._run(scope, receive, send, call)
        return handle

    async def _prepare(self, scope: Scope, send: Send, service: str, *,
                       advertise: bool) -> GitCall | None:
        name = str(scope.get("path_params", {}).get("repo", ""))
        rid = self.repository(name)
        if rid is None:
            await plain(send, 404, f"repository {name!r} is not served here")
            return None
        write = service == "git-receive-pack"
        decision = self.auth.check(header(scope, b"authorization"), write=write)
        scope.setdefault("state", {})["principal"] = decision.principal.name
        if decision.status:
            extra = [(b"www-authenticate", REALM.encode())] if decision.status == 401 else []
            await plain(send, decision.status, decision.message, extra)
            return None
        git_dir = self.repos[rid]
        reason = await self._unprotected(rid) if write else None
        if reason is not None:
            await plain(send, 503, f"pushes to {rid} are off: {reason}; "
                                   "run: git-mirror apply --confirm")
            return None
        if not (git_dir / "HEAD").exists():
            await plain(send, 503, f"repository {rid} has no mirror yet: its first sync has not "
                                   "finished", [(b"retry-after", b"10")])
            return None
        return GitCall(rid, git_dir, service, advertise, decision.principal)

    async def _unprotected(self, rid: str) -> str | None:
        """Why the ref protection is not intact for ``rid`` (None: it is).

        The hook must be the one git-mirror installs, in force through ``core.hooksPath``,
        with no other hook beside it (:mod:`git_mirror.mirror.integrity`). Without it nothing
        would stop a client from moving a source branch or a snapshot, so a push is refused
        rather than trusted.
        """
        from git_mirror.mirror.integrity import protection_problems

        problems = await asyncio.to_thread(protection_problems, self.cfg, rid)
        return problems[0].message if problems else None

    # --- the relay ---------------------------------------------------------------------
    def _env(self, scope: Scope, call: GitCall) -> dict[str, str]:
        env = {"GIT_MIRROR_CONFIG": self.config_path, "GIT_MIRROR_REPOSITORY": call.rid,
               "GIT_MIRROR_NODE": self.node}
        proto = header(scope, b"git-protocol")
        if proto and _PROTOCOL_RE.match(proto):
            env["GIT_PROTOCOL"] = proto
        if call.service == "git-receive-pack":
            who = call.principal.name or "anonymous"
            if call.record is not None:
                env[PUSH_RECORD_ENV] = str(call.record)
            env.update({"REMOTE_USER": who, "GIT_MIRROR_PUSHER": who,
                        "GIT_COMMITTER_NAME": who, "GIT_COMMITTER_EMAIL": f"{who}@git-mirror",
                        "GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": f"{who}@git-mirror"})
        return env

    async def _run(self, scope: Scope, receive: Receive, send: Send, call: GitCall) -> None:
        push = call.service == "git-receive-pack" and not call.advertise
        if push:
            call.record = _record_path(self.cfg, call.rid)
        env = self._env(scope, call)
        args, content_type, prefix = _command(call, env)
        encoding = (header(scope, b"content-encoding") or "").strip().lower()
        if encoding not in ENCODINGS:
            await plain(send, 415, f"Content-Encoding {encoding!r} is not supported (gzip is)")
            return
        started = time.monotonic()
        async with client_push(self.state_dirs[call.rid] if push else None) as held:
            if not held:
                await plain(send, 503, f"pushes to {call.rid} are paused for a moment "
                                       "(the mirror is being repaired); push again",
                            [(b"retry-after", b"5")])
                return
            rc, sent = await self._relay(receive, send, args, env, content_type, prefix,
                                         body=not call.advertise,
                                         gzip=encoding in ("gzip", "x-gzip"), what=call)
        log.info("git request", repository=call.rid, service=call.service,
                 advertise=call.advertise, user=call.principal.name, exitCode=rc, bytes=sent,
                 durationMs=int((time.monotonic() - started) * 1000))
        if push:
            await self._after_push(call)

    async def _after_push(self, call: GitCall) -> None:
        """Whatever the exit code and however the client left: record what landed, and
        flush when a lane is ahead of its stage ref (decided from the refs)."""
        from git_mirror.mirror.pushes import after_receive_pack

        try:
            due = await asyncio.to_thread(after_receive_pack, self.cfg, call.rid, call.record,
                                          token=call.principal.name,
                                          request_id=current_request_id())
        # The push is answered and done either way: whatever went wrong in this bookkeeping,
        # a flush is still asked for, and the next sync looks again.
        except Exception as exc:  # noqa: BLE001
            log.warning("after-push check failed", repository=call.rid, error=str(exc))
            due = True
        if due and self.on_push is not None:
            self.on_push(call.rid)

    async def _relay(self, receive: Receive, send: Send, args: list[str], env: dict[str, str],
                     content_type: bytes, prefix: bytes, *, body: bool, gzip: bool,
                     what: GitCall) -> tuple[int | None, int]:
        """Run git and relay both ways (:class:`~git_mirror.server.relay.Relay`); returns
        (exit code or None when killed, bytes sent). The process counts as in flight until
        it is reaped."""
        self.metrics.http_in_flight.inc()
        try:
            proc = await start_git_async(args, env=env, stdin=body)
            self._active.add(proc)
            try:
                return await Relay(proc, receive, send, call=what, content_type=content_type,
                                   prefix=prefix, body=body, gzip=gzip).run()
            finally:
                self._active.discard(proc)
        finally:
            self.metrics.http_in_flight.dec()

    @property
    def in_flight(self) -> int:
        """The number of git processes running for requests now."""
        return len(self._active)


@contextlib.asynccontextmanager
async def client_push(state_dir: Path | None, *,
                      wait: float | None = None) -> AsyncIterator[bool]:
    """Hold the shared ``ref-writers`` flock for one client push (None: nothing to hold).

    ``receive-pack`` and every child of it inherit the descriptor, so the flock outlives a
    killed server while they run: sync and flush remove a git lock file only when they can
    take it exclusively (:mod:`git_mirror.mirror.recovery`). They hold it for a moment only;
    a push waits up to ``wait`` seconds for it, else it is told to come again.
    """
    if state_dir is None:
        yield True
        return
    from git_mirror.mirror.recovery import open_writers, try_shared

    try:
        fd = await asyncio.to_thread(open_writers, state_dir)
    except OSError as exc:
        log.warning("cannot open the ref-writers lock; push refused", error=exc.strerror)
        yield False
        return
    try:
        deadline = time.monotonic() + (PUSH_LOCK_WAIT if wait is None else wait)
        while not try_shared(fd):
            if time.monotonic() >= deadline:
                yield False
                return
            await asyncio.sleep(0.02)
        with children_inherit(fd):
            yield True
    finally:
        os.close(fd)


def _command(call: GitCall, env: dict[str, str]) -> tuple[list[str], bytes, bytes]:
    """The arguments of git for ``call``, the answer's content type, and the prefix an info/refs
    answer starts with (none for a protocol v2 upload-pack advertisement)."""
    args = [call.service.removeprefix("git-"), "--stateless-rpc"]
    if call.service == "git-upload-pack":
        args.append("--strict")
    if call.advertise:
        args.append("--advertise-refs")
    args.append(str(call.git_dir))
    kind = "advertisement" if call.advertise else "result"
    content_type = f"application/x-{call.service}-{kind}".encode()
    v2 = "version=2" in env.get("GIT_PROTOCOL", "").split(":")
    prefix = b""
    if call.advertise and not (v2 and call.service == "git-upload-pack"):
        prefix = pkt_line(f"# service={call.service}\n") + b"0000"
    return args, content_type, prefix


def _record_path(cfg: LoadedConfig, rid: str) -> Path | None:
    """A fresh file name for the updates the hook accepts in one push request."""
    import uuid

    directory = RepoLayout.of(cfg, rid).state_dir / "pushes"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory / uuid.uuid4().hex


__all__ = ["SERVICES", "SmartHttp"]
