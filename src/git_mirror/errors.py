"""The one user-facing error tree.

::

    GitMirrorError            code, message, hint; exit code 1 unless said otherwise
    ├── ConfigError           code "config", exit 2: names file, line and key path
    ├── UsageError            code "usage", exit 2
    ├── GitError              code "git": a git process failed (command, exit code, stderr)
    │   └── GitTimeout        code "timeout"
    ├── TransportError        code "transport": the declared way to upstream failed (proxy,
    │   │                     host key, identity, token, TLS)
    │   └── UpstreamUnreachable  code "upstream-unreachable": upstream itself cannot be reached
    ├── DriftError            code "drift": what is on disk or in use is not what YAML declares
    ├── BusyError             code "busy": another operation holds the repository lock
    ├── DivergedError         code "diverged": a lane and upstream both moved
    └── NotAppliedError       code "not-applied": the mirror does not exist yet

Every error carries a stable ``code`` (the JSON ``error.code``), a message that says what
happened, and a ``hint`` that names the next command to run. Nothing here ever holds a
secret's value: callers redact before they raise.

:data:`ERROR_CODES` lists every code the product can emit, with its meaning; the README's
table is this one. A new code is added there (a test scans ``src/`` for codes that are not).
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


class UpstreamUnreachable(TransportError):
    """Upstream itself cannot be reached (no such path, connection refused, no such host),
    whatever the transport; the message names the URL and the transport."""

    code = "upstream-unreachable"


class DriftError(GitMirrorError):
    code = "drift"


class BusyError(GitMirrorError):
    code = "busy"


class DivergedError(GitMirrorError):
    code = "diverged"


class NotAppliedError(GitMirrorError):
    code = "not-applied"


# Every ``error.code`` the product can emit, with its meaning in one line (README: "Error
# codes"). Append new codes; keep one line each.
ERROR_CODES: dict[str, str] = {
    "error": "an error without a more specific code",
    "config": "the YAML config is wrong (file, line and key path named); exit 2",
    "usage": "the command line is wrong (unknown id, undeclared lane, bad option); exit 2",
    "git": "a git process failed for a reason not classified below (command, exit code, stderr)",
    "timeout": "a git process, a Job or a run did not finish in its time",
    "conflict": "a ref moved under a ref transaction; nothing changed",
    "transport": "the declared way to upstream failed: proxy, host key, identity, token or TLS",
    "upstream-unreachable": "upstream cannot be reached at its declared URL (any transport)",
    "drift": "what is on disk or in use is not what the YAML declares",
    "busy": "another operation holds the repository or follower lock",
    "diverged": "a lane and upstream both moved; left for a person",
    "not-applied": "the mirror or node does not exist yet: apply first",
    "push-rejected": "upstream refused the atomic push of the lanes; nothing was pushed",
    "partial-success": "the push landed, but the recheck and its recovery sync failed",
    "not-supported": "the command or trigger does not run on this kind of node",
    "trigger-failed": "a follower's trigger could not start or watch its run",
    "exec-failed": "the exec trigger's command could not be started",
    "exec-not-in-snapshot": "a relative exec path names a file the snapshot commit lacks",
    "checkout-failed": "the snapshot could not be checked out for a run",
    "snapshot-mismatch": "a snapshot ref does not name the commit the run expected",
    "config-changed": "the config changed between a trigger and its background run",
    "run-failed": "the follower's run (exec command or PipelineRun) failed",
    "run-lost": "a run ended without recording a result, or its PipelineRun disappeared",
    "run-running": "the run is still running; cleanup refuses it",
    "interrupted": "the run was interrupted before it finished",
    "flush-failed": "the flush after a successful run failed",
    "no-branch": "the follower's branch does not exist upstream",
    "no-snapshot": "the sync made no snapshot ref for the branch tip",
    "not-found": "no such run (or object)",
    "not-managed": "the PipelineRun was not created by git-mirror; left alone",
    "closeout-failed": "a closeout check failed; the checks say which",
    "job-failed": "a Job on a kubernetes node ended without a usable result",
    "kubernetes": "the Kubernetes API answered with an error (HTTP status named)",
    "kube-unreachable": "the Kubernetes API server cannot be reached",
    "serve": "serve cannot start (e.g. the listen address is taken)",
    "internal": "an unexpected failure inside serve's scheduler (reported, not raised)",
    "io": "an I/O error while reading or writing the cache",
    "disk-full": "the disk holding the cache is full",
    "resource": "the input was too large or too deeply nested to process",
    "integrity": "the ref protection or a protected ref is not what git-mirror put there",
    "unauthorized": "serve: a webhook delivery without X-Hub-Signature-256 (HTTP 401)",
    "forbidden": "serve: a webhook signature that does not match, or no secret declared (HTTP 403)",
    "bad-request": "serve: a signed webhook delivery that is not a push event payload (HTTP 400)",
    "too-large": "serve: a webhook delivery over 25 MB (HTTP 413)",
}

# Codes of ``warnings[]`` entries (the command still succeeds).
WARNING_CODES: dict[str, str] = {
    "listen-loopback": "a kubernetes node's server.listen is a loopback address",
    "proxy-loopback": "a kubernetes node's proxy is on a loopback address (the pod itself)",
    "secret-not-mountable": "a {file:} secretRef cannot be mounted into a pod",
    "egress-by-port": "a proxy given by host name is pinned by port only in the NetworkPolicy",
    "cluster-unreachable": "apply's dry run could not reach the cluster",
    "argocd-not-found": "the follower's Argo CD Application was not found",
    "serve-not-running": "a kubernetes node's serve did not answer; a Job read the status",
    "serve-needs-token": "a kubernetes node's serve reads only with a token; a Job read the status",
    "ingress-without-webhook-secret": "an Ingress exposes /hooks/github without server.webhookSecret",
}


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


class IntegrityError(GitMirrorError):
    """The ref protection or a protected ref is not what git-mirror put there."""

    code = "integrity"
