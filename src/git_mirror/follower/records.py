"""A follower run's record (``runs/<name>.json``) as a typed value: :class:`RunRecord`.

The file's format is the JSON object the record has always been (keys sorted on write):
:meth:`RunRecord.from_json` reads any such object and :meth:`RunRecord.to_json` gives back
exactly its keys, in their order, and values: a key the file lacks stays absent (a record
cut short, or written by an older version or by hand, stays as it was) and keys this version
does not know are kept as they are. A new run's record has every base key, ``null`` until
known; ``phase``, ``triggerStatus``, ``durationMs``, ``detached`` and ``stale`` are added
once they are set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# Record key -> field, for the keys every new record has from the start.
_BASE = {
    "name": "name", "follower": "follower", "repository": "repository", "branch": "branch",
    "lane": "lane", "laneRef": "lane_ref", "node": "node", "trigger": "trigger",
    "status": "status", "exitCode": "exit_code", "snapshotRef": "snapshot_ref",
    "commit": "commit", "pushUrl": "push_url", "log": "log", "workDir": "work_dir",
    "createdAt": "created_at", "startedAt": "started_at", "finishedAt": "finished_at",
    "laneTipBefore": "lane_tip_before", "laneTipAfter": "lane_tip_after",
    "publishedLaneCommit": "published_lane_commit", "flushBefore": "flush_before",
    "flushAfter": "flush_after", "configSha256": "config_sha256", "error": "error",
    "pid": "pid", "pidStart": "pid_start",
}
# Record key -> field, for the keys written only once they have a value.
_LATER = {"phase": "phase", "triggerStatus": "trigger_status", "durationMs": "duration_ms",
          "detached": "detached", "stale": "stale"}
_FIELDS = {**_BASE, **_LATER}
_KEYS = {attr: key for key, attr in _FIELDS.items()}


@dataclass(frozen=True)
class RunRecord:
    """One run of a follower on a local node: what it builds (snapshot ref and commit), the
    lane it publishes to, its owner process, and how it went (status, phase, exit code, error,
    the flushes before and after it, the lane's tip before and after)."""

    name: str = ""
    follower: str | None = None
    repository: str | None = None
    branch: str | None = None
    lane: str | None = None
    lane_ref: str | None = None
    node: str | None = None
    trigger: JSON | None = None
    status: str | None = None
    exit_code: int | None = None
    snapshot_ref: str | None = None
    commit: str | None = None
    push_url: str | None = None
    log: str | None = None
    work_dir: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    lane_tip_before: str | None = None
    lane_tip_after: str | None = None
    published_lane_commit: str | None = None
    flush_before: JSON | None = None
    flush_after: JSON | None = None
    config_sha256: str | None = None
    error: JSON | None = None
    pid: int | None = None
    pid_start: str | None = None
    phase: str | None = None  # while running: "trigger", then "flush after"; at the end "done"
    trigger_status: str | None = None  # the command's own outcome, before the flush after it
    duration_ms: int | None = None
    detached: bool | None = None  # run by a detached worker process (trigger without --wait)
    stale: bool | None = None  # read as failed: its owner process is gone
    # The record's keys, in order (a new record: every base key; a record read from a file:
    # the file's), and the values of keys this version does not know: to_json writes exactly
    # these keys, as a dict would.
    keys: tuple[str, ...] = tuple(_BASE)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record of a run file's JSON object (any JSON object)."""
        values = {attr: data[key] for key, attr in _FIELDS.items() if key in data}
        return cls(**values, keys=tuple(data),
                   extra={k: v for k, v in data.items() if k not in _FIELDS})

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the run file: the record's keys, in its order."""
        return {key: getattr(self, _FIELDS[key]) if key in _FIELDS else self.extra[key]
                for key in self.keys}

    def with_(self, **changes: Any) -> RunRecord:
        """A copy with ``changes`` (fields by their Python names): a key the record lacked
        is added after the others, as ``dict.update`` would."""
        added = tuple(_KEYS[attr] for attr in changes if _KEYS[attr] not in self.keys)
        return dataclasses.replace(self, **changes, keys=self.keys + added)

    @property
    def finished(self) -> bool:
        """No longer ``running`` (succeeded or failed, or lost: see ``stale``)."""
        return self.status != "running"

    def summary(self) -> dict[str, Any]:
        """The short form of the run shown by ``follower list`` and ``status``."""
        keys = ("name", "status", "exitCode", "commit", "snapshotRef", "publishedLaneCommit",
                "startedAt", "finishedAt", "log", "stale")
        data = self.to_json()
        return {k: data[k] for k in keys if k in data}
