"""One git request relayed: the request body to git's stdin, git's stdout to the client.

::

    Relay.run()
      ├─ pump (task)      request body -> git's stdin (gzip inflated in bounded steps),
      │                   then wait for the client to hang up
      ├─ stderr (task)    the last STDERR_KEEP bytes of git's stderr, for the answer and log
      ├─ relay output     git's stdout -> the client, in chunks of at most CHUNK bytes
      ├─ exit code        waited for, within IDLE_TIMEOUT
      └─ answer's end     200 and the last empty chunk; or, when git wrote nothing, 400 for a
                          request that git (or the gzip inflater) refused, 500 otherwise

Back-pressure both ways: ``drain`` after every write to git, ``await send`` (which waits
while the socket's buffer is full) for every chunk to the client. Memory does not grow with
the size of a pack.

A client that goes away ends its git process, except a ``receive-pack`` that has its whole
request: it may be updating refs, so it finishes (its answer is read and dropped) and the
refs, not the client, tell what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from git_mirror import logs
from git_mirror.redact import scrub

if TYPE_CHECKING:
    from git_mirror.git.run import AsyncGit
    from git_mirror.server.smart_http import GitCall

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHUNK = 256 << 10          # one read from git's stdout, at most
INFLATE_STEP = 1 << 18     # inflated bytes per step of a gzip body: a small body cannot explode
IDLE_TIMEOUT = 600.0       # seconds without a byte from git before the request is cut
STDERR_KEEP = 16 << 10
NO_CACHE = [(b"cache-control", b"no-cache, max-age=0, must-revalidate"),
            (b"expires", b"Fri, 01 Jan 1980 00:00:00 GMT"), (b"pragma", b"no-cache")]
# What git says (LC_ALL=C) when the request itself is wrong: its pkt-line framing, an unknown
# protocol v2 command or capability, a line where git expected another. Nothing here can come
# from a fault of the mirror's own (a corrupt object, a full disk): those stay 500.
_REQUEST_FAULT = re.compile(r"protocol error|bad line length|invalid command|unknown capability"
                            r"|unexpected line|expected flush|expected SHA1 list|expected to get")

log = logs.get("git_mirror.server.http")


def pkt_line(text: str) -> bytes:
    """``text`` as one pkt-line (four hex digits of length, then the bytes)."""
    data = text.encode()
    return f"{len(data) + 4:04x}".encode() + data


async def plain(send: Send, status: int, text: str,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A short text/plain answer (errors, refusals): git shows its body to the user."""
    body = (text.rstrip("\n") + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *NO_CACHE,
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def kill(proc: AsyncGit) -> None:
    """Kill ``proc`` unless it has exited."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


async def _write_inflated(proc: AsyncGit, inflater: Any, data: bytes, *,
                          final: bool) -> None:
    """Inflate ``data`` in bounded steps, writing each step before inflating more."""
    assert proc.stdin is not None
    buf = data
    while True:
        out = inflater.decompress(buf, INFLATE_STEP)
        if out:
            proc.stdin.write(out)
            await proc.stdin.drain()
        buf = inflater.unconsumed_tail
        if not buf:
            break
    if final:
        rest = inflater.flush()
        if rest:
            proc.stdin.write(rest)
            await proc.stdin.drain()


class Relay:
    """One running git process and the HTTP exchange it answers."""

    def __init__(self, proc: AsyncGit, receive: Receive, send: Send, *, call: GitCall,
                 content_type: bytes, prefix: bytes, body: bool, gzip: bool) -> None:
        self.proc = proc
        self.receive = receive
        self.send = send
        self.call = call
        self.content_type = content_type
        self.prefix = prefix
        self.body = body
        self.gzip = gzip
        # A receive-pack with its whole request runs to its end, client or not.
        self.finish = call.service == "git-receive-pack" and body
        self.stderr = bytearray()
        self.gone = asyncio.Event()         # the client went away
        self.bad_body: str | None = None    # why the request body could not be given to git
        self.started = False                # the 200 answer has begun
        self.sent = 0

    async def run(self) -> tuple[int | None, int]:
        """Relay both ways; (exit code, or None when killed; bytes sent to the client)."""
        err_task = asyncio.create_task(self._read_stderr())
        pump_task = asyncio.create_task(self._pump())
        try:
            await self._relay_output()
            rc = await self._exit_code(err_task)
            if self.gone.is_set():
                return (rc if self.finish else None), self.sent
            if not self.started and (self.bad_body is not None or rc != 0):
                await self._refuse()
                return rc, self.sent
            await self._end(rc)
            return rc, self.sent
        finally:
            await self._clean_up(pump_task, err_task)

    # --- the request body ---------------------------------------------------------------
    async def _pump(self) -> None:
        """Request body -> git's stdin; then wait for the client to hang up."""
        try:
            if not await self._feed_body():
                return
        except (BrokenPipeError, ConnectionResetError):
            pass  # git stopped reading: its answer (or exit code) says why.
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        await self._await_hangup()

    async def _feed_body(self) -> bool:
        """Give git the whole request body; False when the request ended it (the client
        left, or its gzip body is corrupt) and git was killed."""
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if self.gzip else None
        more = self.body
        while more:
            msg = await self.receive()
            if msg["type"] == "http.disconnect":
                self._client_gone(end_git=True)
                return False
            more = bool(msg.get("more_body", False))
            data = bytes(msg.get("body", b""))
            try:
                await self._write(inflater, data, final=not more)
            except zlib.error as exc:
                self.bad_body = f"the gzip request body is corrupt: {exc}"
                kill(self.proc)
                return False
        return True

    async def _write(self, inflater: Any, data: bytes, *, final: bool) -> None:
        if inflater is not None:
            await _write_inflated(self.proc, inflater, data, final=final)
        elif data:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()

    async def _await_hangup(self) -> None:
        while True:
            msg = await self.receive()
            if msg["type"] == "http.disconnect":
                self._client_gone(end_git=not self.finish)
                return

    def _client_gone(self, *, end_git: bool) -> None:
        self.gone.set()
        if end_git:
            kill(self.proc)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.stderr.extend(chunk)
            del self.stderr[:-STDERR_KEEP]

    # --- git's answer -------------------------------------------------------------------
    async def _relay_output(self) -> None:
        """The output of git -> the client, until git closes it (drained, never sent, once the
        client is gone: a receive-pack that finishes must not block on a full pipe)."""
        while chunk := await self._next_chunk():
            if self.gone.is_set():
                if self.finish:
                    continue
                return
            await self._start()
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
            self.sent += len(chunk)

    async def _next_chunk(self) -> bytes:
        """The next bytes of git's stdout; b"" at its end, or when git was idle too long
        (then it is killed)."""
        assert self.proc.stdout is not None
        try:
            return await asyncio.wait_for(self.proc.stdout.read(CHUNK), IDLE_TIMEOUT)
        except TimeoutError:
            log.warning("git request idle too long; cut", repository=self.call.rid,
                        service=self.call.service, idleSeconds=IDLE_TIMEOUT)
            kill(self.proc)
            return b""

    async def _exit_code(self, err_task: asyncio.Task[None]) -> int | None:
        """The exit code of git; None when it was killed or would not exit."""
        try:
            rc: int | None = await asyncio.wait_for(self.proc.wait(), IDLE_TIMEOUT)
        except TimeoutError:
            kill(self.proc)
            rc = None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(err_task, 5)
        return None if rc is not None and rc < 0 else rc

    async def _start(self) -> None:
        """The 200 answer's head and the advertisement's prefix, once."""
        if self.started:
            return
        self.started = True
        await self.send({"type": "http.response.start", "status": 200,
                         "headers": [(b"content-type", self.content_type), *NO_CACHE]})
        if self.prefix:
            await self.send({"type": "http.response.body", "body": self.prefix,
                             "more_body": True})
        self.sent += len(self.prefix)

    async def _refuse(self) -> None:
        """Nothing was sent and git failed: 400 when the request was at fault, 500 otherwise."""
        if self.bad_body is not None:
            await plain(self.send, 400, self.bad_body)
            return
        text = scrub(bytes(self.stderr).decode("utf-8", "replace")).strip().splitlines()
        said = f": {text[-1]}" if text else ""
        if self.body and text and _REQUEST_FAULT.search(text[-1]):
            await plain(self.send, 400, f"git {self.call.service} refused the request{said}")
            return
        await plain(self.send, 500, f"git {self.call.service} failed{said}")

    async def _end(self, rc: int | None) -> None:
        await self._start()
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        if rc != 0 and self.stderr:
            log.warning("git exited badly", repository=self.call.rid,
                        service=self.call.service, exitCode=rc,
                        stderr=scrub(bytes(self.stderr[-2000:]).decode("utf-8", "replace")))

    async def _clean_up(self, *tasks: asyncio.Task[None]) -> None:
        """Whatever happened: git killed, the helper tasks ended, the process reaped."""
        kill(self.proc)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 10)
