"""The per-repository runner of sync and flush: what every repository's run does around its step.

An operation (:class:`RepoOperation`) gives its per-repository step and how its result is
journaled, logged and summed up in a line; :func:`run_repositories` does the rest, the same
way for every operation:

1. the step runs (it takes the repository's lock itself, with :meth:`RepoOperation.locked`,
   when it writes: a dry run takes none);
2. a :class:`~git_mirror.errors.GitMirrorError` becomes the result's error, with the default
   hint (the same command again, ``--wait``) when the raise site gave none; an ``OSError``
   becomes ``io`` or ``disk-full``. Nothing else is caught: a bug is not a result;
3. the duration is measured, the run is journaled (a confirmed run that started: not one
   refused as busy or without a mirror), audited and logged, and the progress line goes out;
4. up to ``jobs`` repositories run at once (:mod:`git_mirror.mirror.parallel`), results in
   declaration order.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from git_mirror.errors import BusyError, GitMirrorError, NotAppliedError, from_os_error
from git_mirror.git import progress
from git_mirror.mirror import journal
from git_mirror.mirror.layout import RepoLayout
from git_mirror.mirror.lock import repo_lock
from git_mirror.mirror.recovery import clear_stale_locks, kept_locks_notes, record_safely

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


class RepoRun(Protocol):
    """What the runner reads and writes in one repository's result."""

    id: str
    ok: bool
    error: GitMirrorError | None
    duration_ms: int
    cleared_locks: list[str]

    def add_warning(self, text: str) -> None:
        """Say ``text`` in the result's warnings (a lock file kept, a journal not written)."""


R = TypeVar("R", bound=RepoRun)


class RepoOperation(ABC, Generic[R]):
    """One operation's per-repository step, and the words of its journal, log and progress.

    ``command`` (``sync``, ``flush``) names the operation everywhere: in the lock file, the
    journal kind (``last-<command>.json``), the default hint and the I/O error message.
    """

    command: str

    def __init__(self, cfg: LoadedConfig, *, confirm: bool, wait: bool) -> None:
        self.cfg = cfg
        self.confirm = confirm
        self.wait = wait

    @abstractmethod
    def new_result(self, rid: str) -> R:
        """An empty result for ``rid``: ok until the step says otherwise."""

    @abstractmethod
    def step(self, layout: RepoLayout, result: R) -> None:
        """The repository's own work; raises on failure, fills ``result`` as it goes."""

    @abstractmethod
    def journal_entry(self, result: R) -> dict[str, Any]:
        """The fields this operation keeps in the journal beside the common ones."""

    @abstractmethod
    def audit(self, layout: RepoLayout, result: R) -> None:
        """Append what the run changed to the repository's audit log."""

    @abstractmethod
    def log(self, result: R) -> None:
        """The log line(s) of one repository's run."""

    @abstractmethod
    def summary(self, result: R) -> str:
        """The one line a person at a terminal sees when the repository is done."""

    def log_outcome(self, logger: logging.Logger, result: R, counts: str,
                    **fields: Any) -> None:
        """The info line of a repository's run: ``<command> <id>: ok, <counts>`` (or ``failed
        [<code>]``, and `` (dry run)``), with its fields for the JSON log."""
        outcome = "ok" if result.ok else f"failed [{result.error.code if result.error else ''}]"
        logger.info("%s %s: %s, %s%s", self.command, result.id, outcome, counts,
                    "" if self.confirm else " (dry run)",
                    extra={"repository": result.id, "ok": result.ok, "dryRun": not self.confirm,
                           **fields, "durationMs": result.duration_ms})

    def retry_hint(self, rid: str) -> str:
        """The hint of an error raised without one: run the same thing again, waiting."""
        return f"git-mirror {self.command} --repo {rid} --confirm --wait"

    @contextmanager
    def locked(self, layout: RepoLayout) -> Iterator[None]:
        """Hold the repository's lock (busy, or waited for with ``--wait``)."""
        with repo_lock(layout.state_dir, layout.id, wait=self.wait, command=self.command):
            yield


def sweep_stale_locks(layout: RepoLayout, result: RepoRun) -> None:
    """Remove the lock files a killed git left (the caller holds the repository lock); the
    removed ones go in ``result.cleared_locks``, those kept for pushes in flight in a warning."""
    result.cleared_locks, kept = clear_stale_locks(layout.git_dir, layout.state_dir)
    for note in kept_locks_notes(kept):
        result.add_warning(note)


def run_repository(op: RepoOperation[R], rid: str) -> R:
    """One repository's run of ``op``: the step, its failure as the result, and the record."""
    result = op.new_result(rid)
    layout = RepoLayout.of(op.cfg, rid)
    started = time.monotonic()
    progress.begin(rid)
    try:
        op.step(layout, result)
    except GitMirrorError as exc:
        result.ok = False
        # the one place a default hint is given
        result.error = exc if exc.hint is not None else exc.with_hint(op.retry_hint(rid))
    except OSError as exc:
        result.ok = False
        result.error = from_os_error(exc, doing=f"{op.command} of {rid} failed")
    result.duration_ms = int((time.monotonic() - started) * 1000)
    if _journaled(op, result):
        note = record_safely(layout.state_dir, op.command, {
            "at": journal.now_iso(), "ok": result.ok, "durationMs": result.duration_ms,
            "recovered": result.cleared_locks,
            "error": result.error.to_json() if result.error else None,
            **op.journal_entry(result),
        })
        if note:
            result.add_warning(note)
    op.audit(layout, result)
    op.log(result)
    progress.done(op.summary(result))
    return result


def _journaled(op: RepoOperation[R], result: R) -> bool:
    """A confirmed run is journaled unless it never started: busy, or no mirror to work on."""
    return op.confirm and not isinstance(result.error, BusyError | NotAppliedError)


def run_repositories(op: RepoOperation[R], ids: Sequence[str], jobs: int) -> list[R]:
    """:func:`run_repository` for every id, ``jobs`` at once; results in the order of ``ids``."""
    from git_mirror.mirror.parallel import each

    return each(ids, lambda rid: run_repository(op, rid), jobs)
