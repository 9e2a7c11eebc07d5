"""Ref protection: real clients pushing into the mirror meet the pre-receive hook."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from git_mirror.git.oid import ZERO
from git_mirror.mirror.protect import Update, refusals
from tests.support.cli import CliResult
from tests.support.clients import LANE, Client
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
SNAP_PREFIX = "refs/unidesk/snapshots/"




def refused(res: object, ref: str, words: str) -> None:
    """The push failed and the client saw the hook's one-line reason for ``ref``."""
    import subprocess

    assert isinstance(res, subprocess.CompletedProcess)
    err = res.stderr.decode()
    assert res.returncode == 1, err  # git push: the hook refused it
    line = next((ln for ln in err.splitlines() if f"refused {ref}:" in ln), None)
    assert line is not None, err
    assert line.startswith("remote: git-mirror: refused "), line
    assert words in line, line


def test_apply_installs_the_hook_in_every_mirror(cli: Cli, synced: Repo, config: Path) -> None:
    hook = config.parent / ".git-mirror" / "hooks" / "pre-receive"
    assert hook.is_file() and hook.stat().st_mode & 0o111
    assert synced.git("config", "core.hooksPath") == str(hook.parent)
    assert synced.git("config", "gitmirror.lanes") == LANE
    assert synced.git("config", "gitmirror.sources") == "refs/heads/main refs/heads/release/*"
    again = cli("--json", "apply", "--confirm")
    assert again.code == 0
    assert again.json["changed"] is False


def test_fast_forward_lane_push_is_accepted(synced: Repo, client: Client) -> None:
    before = synced.rev(LANE)
    new = client.lane_commit("deploy")
    assert synced.rev(LANE) == new
    assert synced.is_ancestor(before or "", new)


def test_force_push_to_a_lane_is_refused(synced: Repo, client: Client) -> None:
    client.checkout(LANE)
    client.commit("deploy a")
    tip = client.lane_commit("deploy b")
    client.git("reset", "--quiet", "--hard", "HEAD~1")
    client.commit("rewritten b")
    res = client.push(f"+HEAD:{LANE}")
    refused(res, LANE, "non-fast-forward")
    assert synced.rev(LANE) == tip


def test_lane_delete_is_refused(synced: Repo, client: Client) -> None:
    before = synced.rev(LANE)
    refused(client.push(f":{LANE}"), LANE, "cannot be deleted")
    assert synced.rev(LANE) == before


def test_push_to_a_source_branch_is_refused(synced: Repo, client: Client) -> None:
    before = synced.rev("refs/heads/main")
    client.checkout("refs/heads/main")
    client.commit("sneaky")
    refused(client.push("HEAD:refs/heads/main"), "refs/heads/main",
            "source branches follow upstream")
    assert synced.rev("refs/heads/main") == before
    # A new branch that is no lane is refused too, and called what it is: not a source branch
    # (the YAML declares main and release/*), but an undeclared lane.
    for ref in ("refs/heads/other", "refs/heads/gitops/other"):
        refused(client.push(f"HEAD:{ref}"), ref, "not a declared lane of this mirror")
        assert synced.rev(ref) is None
    res = client.push("HEAD:refs/heads/gitops/other")
    assert "source branches" not in res.stderr.decode()
    assert "push lane refs only: refs/heads/gitops/v03" in res.stderr.decode()
    # a branch matching a declared source glob is a source branch
    refused(client.push("HEAD:refs/heads/release/9.9"), "refs/heads/release/9.9",
            "source branches follow upstream")


def test_snapshot_refs_refuse_create_move_and_delete(synced: Repo, client: Client) -> None:
    snaps = synced.refs(SNAP_PREFIX)
    assert snaps
    snap, commit = next(iter(sorted(snaps.items())))
    other = synced.rev("refs/heads/release/2.0") or ""
    client.git("fetch", "--quiet", "origin", "refs/heads/release/2.0")

    fake = f"{SNAP_PREFIX}hwlab/release/2.0/{'1' * 40}"
    refused(client.push(f"FETCH_HEAD:{fake}"), fake, "snapshot refs are immutable")
    refused(client.push(f"+FETCH_HEAD:{snap}"), snap, "snapshot refs are immutable")
    refused(client.push(f":{snap}"), snap, "snapshot refs are immutable")
    assert synced.refs(SNAP_PREFIX) == snaps
    assert synced.rev(snap) == commit != other


def test_stage_and_tag_refs_are_refused(synced: Repo, client: Client) -> None:
    stage = "refs/mirror-stage/heads/main"
    before = synced.refs("refs/mirror-stage/")
    client.checkout("refs/heads/main")
    client.commit("fake upstream")
    refused(client.push(f"+HEAD:{stage}"), stage, "stage refs")
    refused(client.push("HEAD:refs/tags/v9"), "refs/tags/v9", "tags follow upstream")
    assert synced.refs("refs/mirror-stage/") == before
    assert synced.rev("refs/tags/v9") is None


def test_one_bad_ref_refuses_the_whole_push_with_every_reason(synced: Repo, client: Client) -> None:
    lane_before = synced.rev(LANE)
    client.checkout(LANE)
    client.commit("deploy")
    res = client.push(f"HEAD:{LANE}", "+HEAD:refs/heads/main")
    refused(res, "refs/heads/main", "source branches")
    assert synced.rev(LANE) == lane_before


# The rules alone, without git (the ancestry answer is given).
def _u(ref: str, old: str = "a" * 40, new: str = "b" * 40) -> Update:
    return Update(old, new, ref)



@pytest.mark.parametrize(("update", "words"), [
    (_u(LANE, new=ZERO), "cannot be deleted"),
    (_u("refs/heads/main"), "source branches"),
    (_u("refs/heads/main", old=ZERO), "source branches"),
    (_u("refs/ns/snapshots/g/main/" + "c" * 40, old=ZERO), "snapshot"),
    (_u("refs/ns/snapshots/g/main/" + "c" * 40, new=ZERO), "snapshot"),
    (_u("refs/mirror-stage/heads/main"), "stage refs"),
    (_u("refs/tags/v1", old=ZERO), "tags"),
    (_u("refs/notes/commits", old=ZERO), "not a lane ref"),
])
def test_rules_refuse(update: Update, words: str) -> None:
    reasons = refusals([update], [LANE], "ns", lambda pairs: dict.fromkeys(pairs, True))
    assert len(reasons) == 1
    assert reasons[0].startswith(update.ref + ": ") and words in reasons[0]


def test_rules_accept_lane_create_and_fast_forward_only() -> None:
    def ancestry(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        return {p: p[1] == "f" * 40 for p in pairs}

    assert refusals([_u(LANE, old=ZERO)], [LANE], "ns", ancestry) == []
    assert refusals([_u(LANE, new="f" * 40)], [LANE], "ns", ancestry) == []
    [reason] = refusals([_u(LANE)], [LANE], "ns", ancestry)
    assert "non-fast-forward" in reason


def test_a_mirror_created_by_sync_is_protected_too(cli: Cli, mirror: Repo, tmp_path: Path) -> None:
    assert cli("--json", "sync", "--confirm").code == 0
    client = Client(mirror.path, tmp_path / "ci")
    before = mirror.rev("refs/heads/main")
    client.checkout("refs/heads/main")
    client.commit("sneaky")
    refused(client.push("HEAD:refs/heads/main"), "refs/heads/main", "source branches")
    assert mirror.rev("refs/heads/main") == before
