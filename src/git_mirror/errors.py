"""The one user-facing error tree.

::

    GitMirrorError            code, message, hint; exit code 1 unless said otherwise
    ├── ConfigError           code "config", exit 2: names file, line and key path
    ├── UsageError            code "usage", exit 2
    ├── GitError              code "git": a git process failed (command, exit code, stderr)
    │   └── GitTimeout        code "timeout"
    ├── TransportError        code "transport": upstream could not be reached as declared
    ├── DriftError            code "drift": what is on disk or in use is not what YAML declares
    ├── BusyError             code "busy": another operation holds the repository lock
    ├── DivergedError         code "diverged": a lane and upstream both moved
    └── NotAppliedError       code "not-applied": the mirror does not exist yet

Every error carries a stable ``code`` (the JSON ``error.code``), a message that says what
happened, and a ``hint`` that names the next command to run. Nothing here ever holds a
secret's value: callers redact before they raise.
"""

from __future__ import annotations

from typing import Any


class GitMirrorError(Exception):
    """Base of every error the CLI and server turn into ``{"error": {...}}``."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of the JSON contract."""
        out: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        out.update(self.details)
        return out


class ConfigError(GitMirrorError):
    """The YAML config is wrong; the message names file, line and key path."""

    code = "config"
    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None, hint: str | None = None) -> None:
        where = ""
        if file is not None:
            where = file + (f":{line}" if line is not None else "")
        prefix = f"{where}: " if where else ""
        keypart = f"{key}: " if key else ""
        super().__init__(f"{prefix}{keypart}{message}",
                         hint=hint or "fix the file, then run: git-mirror validate",
                         details={"file": file, "line": line, "key": key})
        self.file = file
        self.line = line
        self.key = key


class UsageError(GitMirrorError):
    code = "usage"
    exit_code = 2


class GitError(GitMirrorError):
    """A git process ended badly. Keeps the (redacted) command, exit code and stderr."""

    code = "git"

    def __init__(self, message: str, *, argv: list[str] | None = None,
                 returncode: int | None = None, stderr: str = "",
                 hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message, hint=hint, code=code,
                         details={"command": argv, "exitCode": returncode,
                                  "stderr": stderr[-2000:] if stderr else ""})
        self.argv = argv or []
        self.returncode = returncode
        self.stderr = stderr


class GitTimeout(GitError):
    code = "timeout"


class TransportError(GitMirrorError):
    code = "transport"


class DriftError(GitMirrorError):
    code = "drift"


class BusyError(GitMirrorError):
    code = "busy"


class DivergedError(GitMirrorError):
    code = "diverged"


class NotAppliedError(GitMirrorError):
    code = "not-applied"


class IOFailure(GitMirrorError):
    """A file of the cache or the journal could not be read or written (``OSError``)."""

    code = "io"


class DiskFullError(IOFailure):
    """The file system is full (``ENOSPC``/``EDQUOT``): nothing more can be written."""

    code = "disk-full"


def from_os_error(exc: OSError, *, doing: str, hint: str | None = None) -> IOFailure:
    """The user-facing form of ``exc``: ``disk-full`` for a full disk or quota, else ``io``."""
    import errno

    where = f" ({exc.filename})" if exc.filename else ""
    what = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"{doing}: the disk is full{where}: {what}",
                             hint=hint or "free space on the cache's file system, then run the "
                                          "command again")
    return IOFailure(f"{doing}: {what}{where}",
                     hint=hint or "check the path's permissions and file system, then run the "
                                  "command again")
