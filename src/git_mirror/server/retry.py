"""When a failed flush is tried again, and when it waits for a person.

A failed flush is retried after ``flushBackoffSeconds``, doubling up to
``flushBackoffMaxSeconds``, at most ``flushMaxAttempts`` times in a row. An error that no
retry can cure (a lane and upstream both moved; a config problem) is not retried at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from git_mirror.errors import Code, GitMirrorError

if TYPE_CHECKING:
    from git_mirror.config.models import Server

# Flush errors that no retry can cure: a lane and upstream both moved; a config problem.
FINAL_CODES = frozenset({Code.DIVERGED, Code.CONFIG, Code.USAGE, Code.DRIFT, Code.NOT_APPLIED})


@dataclass(frozen=True)
class Verdict:
    """What follows a failed attempt: a retry after ``delay`` seconds, or none."""

    retry: bool
    delay: float = 0.0
    final: bool = False   # the error itself rules out a retry (not the attempt cap)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with a cap on the delay and on consecutive attempts."""

    backoff: float
    backoff_max: float
    max_attempts: int

    @classmethod
    def of(cls, server: Server) -> RetryPolicy:
        """The policy ``server:`` declares."""
        return cls(float(server.flush_backoff_seconds), float(server.flush_backoff_max_seconds),
                   int(server.flush_max_attempts))

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1, 2, ...)."""
        return float(min(self.backoff * 2 ** (failures - 1), self.backoff_max))

    def after(self, failures: int, error: GitMirrorError | None) -> Verdict:
        """The verdict after ``failures`` consecutive failures, the last with ``error``."""
        if error is not None and error.code in FINAL_CODES:
            return Verdict(retry=False, final=True)
        if failures >= self.max_attempts:
            return Verdict(retry=False)
        return Verdict(retry=True, delay=self.delay(failures))
