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

:data:`ERROR_CODES` lists every code the product can emit, with its meaning, and
:data:`WARNING_CODES` every warning; the tables of ``docs/errors.md`` are generated from them
(``python scripts/gen-docs.py``). A new code is added there (a test scans ``src/`` for codes
that are not).
"""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Any, Self


class Code(StrEnum):
    """Every ``error.code`` the product can emit. Raise sites name a member, never a string."""

    ERROR = "error"
    CONFIG = "config"
    USAGE = "usage"
    GIT = "git"
    TIMEOUT = "timeout"
    CONFLICT = "conflict"
    TRANSPORT = "transport"
    UPSTREAM_UNREACHABLE = "upstream-unreachable"
    DRIFT = "drift"
    BUSY = "busy"
    DIVERGED = "diverged"
    NOT_APPLIED = "not-applied"
    PUSH_REJECTED = "push-rejected"
    PARTIAL_SUCCESS = "partial-success"
    NOT_SUPPORTED = "not-supported"
    TRIGGER_FAILED = "trigger-failed"
    EXEC_FAILED = "exec-failed"
    EXEC_NOT_IN_SNAPSHOT = "exec-not-in-snapshot"
    CHECKOUT_FAILED = "checkout-failed"
    SNAPSHOT_MISMATCH = "snapshot-mismatch"
    CONFIG_CHANGED = "config-changed"
    RUN_FAILED = "run-failed"
    RUN_LOST = "run-lost"
    RUN_RUNNING = "run-running"
    INTERRUPTED = "interrupted"
    FLUSH_FAILED = "flush-failed"
    NO_BRANCH = "no-branch"
    NO_SNAPSHOT = "no-snapshot"
    NOT_FOUND = "not-found"
    NOT_MANAGED = "not-managed"
    CLOSEOUT_FAILED = "closeout-failed"
    JOB_FAILED = "job-failed"
    KUBERNETES = "kubernetes"
    KUBE_UNREACHABLE = "kube-unreachable"
    SERVE = "serve"
    INTERNAL = "internal"
    IO = "io"
    DISK_FULL = "disk-full"
    RESOURCE = "resource"
    INTEGRITY = "integrity"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    BAD_REQUEST = "bad-request"
    TOO_LARGE = "too-large"

    @classmethod
    def parse(cls, value: object, default: Code) -> Code:
        """The member whose value is ``value`` (a code read back from a Job's result or a run
        record), else ``default``."""
        try:
            return cls(str(value)) if value else default
        except ValueError:
            return default


# Each code's meaning in one line (the reference's error table is generated from it).
ERROR_CODES: dict[Code, str] = {
    Code.ERROR: "an error without a more specific code",
    Code.CONFIG: "the YAML config is wrong (file, line and key path named); exit 2",
    Code.USAGE: "the command line is wrong (unknown id, undeclared lane, bad option); exit 2",
    Code.GIT: "a git process failed for a reason not classified below (command, exit code, stderr)",
    Code.TIMEOUT: "a git process, a Job or a run did not finish in its time",
    Code.CONFLICT: "a ref moved under a ref transaction; nothing changed",
    Code.TRANSPORT: "the declared way to upstream failed: proxy, host key, identity, token or TLS",
    Code.UPSTREAM_UNREACHABLE: "upstream cannot be reached at its declared URL (any transport)",
    Code.DRIFT: "what is on disk or in use is not what the YAML declares",
    Code.BUSY: "another operation holds the repository or follower lock",
    Code.DIVERGED: "a lane and upstream both moved; left for a person",
    Code.NOT_APPLIED: "the mirror or node does not exist yet: apply first",
    Code.PUSH_REJECTED: "upstream refused the atomic push of the lanes; nothing was pushed",
    Code.PARTIAL_SUCCESS: "the push landed, but the recheck and its recovery sync failed",
    Code.NOT_SUPPORTED: "the command or trigger does not run on this kind of node",
    Code.TRIGGER_FAILED: "a follower's trigger could not start or watch its run",
    Code.EXEC_FAILED: "the exec trigger's command could not be started",
    Code.EXEC_NOT_IN_SNAPSHOT: "a relative exec path names a file the snapshot commit lacks",
    Code.CHECKOUT_FAILED: "the snapshot could not be checked out for a run",
    Code.SNAPSHOT_MISMATCH: "a snapshot ref does not name the commit the run expected",
    Code.CONFIG_CHANGED: "the config changed between a trigger and its background run",
    Code.RUN_FAILED: "the follower's run (exec command or PipelineRun) failed",
    Code.RUN_LOST: "a run ended without recording a result, or its PipelineRun disappeared",
    Code.RUN_RUNNING: "the run is still running; cleanup refuses it",
    Code.INTERRUPTED: "the run was interrupted before it finished",
    Code.FLUSH_FAILED: "the flush after a successful run failed",
    Code.NO_BRANCH: "the follower's branch does not exist upstream",
    Code.NO_SNAPSHOT: "the sync made no snapshot ref for the branch tip",
    Code.NOT_FOUND: "no such run (or object)",
    Code.NOT_MANAGED: "the PipelineRun was not created by git-mirror; left alone",
    Code.CLOSEOUT_FAILED: "a closeout check failed; the checks say which",
    Code.JOB_FAILED: "a Job on a kubernetes node ended without a usable result",
    Code.KUBERNETES: "the Kubernetes API answered with an error (HTTP status named)",
    Code.KUBE_UNREACHABLE: "the Kubernetes API server cannot be reached",
    Code.SERVE: "serve cannot start (e.g. the listen address is taken)",
    Code.INTERNAL: "an unexpected failure inside serve's scheduler (reported, not raised)",
    Code.IO: "an I/O error while reading or writing the cache",
    Code.DISK_FULL: "the disk holding the cache is full",
    Code.RESOURCE: "the input was too large or too deeply nested to process",
    Code.INTEGRITY: "the ref protection or a protected ref is not what git-mirror put there",
    Code.UNAUTHORIZED: "serve: a webhook delivery without X-Hub-Signature-256 (HTTP 401)",
    Code.FORBIDDEN: "serve: a webhook signature that does not match, or no secret declared "
                    "(HTTP 403)",
    Code.BAD_REQUEST: "serve: a signed webhook delivery that is not a push event payload "
                      "(HTTP 400)",
    Code.TOO_LARGE: "serve: a webhook delivery over 25 MB (HTTP 413)",
}

class WarningCode(StrEnum):
    """Every ``warnings[].code``: the command still succeeds."""

    LISTEN_LOOPBACK = "listen-loopback"
    PROXY_LOOPBACK = "proxy-loopback"
    SECRET_NOT_MOUNTABLE = "secret-not-mountable"
    EGRESS_BY_PORT = "egress-by-port"
    CLUSTER_UNREACHABLE = "cluster-unreachable"
    ARGOCD_NOT_FOUND = "argocd-not-found"
    SERVE_NOT_RUNNING = "serve-not-running"
    SERVE_NEEDS_TOKEN = "serve-needs-token"
    INGRESS_WITHOUT_WEBHOOK_SECRET = "ingress-without-webhook-secret"


WARNING_CODES: dict[WarningCode, str] = {
    WarningCode.LISTEN_LOOPBACK: "a kubernetes node's server.listen is a loopback address",
    WarningCode.PROXY_LOOPBACK: "a kubernetes node's proxy is on a loopback address "
                                "(the pod itself)",
    WarningCode.SECRET_NOT_MOUNTABLE: "a {file:} secretRef cannot be mounted into a pod",
    WarningCode.EGRESS_BY_PORT: "a proxy given by host name is pinned by port only in the "
                                "NetworkPolicy",
    WarningCode.CLUSTER_UNREACHABLE: "apply's dry run could not reach the cluster",
    WarningCode.ARGOCD_NOT_FOUND: "the follower's Argo CD Application was not found",
    WarningCode.SERVE_NOT_RUNNING: "a kubernetes node's serve did not answer; a Job read the "
                                   "status",
    WarningCode.SERVE_NEEDS_TOKEN: "a kubernetes node's serve reads only with a token; a Job "
                                   "read the status",
    WarningCode.INGRESS_WITHOUT_WEBHOOK_SECRET: "an Ingress exposes /hooks/github without "
                                                "server.webhookSecret",
}

class GitMirrorError(Exception):
    """Base of every error the CLI and server turn into ``{"error": {...}}``."""

    code: Code = Code.ERROR
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, code: Code | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code
        self.details = details or {}

    def with_hint(self, hint: str) -> Self:
        """A copy of the error with ``hint`` as its next command; the error as raised is left as
        it was (a caller that did not know the retry command gives it this way)."""
        twin = copy.copy(self)
        twin.hint = hint
        return twin

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of the JSON contract."""
        out: dict[str, Any] = {"code": str(self.code), "message": self.message, "hint": self.hint}
        out.update(self.details)
        return out


