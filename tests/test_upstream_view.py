"""The private view a confirmed sync fetches into: never seen as the mirror's refs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CliResult
from tests.support.gitutil import Repo


def test_branches_sharing_a_declared_prefix_reach_no_ref_of_the_mirror(
        cli: Callable[..., CliResult], mirror: Repo, upstream: Repo) -> None:
    upstream.commit("main-old", "only shares the prefix of main", parent=None)
    upstream.commit("gitops/v03-next", "only shares the prefix of the lane", parent=None)
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    refs = mirror.refs()
    assert not [r for r in refs if "main-old" in r or "v03-next" in r], refs
    assert not [s for s in res.json["snapshots"] if "main-old" in s["ref"]]
    # The view's refs are its own: neither the mirror nor its clients list them.
    assert not [r for r in refs if r.startswith("refs/worktree/")]
    assert mirror.rev("refs/heads/main") == upstream.rev("refs/heads/main")


def test_a_view_naming_a_missing_object_is_started_again(
        cli: Callable[..., CliResult], synced: Repo, upstream: Repo, tmp_path: Path) -> None:
    view = tmp_path / ".git-mirror" / "state" / "hwlab" / "upstream-view"
    stale = view / "refs" / "worktree" / "git-mirror" / "upstream" / "heads" / "main"
    assert stale.is_file()
    stale.write_text("1234567890123456789012345678901234567890\n")  # an object nobody has
    new = upstream.commit("main", "after the object went away")
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert synced.rev("refs/heads/main") == new
    assert stale.read_text().strip() == new
