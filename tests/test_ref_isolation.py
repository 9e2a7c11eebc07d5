"""No branch name can stop a repository from syncing: a ref that cannot be written is refused
on its own, every other ref moves on; renames whose paths overlap work."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from git_mirror.git import run as gitrun
from git_mirror.git.refs import RefUpdate
from git_mirror.mirror.refcheck import collision_in, isolate, snapshot_probes
from tests.support.cli import CliResult
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
SNAP = "refs/unidesk/snapshots/hwlab/"


def test_a_branch_named_after_an_old_snapshot_does_not_stop_the_repository(
        cli: Cli, upstream: Repo, synced: Repo) -> None:
    """The issue's case: ``release/a`` at C, deleted; then ``release/a/<C>`` appears."""
    c = upstream.commit("release/a", "a", parent=upstream.rev("refs/heads/main"))
    assert cli("sync", "--confirm").code == 0
    assert synced.rev(f"{SNAP}release/a/{c}") == c
    upstream.delete_ref("refs/heads/release/a")
    assert cli("sync", "--confirm").code == 0
    d = upstream.commit(f"release/a/{c}", "collides", parent=c)
    main = upstream.commit("main", "main moves on")

    before = gitrun.spawned()
    res = cli("--json", "sync", "--confirm")
    spawned = gitrun.spawned() - before
    assert res.code == 0, res.stdout
    data = res.json
    blocked = f"{SNAP}release/a/{c}/{d}"
    assert [r["ref"] for r in data["refused"]] == [blocked]
    assert f"{SNAP}release/a/{c}" in data["refused"][0]["reason"]
    assert any(blocked in w for w in data["repositories"][0]["warnings"])
    assert blocked not in [s["ref"] for s in data["snapshots"]]
    assert blocked not in [u["ref"] for u in data["updated"]]
    # Everything else moved: main, its snapshot, the new branch and its stage ref.
    assert synced.rev("refs/heads/main") == main
    assert synced.rev(f"{SNAP}main/{main}") is None  # main's group is hwlab-node-runtime
    assert synced.rev(f"refs/unidesk/snapshots/hwlab-node-runtime/main/{main}") == main
    assert synced.rev(f"refs/heads/release/a/{c}") == d
    assert synced.rev(f"refs/mirror-stage/heads/release/a/{c}") == d
    assert synced.rev(f"{SNAP}release/a/{c}") == c  # the old snapshot never moves
    assert synced.rev(blocked) is None
    assert spawned <= 8, spawned  # no extra process per refused ref
    # The next sync says the same, and still works.
    again = cli("--json", "sync", "--confirm")
    assert again.code == 0 and [r["ref"] for r in again.json["refused"]] == [blocked]
    assert again.json["updated"] == [] and again.json["snapshots"] == []
    # A dry run says it too, and plans nothing for it.
    dry = cli("--json", "sync")
    assert dry.code == 0 and [r["ref"] for r in dry.json["refused"]] == [blocked]


def test_a_snapshot_that_would_hold_older_snapshots_below_it_is_refused(
        cli: Cli, upstream: Repo, synced: Repo) -> None:
    """The other way round: ``release/b/<C>`` first, then ``release/b`` at C."""
    c = upstream.commit("release/b-base", "base", parent=upstream.rev("refs/heads/main"))
    upstream.delete_ref("refs/heads/release/b-base")
    d = upstream.commit(f"release/b/{c}", "first", parent=c)
    assert cli("sync", "--confirm").code == 0
    assert synced.rev(f"{SNAP}release/b/{c}/{d}") == d
    upstream.delete_ref(f"refs/heads/release/b/{c}")
    upstream.set_ref("refs/heads/release/b", c)
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert [r["ref"] for r in res.json["refused"]] == [f"{SNAP}release/b/{c}"]
    assert synced.rev("refs/heads/release/b") == c  # a rename across paths: two phases
    assert synced.rev(f"refs/heads/release/b/{c}") is None