class ConfigError(GitMirrorError):
    """The YAML config is wrong; the message names file, line and key path."""

    code = Code.CONFIG
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
    """The command line is wrong: an unknown id, an undeclared lane, a bad option (exit 2)."""

    code = Code.USAGE
    exit_code = 2


class GitError(GitMirrorError):
    """A git process ended badly. Keeps the (redacted) command, exit code and stderr."""

    code = Code.GIT

    def __init__(self, message: str, *, argv: list[str] | None = None,
                 returncode: int | None = None, stderr: str = "",
                 hint: str | None = None, code: Code | None = None) -> None:
        super().__init__(message, hint=hint, code=code,
                         details={"command": argv, "exitCode": returncode,
                                  "stderr": stderr[-2000:] if stderr else ""})
        self.argv = argv or []
        self.returncode = returncode
        self.stderr = stderr


class GitTimeout(GitError):
    """A git process did not finish within its timeout and was stopped."""

    code = Code.TIMEOUT


class TransportError(GitMirrorError):
    """The declared way to upstream failed: proxy, host key, identity, token or TLS; never
    followed by a fallback to another way."""

    code = Code.TRANSPORT


class UpstreamUnreachable(TransportError):
    """Upstream itself cannot be reached (no such path, connection refused, no such host),
    whatever the transport; the message names the URL and the transport."""

    code = Code.UPSTREAM_UNREACHABLE


class DriftError(GitMirrorError):
    """What is on disk or in use (a mirror's git config, a node's ConfigMap) is not what the
    YAML declares; ``apply --confirm`` converges it."""

    code = Code.DRIFT


class BusyError(GitMirrorError):
    """Another operation holds the repository's or the follower's lock (``--wait`` waits)."""

    code = Code.BUSY


class DivergedError(GitMirrorError):
    """A lane and upstream both moved: nothing is pushed or rewound; left for a person."""

    code = Code.DIVERGED


class NotAppliedError(GitMirrorError):
    """The mirror or the node does not exist yet: ``apply --confirm`` first."""

    code = Code.NOT_APPLIED


class IOFailure(GitMirrorError):
    """A file of the cache or the journal could not be read or written (``OSError``)."""

    code = Code.IO


class DiskFullError(IOFailure):
    """The file system is full (``ENOSPC``/``EDQUOT``): nothing more can be written."""

    code = Code.DISK_FULL


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

    code = Code.INTEGRITY
