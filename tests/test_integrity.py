"""Integrity: a hand-patched hook and forged refs are found by verify, status and apply;
apply restores the hook; verify --repair --confirm quarantines forged refs, recorded."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CliResult
from tests.support.clients import LANE, Client
from tests.support.gitutil import Repo, run_git

Cli = Callable[..., CliResult]
SNAP_PREFIX = "refs/unidesk/snapshots/"
QUARANTINE = "refs/mirror-quarantine/"


def hook_path(config: Path) -> Path:
    return config.parent / ".git-mirror" / "hooks" / "pre-receive"


def replace_hook(config: Path) -> None:
    """What the runbook forbids: the protection hook patched by hand to accept everything."""
    hook = hook_path(config)
    hook.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(hook, 0o755)


def kinds(res: CliResult) -> list[str]:
    return sorted(p["kind"] for p in res.json["error"]["problems"])


def test_a_clean_mirror_verifies(cli: Cli, synced: Repo, client: Client) -> None:
    client.lane_commit("deploy")  # lanes are the clients' refs: not a problem
    res = cli("--json", "verify")
    assert res.code == 0, res.stdout
    assert res.json["ok"] is True
    assert res.json["hooks"]["ok"] is True
    assert res.json["repositories"][0]["checkedRefs"] >= 5
    st = cli("--json", "status")
    assert st.code == 0, st.stdout
    assert st.json["integrity"]["ok"] is True
    assert st.json["repositories"][0]["integrity"]["ok"] is True


def test_replaced_hook_and_forged_refs_are_found_restored_and_quarantined(
        cli: Cli, synced: Repo, client: Client, config: Path) -> None:
    main = synced.rev("refs/heads/main")
    assert main is not None
    replace_hook(config)

    # verify, status and apply all see the patched hook.
    res = cli("--json", "verify")
    assert res.code == 1
    assert res.json["error"]["code"] == "integrity"
    assert kinds(res) == ["hook-modified"]
    assert res.json["error"]["hint"] == "git-mirror apply --confirm"
    st = cli("--json", "status")
    assert st.code == 1
    assert st.json["error"]["code"] == "integrity"
    assert st.json["pendingFlush"] is False  # the rest of status is still there
    dry = cli("--json", "apply")
    assert dry.code == 0
    assert dry.json["changed"] is True
    assert dry.json["hooks"]["action"] == "update"
    assert dry.json["integrity"]["ok"] is False

    # With the hook patched, a client forges a snapshot of a commit main never had.
    client.checkout("refs/heads/main")
    forged = client.commit("not from upstream")
    snap = f"{SNAP_PREFIX}hwlab-node-runtime/main/{forged}"
    assert client.push(f"HEAD:{snap}").returncode == 0
    assert synced.rev(snap) == forged

    res = cli("--json", "verify")
    assert kinds(res) == ["forged-snapshot", "hook-modified"]
    # status (which reads again only the snapshots it has not proven before) sees it too.
    assert kinds(cli("--json", "status")) == ["forged-snapshot", "hook-modified"]
    forged_problem = next(p for p in res.json["error"]["problems"]
                          if p["kind"] == "forged-snapshot")
    assert forged_problem["ref"] == snap and "client push" in forged_problem["message"]
    assert res.json["error"]["hint"] == ("git-mirror apply --confirm && "
                                         "git-mirror verify --repair --confirm")

    # apply --confirm restores the hook; the forged snapshot survives it, and is still said.
    fixed = cli("--json", "apply", "--confirm")
    assert fixed.code == 0, fixed.stdout
    assert fixed.json["hooks"]["action"] == "update"
    assert [p["ref"] for p in fixed.json["integrity"]["problems"]] == [snap]
    assert cli("--json", "apply").json["hooks"]["action"] == "unchanged"
    res = cli("--json", "verify")
    assert res.code == 1 and kinds(res) == ["forged-snapshot"]
    assert res.json["error"]["hint"] == "git-mirror verify --repair --confirm"

    # The repair: a dry run first, then the move, recorded; never a silent delete.
    plan = cli("--json", "verify", "--repair")
    assert plan.code == 0 and plan.json["dryRun"] is True
    assert [q["ref"] for q in plan.json["wouldQuarantine"]] == [snap]
    assert synced.rev(snap) == forged
    done = cli("--json", "verify", "--repair", "--confirm")
    assert done.code == 0, done.stdout
    moved = done.json["quarantined"]
    assert [q["ref"] for q in moved] == [snap]
    assert synced.rev(snap) is None
    assert moved[0]["quarantinedAs"].startswith(QUARANTINE)
    assert synced.rev(moved[0]["quarantinedAs"]) == forged
    # Out of clients' sight.
    advertised = run_git("ls-remote", f"file://{synced.path}").stdout.decode()
    assert QUARANTINE not in advertised and forged not in advertised
    log = cli("--json", "log", "--ref", snap)
    assert [(e["operation"], e["from"], e["to"]) for e in log.json["entries"]] == \
        [("quarantine", forged, None)]
    assert log.json["entries"][0]["quarantinedAs"] == moved[0]["quarantinedAs"]
    assert cli("--json", "verify").code == 0
    assert cli("--json", "status").code == 0
    assert synced.rev("refs/heads/main") == main


def test_a_source_branch_pushed_while_unprotected_is_quarantined_and_synced_back(
        cli: Cli, synced: Repo, client: Client, config: Path) -> None:
    main = synced.rev("refs/heads/main")
    replace_hook(config)
    client.checkout("refs/heads/main")
    bad = client.commit("sneaky")
    assert client.push("HEAD:refs/heads/main").returncode == 0
    assert cli("--json", "apply", "--confirm").code == 0
    res = cli("--json", "verify")
    assert kinds(res) == ["forged-ref"]
    assert res.json["error"]["problems"][0]["ref"] == "refs/heads/main"
    done = cli("--json", "verify", "--repair", "--confirm")
    assert done.code == 0, done.stdout
    assert done.json["next"] == "git-mirror sync --confirm --wait"
    assert synced.rev(done.json["quarantined"][0]["quarantinedAs"]) == bad
    assert cli("--json", "sync", "--confirm").code == 0
    assert synced.rev("refs/heads/main") == main
    assert cli("--json", "verify").code == 0


def test_a_snapshot_moved_by_hand_is_a_mismatch(cli: Cli, synced: Repo) -> None:
    snaps = synced.refs(SNAP_PREFIX)
    ref, oid = next(iter(snaps.items()))
    other = next(o for o in synced.refs("refs/heads/").values() if o != oid)
    synced.set_ref(ref, other)
    res = cli("--json", "verify")
    assert res.code == 1
    problem = next(p for p in res.json["error"]["problems"] if p["ref"] == ref)
    assert problem["kind"] == "snapshot-mismatch"
    st = cli("--json", "status")
    assert st.code == 1 and st.json["error"]["code"] == "integrity"


def test_a_stage_ref_set_by_hand_is_forged(cli: Cli, synced: Repo) -> None:
    stage = "refs/mirror-stage/heads/main"
    lane = synced.rev(LANE)
    assert lane is not None
    synced.set_ref(stage, lane)
    res = cli("--json", "verify")
    problem = next(p for p in res.json["error"]["problems"] if p["ref"] == stage)
    assert problem["kind"] == "forged-ref"
    assert "outside git-mirror" in problem["message"]


def test_other_hooks_and_a_lost_hooks_path_are_found_and_fixed_by_apply(
        cli: Cli, synced: Repo, config: Path) -> None:
    stray = hook_path(config).with_name("post-receive")
    stray.write_text("#!/bin/sh\necho hi\n")
    os.chmod(stray, 0o755)
    own = synced.path / "hooks" / "update"
    own.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(own, 0o755)
    synced.git("config", "--unset", "core.hooksPath")
    res = cli("--json", "verify")
    assert res.code == 1
    assert kinds(res) == ["hooks-path", "stray-hook", "stray-hook"]
    fixed = cli("--json", "apply", "--confirm")
    assert fixed.code == 0, fixed.stdout
    moved = {Path(h["path"]).name: h["movedTo"] for h in fixed.json["hooks"]["strayHooks"]}
    assert set(moved) == {"post-receive", "update"}
    assert not stray.exists() and not own.exists()
    assert all(Path(m).is_file() for m in moved.values())   # kept, not deleted
    assert cli("--json", "verify").code == 0
    log = cli("--json", "log", "--operation", "apply")
    assert {e["ref"] for e in log.json["entries"]} >= {"hooks/post-receive",
                                                       "repos/hwlab.git/hooks/update"}


def test_status_beside_running_syncs_reports_no_false_problem(
        cli: Cli, synced: Repo, upstream: Repo, config: Path) -> None:
    """sync's transactions move refs and their reflogs while status reads them: status must
    never take a transaction half way for a forgery (bounded: 15 syncs, 60 s)."""
    import threading
    import time

    from git_mirror.config import load_config
    from git_mirror.mirror.status import status
    from git_mirror.mirror.sync import sync

    cfg = load_config(config)
    done = threading.Event()
    errors: list[str] = []

    def syncs() -> None:
        try:
            for i in range(15):
                upstream.commit("main", f"c{i}")
                upstream.commit("release/1.0", f"r{i}")
                res = sync(cfg, confirm=True, wait=True)
                if not res.ok:
                    errors.append(str(res.to_json()))
        finally:
            done.set()

    worker = threading.Thread(target=syncs)
    worker.start()
    deadline = time.monotonic() + 60
    seen = 0
    while not done.is_set() and time.monotonic() < deadline:
        data = status(cfg).to_json()
        assert data["integrity"]["ok"] is True, data["integrity"]
        seen += 1
    worker.join(timeout=60)
    assert not worker.is_alive() and not errors
    assert seen > 0
    assert cli("--json", "verify").code == 0
