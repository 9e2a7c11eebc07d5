"""A follower's state on disk: run records, logs, work directories and the follower lock.

::

    <cache>/state/followers/<id>/lock                  flock held while a run executes
    <cache>/state/followers/<id>/runs/<name>.json      the run record (atomic rename)
    <cache>/state/followers/<id>/runs/<name>.log       the trigger's output
    <cache>/state/followers/<id>/work/<name>/          checkout, private HOME and TMPDIR

A run name is ``<follower>-<UTC time>-<short commit>`` (a suffix keeps it unique). A record
says ``running`` until its owner writes ``succeeded`` or ``failed``; a ``running`` record
whose owner process is gone is reported as ``failed`` (``stale: true``), so a killed run
never blocks anything. Refs in the mirror are the truth; these files are the history.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from git_mirror.errors import BusyError, Code, UsageError
from git_mirror.follower.records import RunRecord
from git_mirror.mirror.journal import now_iso, write_json_atomic
from git_mirror.mirror.lock import flock_within

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
KEEP_RUNS = 30  # finished runs kept per follower; older ones go when a new run starts
LOCK_WAIT_SECONDS = 900.0
# How long a trigger without --wait waits for a holder that has finished its run but not
# yet exited (its outcome is written; only the process exit lets the lock go).
WIND_DOWN_SECONDS = 15.0


def followers_root(cfg: LoadedConfig) -> Path:
    return cfg.cache_dir / "state" / "followers"


@dataclass(frozen=True)
class FollowerState:
    """The paths of one follower's state."""

    id: str
    root: Path

    @classmethod
    def of(cls, cfg: LoadedConfig, fid: str) -> FollowerState:
        """The state of follower ``fid`` in the cache of ``cfg``."""
        return cls(fid, followers_root(cfg) / fid)

    @property
    def runs_dir(self) -> Path:
        """Where the run records and logs are."""
        return self.root / "runs"

    @property
    def work_root(self) -> Path:
        """Where the runs' checkouts (with their HOME and TMPDIR) are."""
        return self.root / "work"

    @property
    def lock_path(self) -> Path:
        """The follower lock's file: held while a run executes."""
        return self.root / "lock"

    def record_path(self, name: str) -> Path:
        """The record file of run ``name``."""
        return self.runs_dir / f"{name}.json"

    def log_path(self, name: str) -> Path:
        """The log file of run ``name`` (the trigger's output)."""
        return self.runs_dir / f"{name}.log"

    def work_dir(self, name: str) -> Path:
        """The work directory of run ``name``."""
        return self.work_root / name

    def new_run_name(self, commit: str, now: datetime | None = None) -> str:
        """Reserve a unique run name (the record file is created empty, exclusively)."""
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        base = f"{self.id}-{stamp}-{commit[:7]}"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        # Runs started within the same second are numbered on, whatever their commit, so
        # that names order runs by start (see _name_key).
        same_second = len(list(self.runs_dir.glob(f"{self.id}-{stamp}-*.json")))
        for n in range(same_second + 1, same_second + 1000):
            name = base if n == 1 else f"{base}-{n}"
            try:
                fd = os.open(self.record_path(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            os.close(fd)
            return name
        raise BusyError(f"follower {self.id}: no free run name for {base}",
                        hint=f"git-mirror follower cleanup-state --follower {self.id} --confirm")

    def run_names(self) -> list[str]:
        """Every recorded run, oldest first (names sort by time)."""
        try:
            names = [p.name[:-5] for p in self.runs_dir.iterdir() if p.name.endswith(".json")]
        except FileNotFoundError:
            return []
        return sorted(names, key=_name_key)

    def load_record(self, name: str) -> RunRecord | None:
        """The record of run ``name``, liveness applied; None when unknown or unreadable."""
        try:
            data = json.loads(self.record_path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        return with_liveness(RunRecord.from_json(data))

    def save(self, record: RunRecord) -> None:
        """Write ``record`` to its file atomically (a reader sees the old or the new one)."""
        write_json_atomic(self.record_path(record.name), record.to_json())

    def runs(self) -> list[RunRecord]:
        """Every readable run record, oldest first, liveness applied."""
        out = []
        for name in self.run_names():
            rec = self.load_record(name)
            if rec is not None:
                out.append(rec)
        return out

    def last_run(self) -> RunRecord | None:
        """The newest readable run record; None when there is none."""
        for name in reversed(self.run_names()):
            rec = self.load_record(name)
            if rec is not None:
                return rec
        return None

    def files_of(self, name: str) -> list[Path]:
        """What belongs to run ``name`` on disk (that exists)."""
        paths = [self.record_path(name), self.log_path(name), self.work_dir(name)]
        return [p for p in paths if p.exists()]

    def remove_run(self, name: str) -> list[str]:
        """Delete run ``name``'s record, log and work directory; return what went."""
        gone = []
        # The record last: an interrupted removal leaves a record that names what is left.
        for p in (self.work_dir(name), self.log_path(name), self.record_path(name)):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                gone.append(str(p))
            elif p.exists():
                p.unlink(missing_ok=True)
                gone.append(str(p))
        return gone

    def prune(self, keep: int | None = None) -> list[str]:
        """Automatic retention: drop finished runs beyond the newest ``keep`` (KEEP_RUNS)."""
        keep = KEEP_RUNS if keep is None else keep
        finished = [r for r in self.runs() if r.finished]
        removed: list[str] = []
        for rec in finished[:-keep] if keep > 0 else finished:
            removed.extend(self.remove_run(rec.name))
        return removed


def _name_key(name: str) -> tuple[str, int]:
    # "<id>-<stamp>-<commit>[-<n>]": the stamp orders runs; the suffix orders within a second.
    m = re.search(r"-(\d{8}T\d{6}Z)-[0-9a-f]{7}(?:-(\d+))?$", name)
    if m is None:
        return (name, 0)
    return (m.group(1), int(m.group(2) or 1))


def find_run(cfg: LoadedConfig, name: str) -> tuple[FollowerState, RunRecord] | None:
    """The run called ``name``, whichever declared or leftover follower it belongs to."""
    check_run_name(name)
    root = followers_root(cfg)
    try:
        dirs = sorted(p for p in root.iterdir() if p.is_dir())
    except FileNotFoundError:
        return None
    for d in dirs:
        st = FollowerState(d.name, d)
        if st.record_path(name).exists():
            rec = st.load_record(name)
            return st, rec if rec is not None else RunRecord.from_json(
                {"name": name, "follower": d.name, "status": FAILED, "unreadable": True})
    return None


def check_run_name(name: str) -> None:
    """Refuse (usage error) a run name that could not be one: it also names files."""
    if not RUN_NAME.match(name) or ".." in name:
        raise UsageError(f"{name!r} is not a run name (letters, digits, '.', '_', '-')",
                         hint="git-mirror follower list")


# -- liveness -------------------------------------------------------------------------------

def process_start(pid: int) -> str | None:
    """An identity of process ``pid`` that survives pid reuse: its start time (Linux /proc).

    None when there is no such process, or only its zombie (it ended; nobody reaped it yet).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rpartition(")")[2].split()
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def alive(pid: int | None, start: str | None) -> bool:
    """True when process ``pid`` runs and is the one that started at ``start``."""
    if not pid:
        return False
    if Path("/proc").is_dir():
        now = process_start(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def with_liveness(record: RunRecord) -> RunRecord:
    """A ``running`` record whose owner is gone reads as ``failed`` with ``stale: true``."""
    if record.status == RUNNING and not alive(record.pid, record.pid_start):
        record = record.with_(status=FAILED, stale=True, error={
            "code": Code.RUN_LOST,
            "message": "the process that ran this run ended without recording a result",
            "hint": f"git-mirror cleanup-runs --pipeline-run {record.name} --confirm"})
    return record


def with_owner(record: RunRecord) -> RunRecord:
    """``record`` naming this process as the run's owner (its pid and start time)."""
    pid = os.getpid()
    return record.with_(pid=pid, pid_start=process_start(pid))


# -- the follower lock ----------------------------------------------------------------------

def _running_run(state: FollowerState) -> str | None:
    return next((r.name for r in reversed(state.runs()) if r.status == RUNNING), None)


@contextmanager
def follower_lock(state: FollowerState, *, wait: bool,
                  timeout: float = LOCK_WAIT_SECONDS) -> Iterator[int]:
    """Hold the follower's lock (one run at a time); yields the lock's file descriptor.

    The descriptor may be handed to a child process (``pass_fds``): the flock belongs to the
    open file, so the child keeps holding it after this process lets go.
    """
    state.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(state.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        acquired = flock_within(fd, wait=wait, timeout=timeout)
        running = None if acquired else _running_run(state)
        if not acquired and not wait and running is None:
            # The holder already wrote its run's outcome and is on its way out: a trigger
            # right after ``status`` said "succeeded" must not be refused for that moment.
            acquired = flock_within(fd, wait=True, timeout=WIND_DOWN_SECONDS)
            running = None if acquired else _running_run(state)
        if not acquired:
            raise BusyError(
                f"follower {state.id} has a run in progress"
                + (f" ({running})" if running else "")
                + ("" if not wait else f" for more than {timeout:g}s"),
                hint=f"git-mirror follower status --follower {state.id}")
        yield fd
    finally:
        os.close(fd)


__all__ = ["FAILED", "RUNNING", "SUCCEEDED", "FollowerState", "RunRecord", "alive",
           "check_run_name", "find_run", "follower_lock", "now_iso", "with_liveness",
           "with_owner"]
