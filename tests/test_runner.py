"""The per-repository runner: a failure becomes the result, with the default hint, and only a run
that started is journaled."""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from git_mirror.config import load_config
from git_mirror.config.loader import LoadedConfig
from git_mirror.errors import BusyError, Code, GitMirrorError
from git_mirror.mirror.layout import RepoLayout
from git_mirror.mirror.runner import RepoOperation, run_repositories, run_repository


@dataclass
class Probe:
    """A result with what the runner needs, and what the test wants to see."""

    id: str
    ok: bool = True
    error: GitMirrorError | None = None
    duration_ms: int = -1
    cleared_locks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stepped: bool = False
    audited: str | None = None  # the repository the audit was told of

    def add_warning(self, text: str) -> None:
        self.warnings.append(text)


class ProbeOperation(RepoOperation[Probe]):
    """An operation whose step raises what the test gives it (or nothing)."""

    command = "sync"

    def __init__(self, cfg: LoadedConfig, failure: Exception | None = None) -> None:
        super().__init__(cfg, confirm=True, wait=False)
        self.failure = failure
        self.logged: list[str] = []

    def new_result(self, rid: str) -> Probe:
        return Probe(rid)

    def step(self, layout: RepoLayout, result: Probe) -> None:
        result.stepped = True
        layout.state_dir.mkdir(parents=True, exist_ok=True)
        if self.failure is not None:
            raise self.failure

    def journal_entry(self, result: Probe) -> dict[str, Any]:
        return {"probe": result.id}

    def audit(self, layout: RepoLayout, result: Probe) -> None:
        result.audited = layout.id

    def log(self, result: Probe) -> None:
        self.logged.append(result.id)

    def summary(self, result: Probe) -> str:
        return f"{result.id} done"


def _last(cfg: LoadedConfig) -> dict[str, Any] | None:
    path = RepoLayout.of(cfg, "hwlab").state_dir / "last-sync.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_a_failure_without_a_hint_gets_the_default_one_and_is_journaled(config: Path) -> None:
    cfg = load_config(config)
    op = ProbeOperation(cfg, GitMirrorError("boom", code=Code.CONFLICT))
    res = run_repository(op, "hwlab")
    assert res.ok is False
    assert res.error is not None
    assert res.error.code == Code.CONFLICT
    assert res.error.hint == "git-mirror sync --repo hwlab --confirm --wait"
    assert res.stepped
    assert res.duration_ms >= 0
    assert res.audited == "hwlab"
    assert op.logged == ["hwlab"]
    entry = _last(cfg)
    assert entry is not None
    assert entry["ok"] is False
    assert entry["error"]["code"] == "conflict"
    assert entry["probe"] == "hwlab"


def test_a_hint_given_where_the_error_is_raised_is_kept(config: Path) -> None:
    cfg = load_config(config)
    res = run_repository(ProbeOperation(cfg, GitMirrorError("x", hint="do this")), "hwlab")
    assert res.error is not None
    assert res.error.hint == "do this"


def test_an_os_error_is_an_io_or_disk_full_result(config: Path) -> None:
    cfg = load_config(config)
    res = run_repository(ProbeOperation(cfg, OSError(errno.ENOSPC, "No space left")), "hwlab")
    assert res.error is not None
    assert res.error.code == Code.DISK_FULL
    assert "sync of hwlab failed" in res.error.message


def test_a_busy_repository_is_not_journaled(config: Path) -> None:
    cfg = load_config(config)
    res = run_repository(ProbeOperation(cfg, BusyError("busy")), "hwlab")
    assert res.error is not None
    assert res.error.code == Code.BUSY
    assert _last(cfg) is None


def test_a_bug_is_not_a_result(config: Path) -> None:
    cfg = load_config(config)
    with pytest.raises(KeyError):
        run_repository(ProbeOperation(cfg, KeyError("bug")), "hwlab")


def test_results_come_in_the_order_of_the_ids(config: Path) -> None:
    cfg = load_config(config)
    op = ProbeOperation(cfg)
    results = run_repositories(op, ["hwlab", "hwlab"], 2)
    assert [r.id for r in results] == ["hwlab", "hwlab"]
    assert all(r.ok and r.stepped for r in results)
