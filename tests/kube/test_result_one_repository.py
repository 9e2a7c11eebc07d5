"""A Job's result over the termination message's limit keeps its one repository entry:
the lists inside it are shortened instead (a follower reads ``repositories[].sources``)."""

from __future__ import annotations

import json

from git_mirror.kube.result import MESSAGE_LIMIT, compact


def test_a_single_repository_is_shortened_inside_not_dropped() -> None:
    updated = [{"ref": f"refs/heads/release/{i}", "from": None, "to": "a" * 40} for i in range(60)]
    repo = {"id": "hwlab", "ok": True, "updated": updated, "refused": [], "recovered": [],
            "sources": [{"branch": "main", "commit": "b" * 40,
                         "snapshotRef": "refs/x/" + "b" * 40}]}
    data = {"ok": True, "node": "D601", "updated": updated, "repositories": [repo]}
    text = compact(data)
    assert len(text.encode()) <= MESSAGE_LIMIT
    out = json.loads(text)
    assert [r["id"] for r in out["repositories"]] == ["hwlab"]
    assert out["repositories"][0]["sources"] == repo["sources"]
    assert 0 < len(out["repositories"][0]["updated"]) < len(updated)
    assert "repositories" in out["truncated"]
