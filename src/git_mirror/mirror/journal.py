"""The record of runs: what status shows as ``lastSync`` / ``lastFlush``.

Each record is written with an atomic rename, and appended to a bounded ``runs.jsonl``.
Nothing here is needed for correctness: refs are the truth; this is the history.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_RUNS = 500


def now_iso() -> str:
    """Now, in UTC, as the journal and the run records write it (``...Z``, to the second)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` by an atomic rename: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # only writers need it: status reads

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record(state_dir: Path, kind: str, entry: dict[str, Any]) -> None:
    """Store ``entry`` as the last ``kind`` run and append it to the history."""
    write_json_atomic(state_dir / f"last-{kind}.json", entry)
    runs = state_dir / "runs.jsonl"
    line = json.dumps({"kind": kind, **entry}, sort_keys=True) + "\n"
    with open(runs, "a", encoding="utf-8") as fh:
        fh.write(line)
    try:
        if runs.stat().st_size > MAX_RUNS * 400:
            lines = runs.read_text(encoding="utf-8").splitlines(keepends=True)[-MAX_RUNS:]
            tmp = runs.with_suffix(".tmp")
            tmp.write_text("".join(lines), encoding="utf-8")
            os.replace(tmp, runs)
    except OSError:
        pass


@dataclass(frozen=True)
class LastRun:
    """The last run of a kind, as its record says (fields as written; absent ones None)."""

    at: Any
    ok: Any
    duration_ms: Any
    error: Any = None

    def to_json(self) -> dict[str, Any]:
        """``{"at", "ok", "durationMs"}``, and ``error`` when the run failed."""
        out = {"at": self.at, "ok": self.ok, "durationMs": self.duration_ms}
        if self.error:
            out["error"] = self.error
        return out


def last(state_dir: Path, kind: str) -> LastRun | None:
    """The last ``kind`` run recorded (None: none yet, or a record that cannot be read)."""
    try:
        data = json.loads((state_dir / f"last-{kind}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return LastRun(data.get("at"), data.get("ok"), data.get("durationMs"), data.get("error"))
