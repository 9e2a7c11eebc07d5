"""flush: lane commits from CI reach upstream fast-forward only, exactly once, truthfully told."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from git_mirror.mirror.lock import repo_lock
from tests.support.cli import CliResult, run_cli
from tests.support.clients import LANE, Client
from tests.support.gitutil import Repo

STAGE_LANE = "refs/mirror-stage/heads/gitops/v03"
Cli = Callable[..., CliResult]




def lane_status(cli: Cli) -> dict[str, object]:
    data = cli("--json", "status").json
    lane = data["repositories"][0]["lanes"][0]
    assert isinstance(lane, dict)
    return {**lane, "top.pendingFlush": data["pendingFlush"],
            "top.githubInSync": data["githubInSync"]}


def test_ci_lane_commit_is_flushed_once_and_reported(cli: Cli, upstream: Repo, synced: Repo,
                                                     client: Client) -> None:
    before = upstream.rev(LANE)
    new = client.lane_commit("deploy v2")
    assert synced.rev(LANE) == new
    st = lane_status(cli)
    assert st["pendingFlush"] is True and st["top.pendingFlush"] is True
    assert st["githubInSync"] is False

    dry = cli("--json", "flush")
    assert dry.code == 0, dry.stdout
    assert dry.json["dryRun"] is True
    assert dry.json["pushed"] == []
    assert dry.json["wouldPush"] == [{"repository": "hwlab", "ref": LANE, "from": before,
                                      "to": new}]
    assert upstream.rev(LANE) == before
    assert synced.rev(STAGE_LANE) == before

    res = cli("--json", "flush", "--confirm")
    assert res.code == 0, res.stdout
    data = res.json
    assert data["ok"] is True and data["dryRun"] is False
    assert data["pushed"] == [{"repository": "hwlab", "ref": LANE, "from": before, "to": new}]
    assert data["partialSuccess"] is None
    assert data["partialSuccessRecovered"] is False
    assert data["postPushRecovery"] is None
    assert data["pendingFlush"] is False and data["githubInSync"] is True
    assert upstream.rev(LANE) == new
    assert upstream.is_ancestor(before or "", new)
    assert synced.rev(STAGE_LANE) == new

    st = lane_status(cli)
    assert st["pendingFlush"] is False and st["githubInSync"] is True
    assert st["top.pendingFlush"] is False and st["top.githubInSync"] is True
    last = cli("--json", "status").json["repositories"][0]["lastFlush"]
    assert last["ok"] is True

    again = cli("--json", "flush", "--confirm")
    assert again.code == 0, again.stdout
    assert again.json["pushed"] == []
    assert upstream.rev(LANE) == new


def test_human_dry_run_names_ref_from_and_to(cli: Cli, upstream: Repo, client: Client) -> None:
    before = upstream.rev(LANE) or ""
    new = client.lane_commit("deploy v2")
    res = cli("flush")
    assert res.code == 0
    assert "dry run" in res.stdout
    assert f"  would push hwlab {LANE}  {before[:12]} -> {new[:12]}" in res.stdout.splitlines()
    assert upstream.rev(LANE) == before
    done = cli("flush", "--confirm")
    assert done.code == 0, done.stdout
    assert f"  pushed hwlab {LANE}  {before[:12]} -> {new[:12]}" in done.stdout.splitlines()


def test_diverged_lane_is_kept_reported_and_not_pushed(cli: Cli, upstream: Repo, synced: Repo,
                                                       client: Client) -> None:
    theirs = upstream.commit("gitops/v03", "someone else's deploy")
    ours = client.lane_commit("our deploy")

    sync = cli("--json", "sync", "--confirm")
    assert sync.code == 0, sync.stdout
    assert synced.rev(LANE) == ours  # sync never rewinds a lane
    # and says so: "diverged": true overall and per repository, with both commits named
    assert sync.json["diverged"] is True and sync.json["repositories"][0]["diverged"] is True
    warning = sync.json["repositories"][0]["warnings"][0]
    assert ours in warning and theirs in warning
    assert synced.rev(STAGE_LANE) == theirs
    st = lane_status(cli)
    assert st["diverged"] is True and st["pendingFlush"] is True

    before_refs = synced.refs()
    dry = cli("--json", "flush")
    assert dry.code == 0  # a dry run exits 0 and shows the divergence
    assert dry.json["diverged"] is True and dry.json["wouldPush"] == []
    assert ours in dry.json["repositories"][0]["warnings"][0]
    res = cli("--json", "flush", "--confirm")
    assert res.code == 1
    err = res.json["error"]
    assert err["code"] == "diverged"
    assert ours in err["message"] and theirs in err["message"]
    assert err["hint"]
    assert res.json["pushed"] == []
    assert res.json["diverged"] is True
    assert res.json["repositories"][0]["lanes"][0]["diverged"] is True
    assert upstream.rev(LANE) == theirs
    assert synced.refs() == before_refs
    assert lane_status(cli)["diverged"] is True
    overall = cli("--json", "status").json
    assert overall["diverged"] is True and overall["repositories"][0]["diverged"] is True


def test_flush_without_fresh_sync_detects_upstream_move(cli: Cli, upstream: Repo, synced: Repo,
                                                        client: Client) -> None:
    """Upstream moved after the last sync: flush checks upstream itself, not only the stage."""
    stage_before = synced.rev(STAGE_LANE)
    theirs = upstream.commit("gitops/v03", "someone else's deploy")
    ours = client.lane_commit("our deploy")
    before_refs = synced.refs()

    res = cli("--json", "flush", "--confirm")
    assert res.code == 1
    assert res.json["error"]["code"] == "diverged"
    assert ours in res.json["error"]["message"] and theirs in res.json["error"]["message"]
    assert upstream.rev(LANE) == theirs
    assert synced.refs() == before_refs
    assert synced.rev(STAGE_LANE) == stage_before


def test_retry_after_lost_push_report_pushes_nothing(cli: Cli, upstream: Repo, synced: Repo,
                                                     client: Client) -> None:
    """Upstream already has the lane commit (a push whose report never arrived)."""
    new = client.lane_commit("deploy v2")
    synced.git("push", "--quiet", upstream.url, f"{new}:{LANE}")  # what the lost push did
    assert lane_status(cli)["pendingFlush"] is True  # the stage still says otherwise

    res = cli("--json", "flush", "--confirm")
    assert res.code == 0, res.stdout
    assert res.json["pushed"] == []
    assert res.json["pendingFlush"] is False and res.json["githubInSync"] is True
    assert synced.rev(STAGE_LANE) == new


def test_lane_behind_upstream_is_left_for_sync(cli: Cli, upstream: Repo, synced: Repo) -> None:
    lane = synced.rev(LANE)
    newer = upstream.commit("gitops/v03", "upstream deploy")
    res = cli("--json", "flush", "--confirm")
    assert res.code == 0, res.stdout
    assert res.json["pushed"] == []
    assert upstream.rev(LANE) == newer
    assert synced.rev(LANE) == lane


def test_upstream_moved_forward_within_the_lane_is_still_fast_forwarded(
        cli: Cli, upstream: Repo, synced: Repo, client: Client) -> None:
    """Upstream took part of the lane since the last sync: the stage lease is stale, flush
    looks at upstream, sees its commit in the lane and pushes the rest, leased on it."""
    first = client.lane_commit("deploy part 1")
    ours = client.lane_commit("deploy part 2")
    synced.git("push", "--quiet", upstream.url, f"{first}:{LANE}")

    res = cli("--json", "flush", "--confirm")
    assert res.code == 0, res.stdout
    assert res.json["pushed"] == [{"repository": "hwlab", "ref": LANE, "from": first, "to": ours}]
    assert upstream.rev(LANE) == ours
    assert synced.rev(STAGE_LANE) == ours


def test_concurrent_upstream_change_is_refused_by_the_lease(cli: Cli, upstream: Repo, synced: Repo,
                                                            client: Client, tmp_path: Path) -> None:
    """Upstream moves again between flush's look at it and its push: the lease refuses.

    Every value the racer writes is an ancestor of the lane, so a push without the lease
    would succeed: only the lease keeps flush from writing over a value it has not checked.
    """
    first = client.lane_commit("deploy part 1")
    second = client.lane_commit("deploy part 2")
    ours = client.lane_commit("deploy part 3")
    synced.git("push", "--quiet", upstream.url, f"{first}:{LANE}", f"{second}:refs/race/second")
    wrapper = tmp_path / "upload-pack-racer"
    wrapper.write_text(
        "#!/bin/sh\n"
        "git upload-pack \"$@\"; rc=$?\n"
        f"git --git-dir='{upstream.path}' update-ref {LANE} {second}\n"
        "exit $rc\n", encoding="utf-8")
    wrapper.chmod(0o755)
    synced.git("config", f"remote.{upstream.url}.uploadpack", str(wrapper))

    res = cli("--json", "flush", "--confirm")
    assert res.code == 1, res.stdout
    err = res.json["error"]
    assert err["code"] == "push-rejected"
    assert "stale info" in err["message"]
    assert res.json["pushed"] == []
    assert upstream.rev(LANE) == second  # what the racer wrote stays
    assert synced.rev(LANE) == ours


def test_new_lane_is_created_upstream_and_lane_option_limits(
        write_config: Callable[..., Path], upstream: Repo, tmp_path: Path) -> None:
    cfg = write_config(f"""\
        version: 1
        repositories:
          hwlab:
            upstream: {upstream.url}
            transport: {{mode: file}}
            sources: [{{branch: main}}]
            lanes:
              v03: {{ref: gitops/v03}}
              v04: {{ref: gitops/v04}}
        """)

    def cli(*args: str) -> CliResult:
        return run_cli("--config", cfg, *args)

    assert cli("apply", "--confirm").code == 0
    assert cli("sync", "--confirm").code == 0
    mirror = Repo(cfg.parent / ".git-mirror" / "repos" / "hwlab.git")
    client = Client(mirror.path, tmp_path / "ci")
    v03 = client.lane_commit("v03 deploy")
    client.checkout("refs/heads/main")
    v04 = client.commit("v04 start")
    assert client.push("HEAD:refs/heads/gitops/v04").returncode == 0
    v03_before = upstream.rev(LANE)

    # --lane (like every global option) may also follow the command, as in `flush --lane NAME`
    res = cli("flush", "--lane", "v04", "--confirm", "--json")
    assert res.code == 0, res.stdout
    assert res.json["pushed"] == [{"repository": "hwlab", "ref": "refs/heads/gitops/v04",
                                   "from": None, "to": v04}]
    assert upstream.rev("refs/heads/gitops/v04") == v04
    assert upstream.rev(LANE) == v03_before
    assert res.json["pendingFlush"] is True  # v03 still waits

    res = cli("--json", "flush", "--confirm")
    assert res.code == 0, res.stdout
    assert [p["ref"] for p in res.json["pushed"]] == [LANE]
    assert upstream.rev(LANE) == v03
    assert res.json["pendingFlush"] is False

    bad = cli("--json", "--lane", "nope", "flush")
    assert bad.code == 2
    assert bad.json["error"]["code"] == "usage"


def test_flush_waits_for_the_repository_lock(cli: Cli, upstream: Repo, synced: Repo,
                                             client: Client, config: Path) -> None:
    new = client.lane_commit("deploy v2")
    state = config.parent / ".git-mirror" / "state" / "hwlab"
    released = threading.Event()

    def hold() -> None:
        with repo_lock(state, "hwlab", wait=True, command="sync"):
            held.set()
            released.wait(10)

    held = threading.Event()
    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        busy = cli("--json", "flush", "--confirm")
        assert busy.code == 1
        assert busy.json["error"]["code"] == "busy"
        assert upstream.rev(LANE) != new
        threading.Timer(0.3, released.set).start()
        started = time.monotonic()
        waited = cli("--json", "flush", "--confirm", "--wait")
        assert waited.code == 0, waited.stdout
        assert time.monotonic() - started >= 0.2
        assert upstream.rev(LANE) == new
    finally:
        released.set()
        t.join(10)


def test_flush_before_apply_says_what_to_run(cli: Cli) -> None:
    res = cli("--json", "flush", "--confirm")
    assert res.code == 1
    assert res.json["error"]["code"] == "not-applied"
    assert "apply --confirm" in res.json["error"]["hint"]
