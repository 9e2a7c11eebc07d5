"""Edge cases of sync: annotated tags, an empty upstream, deleted tags, lanes created later."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import BASE_CONFIG, mirror_repo
from tests.support.cli import CliResult, run_cli
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]


def test_annotated_tags_are_mirrored_as_tag_objects(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    tag_oid = upstream.tag("v2.0", upstream.rev("refs/heads/main") or "", annotated=True)
    assert cli("sync", "--confirm").code == 0
    assert mirror.rev("refs/tags/v2.0") == tag_oid
    assert mirror.git("cat-file", "-t", tag_oid) == "tag"
    assert mirror.rev("refs/mirror-stage/tags/v2.0") == tag_oid


def test_deleted_and_moved_tags_follow_upstream(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    assert cli("sync", "--confirm").code == 0
    upstream.delete_ref("refs/tags/v1.0")
    main = upstream.rev("refs/heads/main") or ""
    upstream.tag("v1.1", main)
    assert cli("sync", "--confirm").code == 0
    assert mirror.rev("refs/tags/v1.0") is None
    assert mirror.rev("refs/tags/v1.1") == main


def test_empty_upstream_syncs_to_nothing(write_config: Callable[..., Path], tmp_path: Path) -> None:
    empty = Repo(tmp_path / "empty.git")
    cfg = write_config(BASE_CONFIG.format(url=empty.url))
    res = run_cli("--config", cfg, "--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert res.json["updated"] == [] and res.json["snapshots"] == []
    st = run_cli("--config", cfg, "--json", "status").json
    assert st["repositories"][0]["lanes"][0]["mirrorCommit"] is None
    assert st["pendingFlush"] is False


def test_lane_created_in_mirror_before_upstream_is_pending(cli: Cli, upstream: Repo, mirror: Repo,
                                                          config: Path) -> None:
    upstream.delete_ref("refs/heads/gitops/v03")
    assert cli("sync", "--confirm").code == 0
    assert mirror.rev("refs/heads/gitops/v03") is None
    lane = mirror.commit("gitops/v03", "first lane commit", parent=None)
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0
    assert mirror.rev("refs/heads/gitops/v03") == lane  # sync never rewinds or deletes a lane
    st = cli("--json", "status").json
    assert st["repositories"][0]["lanes"][0]["pendingFlush"] is True
    assert st["repositories"][0]["lanes"][0]["githubCommit"] is None


def test_config_source_removed_leaves_refs_but_stops_following(cli: Cli, upstream: Repo,
                                                               config: Path) -> None:
    assert cli("sync", "--confirm").code == 0
    config.write_text(config.read_text().replace("      - branch: release/*\n", ""))
    before = upstream.commit("release/1.0", "later")
    assert run_cli("--config", config, "sync", "--confirm").code == 0
    mirror = mirror_repo(config)
    assert mirror.rev("refs/heads/release/1.0") != before
    st = run_cli("--config", config, "--json", "status").json
    assert [s["branch"] for s in st["repositories"][0]["sources"]] == ["main"]


def test_a_lane_added_to_the_yaml_is_followed_and_protected_after_sync(cli: Cli, upstream: Repo,
                                                                       config: Path) -> None:
    assert cli("apply", "--confirm").code == 0
    assert cli("sync", "--confirm").code == 0
    lane = upstream.commit("gitops/v04", "new lane", parent=None)
    config.write_text(config.read_text().replace(
        "      v03: {ref: gitops/v03}\n",
        "      v03: {ref: gitops/v03}\n      v04: {ref: gitops/v04}\n"))
    assert run_cli("--config", config, "sync", "--confirm").code == 0
    mirror = mirror_repo(config)
    assert mirror.rev("refs/heads/gitops/v04") == lane
    assert "refs/heads/gitops/v04" in mirror.git("config", "gitmirror.lanes").split()


SNAP = "refs/unidesk/snapshots/hwlab-node-runtime/main/"


def test_a_tips_snapshot_gone_behind_syncs_back_is_created_again(
        cli: Cli, upstream: Repo, mirror: Repo) -> None:
    """Sync asks which snapshots exist; it does not take them for granted."""
    assert cli("sync", "--confirm").code == 0
    tip = upstream.rev("refs/heads/main") or ""
    mirror.delete_ref(SNAP + tip)  # by hand, behind git-mirror's back

    # nothing else changed upstream
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert [s["ref"] for s in res.json["snapshots"]] == [SNAP + tip]
    assert mirror.rev(SNAP + tip) == tip

    # and with other work to write
    mirror.delete_ref(SNAP + tip)
    other = upstream.commit("release/1.0", "elsewhere")
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert mirror.rev(SNAP + tip) == tip
    assert mirror.rev("refs/heads/release/1.0") == other
    assert {s["ref"] for s in res.json["snapshots"]} == {
        SNAP + tip, f"refs/unidesk/snapshots/hwlab/release/1.0/{other}"}


def test_a_renamed_snapshot_group_gets_snapshots_of_the_current_tips(
        cli: Cli, upstream: Repo, mirror: Repo, config: Path) -> None:
    assert cli("sync", "--confirm").code == 0
    tip = upstream.rev("refs/heads/main") or ""
    config.write_text(config.read_text().replace("snapshotGroup: hwlab-node-runtime",
                                                 "snapshotGroup: runtime-v2"))
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert mirror.rev(f"refs/unidesk/snapshots/runtime-v2/main/{tip}") == tip
    assert mirror.rev(SNAP + tip) == tip  # the old one stays: snapshots never move


def test_upstream_back_at_an_older_snapshotted_tip_creates_nothing_new(
        cli: Cli, upstream: Repo, mirror: Repo) -> None:
    assert cli("sync", "--confirm").code == 0
    old = upstream.rev("refs/heads/main") or ""
    new = upstream.commit("main", "forward")
    assert cli("sync", "--confirm").code == 0
    upstream.set_ref("refs/heads/main", old)  # force-pushed back
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert res.json["snapshots"] == []
    assert mirror.rev("refs/heads/main") == old
    assert mirror.rev(SNAP + old) == old and mirror.rev(SNAP + new) == new
