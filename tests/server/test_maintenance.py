"""Maintenance keeps clones fast: packed refs, a commit-graph, bitmaps when packs pile up."""

from __future__ import annotations

import json
from pathlib import Path

from git_mirror.config import load_config
from git_mirror.mirror.maintenance import maintain, pack_count
from tests.support.gitutil import Repo
from tests.support.server import prepare_mirror, serve_in_thread, wait_for, write_server_config


def test_maintain_packs_refs_writes_a_commit_graph_and_bitmaps(tmp_path: Path,
                                                              upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url)
    prepare_mirror(config)
    cfg = load_config(config)
    git_dir = cfg.cache_dir / "repos" / "hwlab.git"
    assert list((git_dir / "refs").rglob("*")), "sync leaves loose refs behind"
    res = maintain(cfg, "hwlab", full=True)
    assert res.ok, res.to_json()
    assert res.steps == ["pack-refs", "commit-graph", "repack"]
    assert not [p for p in (git_dir / "refs").rglob("*") if p.is_file()]
    assert (git_dir / "objects" / "info" / "commit-graph").exists()
    packs, bitmap = pack_count(git_dir)
    assert packs == 1 and bitmap
    # Nothing to do the next time: no repack without a reason.
    assert maintain(cfg, "hwlab").steps == ["pack-refs", "commit-graph"]


def test_serve_runs_maintenance_on_its_interval(tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url, maintenance=1)
    prepare_mirror(config)
    runs = config.parent / ".git-mirror" / "state" / "hwlab" / "runs.jsonl"

    def maintained() -> bool:
        return any(json.loads(ln).get("kind") == "maintenance" and json.loads(ln)["ok"]
                   for ln in runs.read_text().splitlines() if ln.strip())
    with serve_in_thread(config) as s:
        wait_for(maintained, timeout=15)
        metrics = s.client().get("/metrics").text
        assert 'git_mirror_maintenance_total{repository="hwlab",result="ok"}' in metrics
