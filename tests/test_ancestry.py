"""Bulk ancestry in one rev-list must agree with ``git merge-base --is-ancestor`` on every pair."""

from __future__ import annotations

from pathlib import Path

from git_mirror.git import run
from git_mirror.git.ancestry import ancestors
from tests.support.gitutil import Repo


def _dag(tmp_path: Path) -> tuple[Repo, dict[str, str]]:
    r = Repo(tmp_path / "dag.git")
    c: dict[str, str] = {}
    c["root"] = r.commit(None, "root", parent=None)
    c["a1"] = r.commit(None, "a1", parent=c["root"])
    c["a2"] = r.commit(None, "a2", parent=c["a1"])
    c["a3"] = r.commit(None, "a3", parent=c["a2"])
    c["b1"] = r.commit(None, "b1", parent=c["a1"])  # forks from a1
    c["b2"] = r.commit(None, "b2", parent=c["b1"])
    c["other"] = r.commit(None, "other root", parent=None)
    c["o1"] = r.commit(None, "o1", parent=c["other"])
    # a merge of a3 and b2
    tree = r.git("rev-parse", f"{c['a3']}^{{tree}}")
    c["m"] = r.git("commit-tree", tree, "-p", c["a3"], "-p", c["b2"], "-m", "merge")
    c["m1"] = r.commit(None, "after merge", parent=c["m"])
    return r, c


def test_every_pair_agrees_with_merge_base(tmp_path: Path) -> None:
    repo, c = _dag(tmp_path)
    pairs = [(a, d) for a in c.values() for d in c.values()]
    got = ancestors(repo.path, pairs)
    for a, d in pairs:
        assert got[(a, d)] == repo.is_ancestor(a, d), (a, d)


def test_typical_lane_batches_use_one_git_process(tmp_path: Path) -> None:
    repo, c = _dag(tmp_path)
    # Independent lanes, each a few commits on top of its old value.
    pairs = [(c["a1"], c["a3"]), (c["other"], c["o1"]), (c["b1"], c["b2"])]
    before = run.spawned()
    got = ancestors(repo.path, pairs)
    assert run.spawned() - before == 1
    assert all(got.values())


def test_diverged_pairs_are_false(tmp_path: Path) -> None:
    repo, c = _dag(tmp_path)
    got = ancestors(repo.path, [(c["a3"], c["b2"]), (c["o1"], c["a2"]), (c["m"], c["a3"])])
    assert not any(got.values())


def test_refs_with_parents_reads_commit_and_parents_in_one_process(tmp_path: Path) -> None:
    from git_mirror.git.ancestry import refs_with_parents

    repo, c = _dag(tmp_path)
    repo.set_ref("refs/heads/merge", c["m"])
    repo.set_ref("refs/heads/root", c["root"])
    got = refs_with_parents(repo.path, ["refs/heads/"])
    assert got["refs/heads/merge"] == (c["m"], (c["a3"], c["b2"]))
    assert got["refs/heads/root"] == (c["root"], ())
