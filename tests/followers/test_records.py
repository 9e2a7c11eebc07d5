"""Run records as typed values (RunRecord): the file format is unchanged, byte for byte, for
the records real runs write, and a record read back and written again is the same file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from git_mirror.config import load_config
from git_mirror.follower import state as st
from git_mirror.follower.records import RunRecord
from git_mirror.mirror.journal import write_json_atomic
from tests.support.cli import CliResult
from tests.support.follower import FOLLOWER, Build, wait_for_status

Cli = Callable[..., CliResult]


def _trigger(cli: Cli, *extra: str) -> CliResult:
    return cli("--json", "follower", "trigger", "--follower", FOLLOWER, "--confirm", *extra)


def test_real_run_records_round_trip_byte_for_byte(
        cli: Cli, build: Build, config: Path, tmp_path: Path) -> None:
    """A succeeded run (--wait), a failed one, and a run of the detached worker (no --wait):
    each file read as a RunRecord and written back is the same bytes, and what the follower
    package reads from it is what the file says."""
    assert _trigger(cli, "--wait").code == 0
    build.mode("fail")
    assert _trigger(cli, "--wait").code == 1
    build.mode("ok")
    assert _trigger(cli).code == 0
    wait_for_status(cli, "succeeded")
    state = st.FollowerState.of(load_config(config), FOLLOWER)
    names = state.run_names()
    assert len(names) == 3
    for name in names:
        original = state.record_path(name).read_bytes()
        data = json.loads(original)
        record = RunRecord.from_json(data)
        assert record.to_json() == data
        assert list(record.to_json()) == list(data)  # the keys in the file's order too
        copy = tmp_path / "copy" / f"{name}.json"
        write_json_atomic(copy, record.to_json())
        assert copy.read_bytes() == original, name
        loaded = state.load_record(name)
        assert loaded == record  # finished runs: liveness changes nothing
        assert (record.name, record.status, record.commit, record.snapshot_ref) == (
            data["name"], data["status"], data["commit"], data["snapshotRef"])
        assert record.finished and record.phase == "done"
    files = [json.loads(state.record_path(n).read_bytes()) for n in names]
    assert [f["status"] for f in files] == ["succeeded", "failed", "succeeded"]
    # The file format: the keys every run has, then those its course added.
    base = {"name", "follower", "repository", "branch", "lane", "laneRef", "node", "trigger",
            "status", "exitCode", "snapshotRef", "commit", "pushUrl", "log", "workDir",
            "createdAt", "startedAt", "finishedAt", "laneTipBefore", "laneTipAfter",
            "publishedLaneCommit", "flushBefore", "flushAfter", "configSha256", "error", "pid",
            "pidStart", "phase", "triggerStatus", "durationMs"}
    assert [set(f) for f in files] == [base, base, base | {"detached"}]


def test_a_partial_record_keeps_its_keys_and_unknown_ones() -> None:
    """A record cut short, or from another version, is written back as it was read: no key
    added, none dropped, a null kept null; a change adds its key after the others."""
    data = {"name": "f-1", "status": "running", "phase": None, "somethingNew": {"a": [1]},
            "pid": 7}
    record = RunRecord.from_json(data)
    assert record.to_json() == data and list(record.to_json()) == list(data)
    done = record.with_(status="failed", finished_at="2026-01-01T00:00:00Z", stale=True)
    assert done.to_json() == {**data, "status": "failed",
                              "finishedAt": "2026-01-01T00:00:00Z", "stale": True}
    assert list(done.to_json()) == [*data, "finishedAt", "stale"]
    assert record.to_json() == data  # frozen: the original is unchanged


def test_a_lost_run_reads_as_failed_and_stale(tmp_path: Path) -> None:
    """Liveness on the typed record: a running record whose owner is gone reads as failed,
    stale, with run-lost; the file is not rewritten."""
    state = st.FollowerState("f", tmp_path / "f")
    name = state.new_run_name("0" * 40)
    state.save(RunRecord.from_json({"name": name, "status": "running", "pid": 2 ** 22 + 7,
                                    "pidStart": "1"}))
    on_disk = state.record_path(name).read_bytes()
    record = state.load_record(name)
    assert record is not None and record.status == "failed" and record.stale is True
    assert record.error is not None and record.error["code"] == "run-lost"
    assert list(record.to_json()) == ["name", "pid", "pidStart", "status", "stale", "error"]
    assert state.record_path(name).read_bytes() == on_disk
