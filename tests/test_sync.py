"""apply, sync and status end to end, against a real bare upstream over file://."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CliResult
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
NS = "refs/unidesk/snapshots/"


def synced(cli: Cli) -> dict[str, Any]:
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0, res.stdout + res.stderr
    return res.json


def test_apply_dry_run_changes_nothing_then_confirm_creates(cli: Cli, mirror: Repo) -> None:
    dry = cli("--json", "apply")
    assert dry.code == 0
    assert dry.json["dryRun"] is True
    assert dry.json["repositories"][0]["action"] == "create"
    assert not mirror.path.exists()
    done = cli("--json", "apply", "--confirm")
    assert done.code == 0 and done.json["dryRun"] is False
    assert (mirror.path / "HEAD").exists()
    assert mirror.git("config", "core.logAllRefUpdates") == "always"
    assert mirror.git("config", "gc.auto") == "0"
    assert mirror.git("config", "uploadpack.allowFilter") == "true"
    assert mirror.git("config", "--get-all", "remote.upstream.fetch").splitlines() == [
        "+refs/heads/main:refs/mirror-stage/heads/main",
        "+refs/heads/release/*:refs/mirror-stage/heads/release/*",
        "+refs/heads/gitops/v03:refs/mirror-stage/heads/gitops/v03",
        "+refs/tags/*:refs/mirror-stage/tags/*"]
    again = cli("--json", "apply", "--confirm")
    assert again.json["changed"] is False
    assert again.json["repositories"][0]["action"] == "unchanged"


def test_apply_reports_orphans_and_never_deletes(cli: Cli, config: Path, mirror: Repo) -> None:
    cli("apply", "--confirm")
    stray = config.parent / ".git-mirror" / "repos" / "old.git"
    shutil.copytree(mirror.path, stray)
    res = cli("--json", "apply", "--confirm")
    assert res.json["orphaned"] == ["old"]
    assert stray.exists()


def test_sync_mirrors_declared_refs_only(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    cli("apply", "--confirm")
    data = synced(cli)
    assert data["dryRun"] is False and data["ok"] is True and data["diverged"] is False
    refs = mirror.refs()
    up = upstream.refs()
    for ref in ("refs/heads/main", "refs/heads/release/1.0", "refs/heads/release/2.0",
                "refs/tags/v1.0", "refs/heads/gitops/v03"):
        assert refs[ref] == up[ref], ref
        assert refs["refs/mirror-stage/" + ref.removeprefix("refs/")] == up[ref]
    assert "refs/heads/feature/undeclared" not in refs
    assert "refs/mirror-stage/heads/feature/undeclared" not in refs
    main = up["refs/heads/main"]
    assert refs[f"{NS}hwlab-node-runtime/main/{main}"] == main
    r1 = up["refs/heads/release/1.0"]
    assert refs[f"{NS}hwlab/release/1.0/{r1}"] == r1
    created = {s["ref"] for s in data["snapshots"]}
    assert created == {r for r in refs if r.startswith(NS)}
    assert len(created) == 3
    # No snapshot for lanes or tags.
    assert not any("gitops" in r for r in created)


def test_sync_is_idempotent_and_snapshots_are_created_once(cli: Cli, mirror: Repo) -> None:
    synced(cli)
    before = mirror.refs()
    second = synced(cli)
    assert second["updated"] == [] and second["snapshots"] == []
    assert mirror.refs() == before


def test_sync_creates_the_mirror_when_apply_was_not_run(cli: Cli, mirror: Repo,
                                                       upstream: Repo) -> None:
    data = synced(cli)
    assert data["repositories"][0]["createdMirror"] is True
    assert mirror.rev("refs/heads/main") == upstream.rev("refs/heads/main")


def test_force_push_upstream_moves_branch_and_keeps_old_snapshot(cli: Cli, upstream: Repo,
                                                                mirror: Repo) -> None:
    synced(cli)
    old = upstream.rev("refs/heads/main")
    assert old
    new = upstream.commit(None, "rewritten", parent=None)
    upstream.set_ref("refs/heads/main", new)  # a force-push: new is not a descendant of old
    data = synced(cli)
    assert mirror.rev("refs/heads/main") == new
    assert mirror.rev(f"{NS}hwlab-node-runtime/main/{old}") == old
    assert mirror.rev(f"{NS}hwlab-node-runtime/main/{new}") == new
    assert [s["commit"] for s in data["snapshots"]] == [new]


def test_new_upstream_commit_incremental(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    synced(cli)
    new = upstream.commit("main", "next")
    new_rel = upstream.commit("release/3.0", "r3", parent=new)
    data = synced(cli)
    assert mirror.rev("refs/heads/main") == new
    assert mirror.rev("refs/heads/release/3.0") == new_rel
    updated = {u["ref"]: u for u in data["updated"]}
    assert updated["refs/heads/main"]["to"] == new
    assert {s["ref"] for s in data["snapshots"]} == {
        f"{NS}hwlab-node-runtime/main/{new}", f"{NS}hwlab/release/3.0/{new_rel}"}


def test_upstream_deleting_a_source_branch_deletes_it_but_keeps_snapshots(
        cli: Cli, upstream: Repo, mirror: Repo) -> None:
    synced(cli)
    r2 = upstream.rev("refs/heads/release/2.0")
    upstream.delete_ref("refs/heads/release/2.0")
    synced(cli)
    assert mirror.rev("refs/heads/release/2.0") is None
    assert mirror.rev("refs/mirror-stage/heads/release/2.0") is None
    assert mirror.rev(f"{NS}hwlab/release/2.0/{r2}") == r2


def test_sync_dry_run_changes_nothing(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    synced(cli)
    before = mirror.refs()
    new = upstream.commit("main", "pending")
    dry = cli("--json", "sync")
    assert dry.code == 0
    assert dry.json["dryRun"] is True
    assert any(u["ref"] == "refs/heads/main" and u["to"] == new for u in dry.json["updated"])
    assert [s["commit"] for s in dry.json["snapshots"]] == [new]
    assert mirror.refs() == before
    explicit = cli("--json", "sync", "--dry-run")
    assert explicit.json["dryRun"] is True
    assert mirror.refs() == before


def test_dry_run_and_confirm_together_is_usage_error(cli: Cli) -> None:
    res = cli("--json", "sync", "--dry-run", "--confirm")
    assert res.code == 2
    assert res.json["error"]["code"] == "usage"


def test_lane_rules(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    synced(cli)
    lane = "refs/heads/gitops/v03"
    # Behind: upstream lane moved ahead -> fast-forward.
    ahead_up = upstream.commit("gitops/v03", "upstream lane commit")
    synced(cli)
    assert mirror.rev(lane) == ahead_up
    # Ahead: the mirror lane has a commit upstream lacks -> left for flush.
    local = mirror.commit("gitops/v03", "ci publish")
    data = synced(cli)
    assert mirror.rev(lane) == local
    lanes = data["repositories"][0]["lanes"]
    assert lanes[0]["action"] == "ahead"
    st = cli("--json", "status").json
    assert st["pendingFlush"] is True and st["githubInSync"] is False
    assert st["repositories"][0]["lanes"][0]["pendingFlush"] is True
    # Diverged: upstream moved too -> both left, reported.
    other = upstream.commit("gitops/v03", "someone else")
    data = synced(cli)
    assert mirror.rev(lane) == local
    assert mirror.rev("refs/mirror-stage/heads/gitops/v03") == other
    assert data["repositories"][0]["lanes"][0]["diverged"] is True
    st = cli("--json", "status").json
    assert st["repositories"][0]["lanes"][0]["diverged"] is True
    assert upstream.rev(lane) == other


def test_status_json_contract(cli: Cli, upstream: Repo, config: Path) -> None:
    synced(cli)
    res = cli("--json", "status")
    assert res.code == 0
    st = res.json
    assert st["ok"] is True and st["node"] == "local" and st["source"] == "yaml"
    assert st["config"]["path"] == str(config) and len(st["config"]["sha256"]) == 64
    assert st["pendingFlush"] is False and st["githubInSync"] is True
    repo = st["repositories"][0]
    assert repo["id"] == "hwlab"
    assert repo["transport"] == {"mode": "file", "url": upstream.url, "source": "yaml",
                                 "at": f"{config}:7"}
    assert repo["proxy"]["mode"] == "none" and repo["proxy"]["source"] == "yaml"
    assert repo["refSources"] == {"githubFieldsAreMirrorStageCache": True,
                                  "stagePrefix": "refs/mirror-stage/"}
    assert repo["lastSync"]["ok"] is True and repo["lastSync"]["at"].endswith("Z")
    main = next(s for s in repo["sources"] if s["branch"] == "main")
    tip = upstream.rev("refs/heads/main")
    assert main["mirrorCommit"] == tip and main["githubCommit"] == tip
    assert main["snapshotRef"] == f"{NS}hwlab-node-runtime/main/{tip}"
    lane = repo["lanes"][0]
    assert lane == {**lane, "name": "v03", "ref": "refs/heads/gitops/v03", "pendingFlush": False,
                    "githubInSync": True, "diverged": False}
    assert repo["pendingFlush"] is False and repo["githubInSync"] is True
    human = cli("status")
    assert human.code == 0 and "hwlab" in human.stdout and "gitops/v03" in human.stdout


def test_status_works_with_upstream_gone(cli: Cli, upstream: Repo) -> None:
    synced(cli)
    tip = upstream.rev("refs/heads/main")
    shutil.rmtree(upstream.path)
    res = cli("--json", "status")
    assert res.code == 0
    assert res.json["githubInSync"] is True
    assert res.json["repositories"][0]["sources"][0]["githubCommit"] == tip


def test_failed_sync_exits_1_and_changes_no_ref(cli: Cli, upstream: Repo, mirror: Repo) -> None:
    synced(cli)
    before = mirror.refs()
    upstream.commit("main", "never fetched")
    moved = upstream.path.with_name("moved.git")
    upstream.path.rename(moved)
    res = cli("--json", "sync", "--confirm")
    assert res.code == 1
    assert res.json["ok"] is False
    assert res.json["error"]["code"] == "upstream-unreachable"
    assert "sync --repo hwlab --confirm --wait" in res.json["error"]["hint"]
    assert mirror.refs() == before
    st = cli("--json", "status").json
    assert st["repositories"][0]["lastSync"]["ok"] is False


def test_unknown_repository_is_usage_error(cli: Cli) -> None:
    res = cli("--json", "sync", "--repo", "nope")
    assert res.code == 2 and res.json["error"]["code"] == "usage"


def test_drift_between_mirror_and_yaml(cli: Cli, mirror: Repo) -> None:
    cli("apply", "--confirm")
    assert cli("sync", "--confirm").code == 0  # the mirror's settings are known now (cached)
    # ... in git-mirror's state directory, not in the mirror
    assert (mirror.path.parent.parent / "state" / "hwlab" / "git-config.json").exists()
    assert not [p.name for p in mirror.path.iterdir() if p.suffix == ".json"]
    mirror.git("config", "remote.upstream.url", "file:///somewhere/else.git")
    res = cli("--json", "sync", "--confirm")
    assert res.code == 1
    assert res.json["error"]["code"] == "drift"
    assert res.json["error"]["hint"] == "git-mirror apply --confirm"
    fixed = cli("--json", "apply", "--confirm")
    assert fixed.json["repositories"][0]["action"] == "update"
    assert cli("sync", "--confirm").code == 0

    # an edit of the file by hand is seen as well, whatever was known of it before
    config = mirror.path / "config"
    config.write_text(config.read_text().replace("[remote \"upstream\"]",
                                                 "[url \"file:///elsewhere/\"]\n\tinsteadOf = file:///\n"
                                                 "[remote \"upstream\"]"))
    res = cli("--json", "sync", "--confirm")
    assert res.code == 1 and res.json["error"]["code"] == "drift", res.stdout
    assert "insteadof" in res.json["error"]["message"].lower()


def test_snapshots_list_filters(cli: Cli, upstream: Repo) -> None:
    synced(cli)
    all_ = cli("--json", "snapshots", "list").json["snapshots"]
    assert len(all_) == 3
    rel = cli("--json", "snapshots", "list", "--group", "hwlab").json["snapshots"]
    assert {s["branch"] for s in rel} == {"release/1.0", "release/2.0"}
    one = cli("--json", "snapshots", "list", "--branch", "main").json["snapshots"]
    assert [s["commit"] for s in one] == [upstream.rev("refs/heads/main")]
    assert one[0]["group"] == "hwlab-node-runtime"


@pytest.mark.parametrize("how", ["include.path", "includeIf", "worktreeConfig"])
def test_settings_brought_in_from_another_file_are_drift_and_apply_removes_them(
        cli: Cli, upstream: Repo, mirror: Repo, tmp_path: Path, how: str) -> None:
    """An include (or a per-worktree config) must not rewrite the upstream behind the drift
    check."""
    assert cli("sync", "--confirm").code == 0
    elsewhere = Repo(tmp_path / "elsewhere.git")
    evil = elsewhere.commit("main", "not upstream's", parent=None)
    rewrite = f'[url "{elsewhere.url}"]\n\tinsteadOf = {upstream.url}\n'
    if how == "include.path":
        (tmp_path / "inc.cfg").write_text(rewrite)
        mirror.git("config", "include.path", str(tmp_path / "inc.cfg"))
    elif how == "includeIf":
        (tmp_path / "inc.cfg").write_text(rewrite)
        mirror.git("config", f"includeIf.gitdir:{mirror.path}/.path", str(tmp_path / "inc.cfg"))
    else:
        mirror.git("config", "extensions.worktreeConfig", "true")
        (mirror.path / "config.worktree").write_text(rewrite)
    before = mirror.refs()
    for command in ("sync", "flush"):
        res = cli("--json", command, "--confirm")
        assert res.code == 1, res.stdout
        assert res.json["error"]["code"] == "drift", res.stdout
        assert res.json["error"]["hint"] == "git-mirror apply --confirm"
    assert mirror.refs() == before and mirror.rev("refs/heads/main") != evil
    assert cli("apply", "--confirm").code == 0
    text = (mirror.path / "config").read_text().lower()
    assert "include" not in text and "worktreeconfig" not in text
    assert cli("sync", "--confirm").code == 0
    assert mirror.rev("refs/heads/main") == upstream.rev("refs/heads/main")
