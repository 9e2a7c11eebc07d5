"""The audit journal: every ref change by sync, flush, prune, apply and client pushes, read
with ``git-mirror log``; append-only and bounded by rotation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from git_mirror.config import load_config
from git_mirror.git.refs import RefUpdate
from git_mirror.mirror import audit
from git_mirror.mirror.snapshots import prune
from tests.conftest import BASE_CONFIG, mirror_repo
from tests.support.cli import run_cli
from tests.support.clients import LANE, Client
from tests.support.gitutil import Repo

NS = "refs/unidesk/snapshots/"


def entries(cfg: Path, *args: str) -> list[dict[str, object]]:
    res = run_cli("--config", cfg, "--json", "log", *args)
    assert res.code == 0, res.stdout
    out = res.json["entries"]
    assert isinstance(out, list)
    return out


def test_log_answers_what_happened_to_each_ref(write_config: Callable[..., Path], upstream: Repo,
                                               tmp_path: Path) -> None:
    text = BASE_CONFIG.format(url=upstream.url).replace(
        "  namespace: unidesk\n",
        "  namespace: unidesk\n  retention: {keepLast: 1, maxAgeDays: 1}\n")
    cfg = write_config(text)
    assert run_cli("--config", cfg, "apply", "--confirm").code == 0
    first = upstream.rev("refs/heads/main")
    assert first is not None
    assert run_cli("--config", cfg, "sync", "--confirm").code == 0
    mirror = mirror_repo(cfg)

    # sync: refs it moved and snapshots it created, with from and to.
    main = entries(cfg, "--ref", "refs/heads/main")
    assert [(e["operation"], e["from"], e["to"]) for e in main] == [("sync", None, first)]
    snap = NS + f"hwlab-node-runtime/main/{first}"
    assert [(e["operation"], e["to"]) for e in entries(cfg, "--ref", snap)] == [("sync", first)]
    second = upstream.commit("main", "m2", date="2020-01-02T00:00:00Z")
    assert run_cli("--config", cfg, "sync", "--confirm").code == 0
    main = entries(cfg, "--ref", "refs/heads/main")
    assert [(e["from"], e["to"]) for e in main] == [(None, first), (first, second)]
    assert main[0]["requestId"] != main[1]["requestId"]

    # a client's push (file://, no token) and the flush that sends it upstream.
    client = Client(mirror.path, tmp_path / "ci")
    before = mirror.rev(LANE)
    pushed = client.lane_commit("deploy")
    assert run_cli("--config", cfg, "flush", "--confirm").code == 0
    lane = entries(cfg, "--ref", LANE)
    assert [(e["operation"], e["where"], e["from"], e["to"]) for e in lane] == [
        ("sync", "mirror", None, before), ("flush", "upstream", before, pushed)]
    stage = entries(cfg, "--ref", "refs/mirror-stage/heads/gitops/v03")
    assert [(e["operation"], e["to"]) for e in stage][-1] == ("flush", pushed)

    # prune (two days on): the snapshots it deleted.
    upstream.commit("main", "m3", date="2020-01-03T00:00:00Z")
    assert run_cli("--config", cfg, "sync", "--confirm").code == 0
    gone = prune(load_config(cfg), confirm=True, now=time.time() + 2 * 86400).deleted
    assert gone and all(mirror.rev(s.ref) is None for s in gone)
    pruned = entries(cfg, "--operation", "prune")
    assert {e["ref"] for e in pruned} == {s.ref for s in gone}
    assert all(e["to"] is None for e in pruned)

    # apply: HEAD and the protection hook.
    mirror.git("symbolic-ref", "HEAD", "refs/heads/gitops/v03")
    assert run_cli("--config", cfg, "apply", "--confirm").code == 0
    applied = entries(cfg, "--operation", "apply")
    assert [(e["ref"], e["from"]) for e in applied] == [
        ("hooks/pre-receive", None), ("HEAD", None), ("HEAD", LANE)]  # created, then restored
    assert applied[-1]["to"] == "refs/heads/main"
    assert str(applied[0]["to"]).startswith("sha256:")

    # A glob, the limit, and the human form.
    heads = entries(cfg, "--ref", "refs/heads/*")
    assert {e["ref"] for e in heads} >= {"refs/heads/main", LANE}
    assert len(entries(cfg, "--limit", "2")) == 2
    human = run_cli("--config", cfg, "log", "--ref", "refs/heads/main")
    assert human.code == 0
    assert f"sync        refs/heads/main  {first[:12]} -> {second[:12]}" in human.stdout


def test_the_journal_is_rotated_by_size_and_read_across_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "MAX_BYTES", 4000)
    state = tmp_path / "state"
    for i in range(200):
        audit.record(state, "r", "sync", [RefUpdate(f"refs/heads/b{i}", "a" * 40, None)])
    files = sorted(p.name for p in state.glob("audit.jsonl*") if not p.name.endswith(".lock"))
    assert files == ["audit.jsonl", *(f"audit.jsonl.{n}" for n in range(1, audit.KEEP + 1))]
    assert all((state / f).stat().st_size <= 4000 for f in files)
    lines = [json.loads(ln) for f in reversed(files[1:])
             for ln in (state / f).read_text().splitlines()]
    lines += [json.loads(ln) for ln in (state / "audit.jsonl").read_text().splitlines()]
    refs = [e["ref"] for e in lines]
    # The newest kept, in order.
    assert refs == [f"refs/heads/b{i}" for i in range(200 - len(refs), 200)]


def test_an_unwritable_journal_does_not_fail_the_operation(
        config: Path, upstream: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(state_dir: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(audit, "_append", broken)
    res = run_cli("--config", config, "--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert res.json["ok"] is True
