"""The one place a git process is started.

Every call gets an argument list (never a shell string), a timeout, and an environment built
from an allow-list: nothing of the host's git, proxy or ssh configuration leaks in. Failures
become :class:`~git_mirror.errors.GitError` with the command, exit code and stderr, every
known secret scrubbed out.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code, GitError, GitTimeout
from git_mirror.redact import scrub

if TYPE_CHECKING:  # asyncio is for the server only: the CLI starts without it
    import asyncio

GIT = os.environ.get("GIT_MIRROR_GIT_BINARY", "git")
# Variables of the host that git may see. Everything else (GIT_*, proxies, SSH_AUTH_SOCK,
# HOME-based config) is dropped.
_PASS_THROUGH = ("PATH", "TMPDIR", "SYSTEMROOT")
DEFAULT_TIMEOUT = 120.0
NETWORK_TIMEOUT = 600.0

_counter_lock = threading.Lock()
_spawned = 0


# Descriptors every git process started in the current context inherits: the flock of the
# repository lock (or of a client push), so that the lock stays held while any git process of
# the operation, or any child of one, is alive, even when its parent was killed.
_INHERITED: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
    "git_mirror_inherited_fds", default=())


@contextlib.contextmanager
def children_inherit(fd: int) -> Iterator[None]:
    """Within this block, every git process started (in this context) inherits ``fd``."""
    token = _INHERITED.set((*_INHERITED.get(), fd))
    try:
        yield
    finally:
        _INHERITED.reset(token)


def spawned() -> int:
    """How many git processes this process has started (benchmarks and tests read it)."""
    return _spawned


def _count() -> None:
    global _spawned
    with _counter_lock:
        _spawned += 1


def git_env(extra: Mapping[str, str] | None = None, *,
            allow_protocol: str = "none") -> dict[str, str]:
    """The scrubbed environment every git process runs with."""
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({
        "LC_ALL": "C",
        "LANG": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_ALLOW_PROTOCOL": allow_protocol,
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_SSH_COMMAND": "/bin/false",
        "HOME": os.devnull,
        "GIT_OPTIONAL_LOCKS": "0",
    })
    if extra:
        env.update(extra)
    return env


# What git prints (LC_ALL=C) when a write fails for want of space: strerror(ENOSPC/EDQUOT).
_DISK_FULL = ("No space left on device", "Disk quota exceeded")
DISK_FULL_HINT = "free space on the cache's file system, then run the command again"


LOW_SPACE = 64 << 10  # bytes: below this, a write git just failed is taken for want of space
_WRITE_FAILED = ("couldn't write", "could not write", "unable to write", "failed to write",
                 "write error", "short write", "nable to create", "cannot create",
                 "unable to append")


def disk_full(stderr: str, git_dir: Path | str | None = None) -> bool:
    """True when a git that failed did so because the disk (or quota) is full: its
    ``stderr`` says so, or it says a write failed (git often says only "couldn't write
    '<file>'") and the file system of ``git_dir`` has (almost) no space or no inode left."""
    if any(text in stderr for text in _DISK_FULL):
        return True
    if git_dir is None or not any(text in stderr for text in _WRITE_FAILED):
        return False
    try:
        st = os.statvfs(git_dir)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < LOW_SPACE or (st.f_files > 0 and st.f_favail == 0)


@dataclass(frozen=True)
class GitResult:
    """A git process that ended with an accepted exit code: its (redacted) command, exit
    code, stdout, and stderr (secrets scrubbed)."""

    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        """The stdout as text (UTF-8; undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")


def _redacted(argv: Sequence[str]) -> list[str]:
    return [scrub(a) for a in argv]


def git(args: Sequence[str], *, git_dir: Path | str | None = None, cwd: Path | str | None = None,
        timeout: float = DEFAULT_TIMEOUT, input: bytes | None = None,
        env: Mapping[str, str] | None = None, allow_protocol: str = "none",
        ok_codes: Sequence[int] = (0,), what: str | None = None,
        on_stderr: Callable[[bytes], None] | None = None) -> GitResult:
    """Run ``git ARGS`` and return its result; raise GitError unless the exit code is OK.

    ``on_stderr`` receives git's stderr as it comes (progress for a person), besides the
    result's ``stderr``.
    """
    argv = [GIT]
    if git_dir is not None:
        argv.append(f"--git-dir={git_dir}")
    argv.extend(args)
    _count()
    run: Callable[..., subprocess.CompletedProcess[bytes]] = (
        _run_plain if on_stderr is None else functools.partial(_run_relaying, relay=on_stderr))
    try:
        proc = run(argv, cwd=cwd, input=input, timeout=timeout,
                   env=git_env(env, allow_protocol=allow_protocol),
                   stdin=None if input is not None else subprocess.DEVNULL,
                   pass_fds=_INHERITED.get())
    except subprocess.TimeoutExpired as exc:
        raise GitTimeout(
            f"{what or 'git ' + (args[0] if args else '')} did not finish within {timeout:g}s",
            argv=_redacted(argv), stderr=scrub((exc.stderr or b"").decode("utf-8", "replace")),
        ) from exc
    except OSError as exc:
        raise GitError(f"cannot run git: {exc}", argv=_redacted(argv),
                       hint="install git and make sure it is on PATH") from exc
    stderr = scrub(proc.stderr.decode("utf-8", "replace"))
    if proc.returncode not in ok_codes:
        first = next((ln for ln in stderr.splitlines() if ln.strip()), "")
        full = disk_full(stderr, git_dir)
        raise GitError(
            f"{what or 'git ' + (args[0] if args else '')} failed (exit {proc.returncode})"
            + (f": {first.strip()}" if first else ""),
            argv=_redacted(argv), returncode=proc.returncode, stderr=stderr,
            code=Code.DISK_FULL if full else None,
            hint=DISK_FULL_HINT if full else None,
        )
    return GitResult(argv=_redacted(argv), returncode=proc.returncode, stdout=proc.stdout,
                     stderr=stderr)


def _run_plain(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run`` with stdout and stderr captured, the exit code left to the caller."""
    return subprocess.run(argv, capture_output=True, check=False, **kwargs)


def _run_relaying(argv: list[str], *, relay: Callable[[bytes], None], input: bytes | None = None,
                  timeout: float | None = None, stdin: Any = None,
                  **popen: Any) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run(capture_output=True, check=False)`` (its other arguments the same)
    with stderr passed to ``relay`` while git writes it.

    stderr is a pipe of its own, read by one thread; ``communicate`` keeps the stdin/stdout
    handling and the timeout of the plain path.
    """
    rfd, wfd = os.pipe()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=wfd,
                                stdin=subprocess.PIPE if input is not None else stdin, **popen)
    except BaseException:
        os.close(rfd)
        raise
    finally:
        os.close(wfd)
    chunks: list[bytes] = []

    def pump() -> None:
        with os.fdopen(rfd, "rb", buffering=0) as pipe:
            while data := pipe.read(8192):
                chunks.append(data)
                with contextlib.suppress(Exception):  # progress must never fail git
                    relay(data)

    reader = threading.Thread(target=pump, name="git-stderr", daemon=True)
    reader.start()
    try:
        stdout, _ = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        reader.join(timeout=5)
        exc.stderr = b"".join(chunks)
        raise
    reader.join(timeout=5)  # the pipe ends when git and its helpers (ssh) have exited
    from git_mirror.git.progress import without_progress

    return subprocess.CompletedProcess(argv, proc.returncode, stdout,
                                       without_progress(b"".join(chunks)))


# The pipe buffer of a streaming git process: large enough that a pack is relayed in few,
# big reads, small enough that memory stays flat whatever the repository's size.
STREAM_LIMIT = 256 << 10


class AsyncGit:
    """A running git process whose pipes are asyncio streams.

    Started with :class:`subprocess.Popen` (``vfork``: about 1 ms, where forking a large
    interpreter costs several), its exit is awaited through a pidfd on the event loop: no
    helper thread per process, no process-wide child watcher. ``stdin`` is a
    :class:`asyncio.StreamWriter` (``drain`` gives back-pressure), ``stdout`` and ``stderr``
    are :class:`asyncio.StreamReader` objects with a bounded buffer.
    """

    def __init__(self, popen: subprocess.Popen[bytes], stdin: asyncio.StreamWriter | None,
                 stdout: asyncio.StreamReader, stderr: asyncio.StreamReader) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        import asyncio

        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def returncode(self) -> int | None:
        """The exit code, None while it runs."""
        return self.popen.returncode

    def kill(self) -> None:
        """Kill the process unless it has ended (the client went away)."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()

    async def wait(self) -> int:
        """Its exit code, once it has ended (the wait itself may be cancelled)."""
        import asyncio

        return await asyncio.shield(self._exited)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        def reaped(code: int) -> None:
            if not self._exited.done():
                self._exited.set_result(code)

        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            # No pidfd (old kernel): one waiting thread for this process instead.
            fut = loop.run_in_executor(None, self.popen.wait)
            fut.add_done_callback(lambda f: reaped(f.result()))
            return

        def ready() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            reaped(self.popen.wait())

        loop.add_reader(pidfd, ready)


async def start_git_async(args: Sequence[str], *, env: Mapping[str, str] | None = None,
                          allow_protocol: str = "none", stdin: bool = True,
                          cwd: Path | str | None = None) -> AsyncGit:
    """Start a git process for the asyncio server, with pipes for streaming.

    The HTTP server relays request and response bodies through these pipes with
    back-pressure (``drain`` on stdin, bounded reads on stdout); the caller owns the process
    and must kill it when the client goes away.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    argv = [GIT, *args]
    _count()
    popen = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                             env=git_env(env, allow_protocol=allow_protocol), bufsize=0,
                             pass_fds=_INHERITED.get())
    try:
        readers = []
        for pipe in (popen.stdout, popen.stderr):
            reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
            await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r, loop=loop),  # type: ignore[misc]
                pipe)
            readers.append(reader)
        writer = None
        if stdin:
            transport, protocol = await loop.connect_write_pipe(
                lambda: asyncio.streams.FlowControlMixin(loop), popen.stdin)
            writer = asyncio.StreamWriter(transport, protocol, None, loop)
    except BaseException:
        popen.kill()
        popen.wait()
        raise
    proc = AsyncGit(popen, writer, readers[0], readers[1])
    proc._watch(loop)
    return proc