def test_an_upstream_rename_into_its_own_path_syncs_in_one_run(
        cli: Cli, upstream: Repo, synced: Repo) -> None:
    """``release/1.0`` becomes ``release/1.0/final`` in one step upstream."""
    tip = synced.rev("refs/heads/release/1.0")
    assert tip is not None
    upstream.delete_ref("refs/heads/release/1.0")
    upstream.set_ref("refs/heads/release/1.0/final", tip)
    moved = upstream.commit("main", "and main")
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    data = res.json
    assert data["refused"] == []
    assert synced.rev("refs/heads/release/1.0") is None
    assert synced.rev("refs/mirror-stage/heads/release/1.0") is None
    assert synced.rev("refs/heads/release/1.0/final") == tip
    assert synced.rev("refs/mirror-stage/heads/release/1.0/final") == tip
    assert synced.rev(f"{SNAP}release/1.0/final/{tip}") == tip
    assert synced.rev(f"{SNAP}release/1.0/{tip}") == tip  # the old snapshot stays
    assert synced.rev("refs/heads/main") == moved
    assert {u["ref"] for u in data["updated"]} >= {
        "refs/heads/release/1.0", "refs/heads/release/1.0/final", "refs/heads/main"}
    assert [s["ref"] for s in data["snapshots"]] == sorted(
        [f"{SNAP}release/1.0/final/{tip}",
         f"refs/unidesk/snapshots/hwlab-node-runtime/main/{moved}"])
    # And back again.
    upstream.delete_ref("refs/heads/release/1.0/final")
    upstream.set_ref("refs/heads/release/1.0", tip)
    back = cli("--json", "sync", "--confirm")
    assert back.code == 0 and back.json["refused"] == [], back.stdout
    assert synced.rev("refs/heads/release/1.0") == tip
    assert synced.rev("refs/heads/release/1.0/final") is None


def _u(ref: str, new: str | None, old: str | None) -> RefUpdate:
    return RefUpdate(ref, new, old)


A, B = "a" * 40, "b" * 40


def test_isolate_plans_deletions_first_and_refuses_collisions_one_by_one() -> None:
    existing = {"refs/heads/x", "refs/heads/y/z", f"refs/s/g/r/{A}"}
    updates = [
        _u("refs/heads/x", None, A),                 # deleted ...
        _u("refs/heads/x/new", B, None),             # ... so this waits for phase two
        _u("refs/heads/y", B, None),                 # y/z stays: refused
        _u(f"refs/s/g/r/{A}/{B}", B, None),          # a snapshot stays above it: refused
        _u("refs/heads/ok", A, None),
        _u("refs/heads/bad..name", A, None),         # git refuses the name
        _u("refs/heads/w", A, B),                    # a plain update
    ]
    phases = isolate(updates, existing)
    assert [u.ref for u in phases.first] == ["refs/heads/x", "refs/heads/ok", "refs/heads/w"]
    assert [u.ref for u in phases.second] == ["refs/heads/x/new"]
    assert sorted(r.ref for r in phases.refused) == sorted(
        ["refs/heads/y", f"refs/s/g/r/{A}/{B}", "refs/heads/bad..name"])
    # Two new refs that collide with each other: the first (by name) wins.
    both = isolate([_u("refs/heads/p", A, None), _u("refs/heads/p/q", A, None)], set())
    assert [u.ref for u in both.first] == ["refs/heads/p"]
    assert [r.ref for r in both.refused] == ["refs/heads/p/q"]
    assert snapshot_probes([f"refs/s/g/r/{A}/{B}", f"refs/s/g/main/{A}"], "refs/s/") == [
        f"refs/s/g/r/{A}"]


@pytest.mark.parametrize(("setup", "payload"), [
    ("refs/heads/x", "create refs/heads/x/y {oid}\n"),
    ("refs/heads/x/y", "create refs/heads/x {oid}\n"),
])
def test_collision_in_reads_what_git_says(tmp_path: Path, setup: str, payload: str) -> None:
    repo = Repo(tmp_path / "r.git")
    oid = repo.commit("main", "c", parent=None)
    repo.set_ref(setup, oid)
    res = subprocess.run(["git", "--git-dir", str(repo.path), "update-ref", "--stdin"],
                         input=payload.format(oid=oid).encode(), capture_output=True)
    assert res.returncode != 0
    ref = payload.split()[1]
    assert collision_in(res.stderr.decode()) == ref
    assert collision_in("fatal: cannot lock ref 'refs/heads/main': Unable to create "
                        "'x/refs/heads/main.lock': File exists.") is None


def test_a_collision_the_listing_did_not_show_is_refused_when_git_names_it(tmp_path: Path) -> None:
    from git_mirror.mirror.refcheck import Applied, commit_isolated

    repo = Repo(tmp_path / "r.git")
    oid = repo.commit("main", "c", parent=None)
    repo.set_ref("refs/other/x", oid)
    into = Applied()
    commit_isolated(repo.path, [_u("refs/other/x/y", oid, None), _u("refs/heads/ok", oid, None)],
                    set(), message="test", into=into)
    assert [r.ref for r in into.refused] == ["refs/other/x/y"]
    assert "refs/other/x" in into.refused[0].reason
    assert [u.ref for u in into.updates] == ["refs/heads/ok"]
    assert repo.rev("refs/heads/ok") == oid
