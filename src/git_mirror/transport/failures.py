"""From a failed git process to the error that says what to fix, for every transport.

Each transport (file, ssh, https) knows the failures it can recognise in git's stderr: a
table of :class:`Failure` rows, tried in order. The first that matches becomes a NEW error,
built here with its message, code and hint at once:

- :class:`~git_mirror.errors.TransportError` when the declared way to upstream failed (proxy,
  host key, identity, token, TLS);
- :class:`~git_mirror.errors.UpstreamUnreachable` when upstream itself cannot be reached (no
  such host or repository, connection refused), naming the URL and the transport.

A failure no row recognises stays the git error it was; when it has no hint it is built
again (:func:`git_error_like`) with the hint to retry the operation that failed
(:func:`retry_command`). Nothing is changed on the error git raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from git_mirror.errors import GitError, GitMirrorError, TransportError, UpstreamUnreachable


def retry_command(exc: GitError, rid: str) -> str:
    """``flush`` when the failed git process was a push, else ``sync``."""
    op = "flush" if "push" in exc.argv else "sync"
    return f"git-mirror {op} --repo {rid} --confirm --wait"


def git_error_like(exc: GitError, *, stderr: str | None = None,
                   hint: str | None = None) -> GitError:
    """A new error of ``exc``'s class and code, with its message, command and exit code, and
    the ``stderr`` and ``hint`` given (else ``exc``'s)."""
    return type(exc)(exc.message, argv=exc.details.get("command"), returncode=exc.returncode,
                     stderr=exc.stderr if stderr is None else stderr,
                     hint=exc.hint if hint is None else hint, code=exc.code)


@dataclass(frozen=True)
class Failure:
    """One failure a transport recognises in git's stderr.

    ``needles``: the row matches when any of them is in the text; a tuple of strings matches
    when all of its strings are. ``message`` and ``hint`` are :meth:`str.format` templates
    over the transport's context (see :func:`explain`); ``unreachable`` says it is upstream
    itself that cannot be reached, not the declared way to it.
    """

    needles: tuple[str | tuple[str, ...], ...]
    message: str
    hint: str
    unreachable: bool = False

    def matches(self, text: str) -> bool:
        """True when ``text`` holds one of the needles (all strings of a tuple one)."""
        return any(all(n in text for n in ((needle,) if isinstance(needle, str) else needle))
                   for needle in self.needles)


@dataclass(frozen=True)
class Where:
    """How an :class:`~git_mirror.errors.UpstreamUnreachable` names the way that was tried:
    ``suffix`` ends its message (``transport ssh``...), ``details`` go in its JSON object."""

    suffix: str
    details: Mapping[str, Any]


def explain(exc: GitError, rid: str, failures: Sequence[Failure], *, text: str,
            context: Mapping[str, Any], where: Where) -> GitMirrorError:
    """The error for ``exc``: from the first of ``failures`` that matches ``text`` (its
    templates filled from ``context``, which gets ``rid`` and ``retry`` besides), else
    ``exc`` with a hint (:func:`with_retry_hint`)."""
    found = next((f for f in failures if f.matches(text)), None)
    if found is None:
        return with_retry_hint(exc, rid)
    values = {"rid": rid, "retry": retry_command(exc, rid), **context}
    return failure_error(exc, rid, found.message.format(**values), found.hint.format(**values),
                         unreachable=found.unreachable, where=where)


def failure_error(exc: GitError, rid: str, message: str, hint: str, *, unreachable: bool,
                  where: Where) -> TransportError:
    """A new transport error for ``exc`` with ``message`` and ``hint`` (``rid:`` first);
    git's stderr (its end) and exit code in the details."""
    details = {"stderr": (exc.stderr or "")[-2000:], "exitCode": exc.returncode}
    if unreachable:
        return UpstreamUnreachable(f"{rid}: {message} ({where.suffix})", hint=hint,
                                   details={**details, **where.details})
    return TransportError(f"{rid}: {message}", hint=hint, details=details)


def with_retry_hint(exc: GitError, rid: str) -> GitError:
    """``exc`` when it has a hint; else a new one like it whose hint retries the operation."""
    if exc.hint is not None:
        return exc
    return git_error_like(exc, hint=retry_command(exc, rid))
