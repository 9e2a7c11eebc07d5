"""The external contract (CONTRACT.md sections 2-4), checked from the outside.

Each test drives the real CLI against real bare repositories and asserts what a user's script
relies on: where the config is found, which keys it accepts, the defaults, the option
placement, exit codes, one JSON object with ``--json``, the error object on every failure,
dry runs that change nothing, the lane rules of sync and the client push rules.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CliResult, run_cli
from tests.support.clients import LANE, Client
from tests.support.configs import HWLAB_REPOSITORY
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
STAGE_LANE = "refs/mirror-stage/heads/gitops/v03"


def one_object(res: CliResult) -> dict[str, Any]:
    """stdout is exactly one JSON object (and nothing else)."""
    text = res.stdout.strip()
    assert text, f"nothing on stdout (stderr: {res.stderr[-500:]})"
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(text)
    assert text[end:].strip() == "", f"more than one JSON value on stdout: {text[end:end + 200]!r}"
    assert isinstance(data, dict)
    return data


def assert_error(res: CliResult, code: str, exit_code: int) -> dict[str, Any]:
    """A failure: the exit code, ``"ok": false`` and the error object with code, message, hint."""
    data = one_object(res)
    assert res.code == exit_code, (res.code, res.stdout)
    assert data["ok"] is False
    err = data["error"]
    assert {"code", "message", "hint"} <= set(err), err
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["hint"], str) and err["hint"], err
    assert "Traceback" not in res.stderr
    return err


def all_refs(*repos: Repo) -> list[dict[str, str]]:
    return [r.refs() if (r.path / "HEAD").exists() else {} for r in repos]


def tree_of(path: Path) -> list[str]:
    """Every file and directory under ``path`` (what a dry run must not create)."""
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# --- 2. The config file --------------------------------------------------------------------

def test_config_is_found_by_flag_then_environment_then_working_directory(
        tmp_path: Path, upstream: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    body = "version: 1\n" + HWLAB_REPOSITORY.format(url=upstream.url)
    for name in ("flag", "env", "cwd"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "git-mirror.yaml").write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path / "cwd")
    assert one_object(run_cli("--json", "validate"))["config"]["path"] == "git-mirror.yaml"
    monkeypatch.setenv("GIT_MIRROR_CONFIG", str(tmp_path / "env" / "git-mirror.yaml"))
    assert one_object(run_cli("--json", "validate"))["config"]["path"] == str(
        tmp_path / "env" / "git-mirror.yaml")
    flag = tmp_path / "flag" / "git-mirror.yaml"
    validated = one_object(run_cli("--json", "--config", flag, "validate"))
    assert validated["config"]["path"] == str(flag)
    # the default cache is beside the file that was found, wherever the command runs
    assert run_cli("--json", "apply", "--confirm").code == 0
    assert (tmp_path / "env" / ".git-mirror" / "repos" / "hwlab.git" / "HEAD").exists()
    assert not (tmp_path / "cwd" / ".git-mirror").exists()


def test_without_any_config_the_error_says_how_to_get_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    err = assert_error(run_cli("--json", "status"), "config", 2)
    assert "git-mirror.yaml" in err["message"]
    assert "git-mirror init" in err["hint"]


@pytest.mark.parametrize(("yaml", "key", "line"), [
    ("version: 1\nrepos: {}\n", "repos", 2),
    ("version: 1\nsnapshots:\n  namespace: x\n  keep: 3\n", "snapshots.keep", 4),
    ("version: 1\nserver:\n  tokens:\n    ci: {secretRef: {file: t}, pull: true}\n",
     "server.tokens.ci.pull", 4),
    # the keys are the contract's spelling: another spelling of a known key is unknown too
    ("version: 1\nsnapshots:\n  retention: {keep_last: 3}\n", "snapshots.retention.keep_last", 3),
    ("version: 1\nserver:\n  webhook_secret: {file: s}\n", "server.webhook_secret", 3),
    ("version: 1\nrepositories:\n  a:\n    upstream: file:///x.git\n    transport: {mode: file}\n"
     "    sources:\n      - branch: main\n        snapshot_group: g\n",
     "repositories.a.sources[0].snapshot_group", 8),
    ("version: 1\nrepositories:\n  a:\n    upstream: ssh://git@h/x.git\n    transport:\n"
     "      mode: ssh\n      identity: {file: i}\n      known_hosts: {file: k}\n",
     "repositories.a.transport.known_hosts", 8),
])
def test_unknown_keys_are_errors_naming_file_line_and_key_path(
        write_config: Callable[..., Path], yaml: str, key: str, line: int) -> None:
    path = write_config(yaml)
    res = run_cli("--json", "--config", path, "validate")
    err = assert_error(res, "config", 2)
    assert err["file"] == str(path) and err["line"] == line and err["key"] == key, err
    assert f"{path}:{line}: {key}: unknown key" in err["message"]
    assert "validate" in err["hint"]
    human = run_cli("--config", path, "validate")
    assert human.code == 2 and human.stdout == ""
    assert f"{path}:{line}: {key}" in human.stderr


FOLLOWER_OF = ("version: 1\nrepositories:\n  a:\n    upstream: file:///x.git\n"
               "    transport: {{mode: file}}\n    sources: [{{branch: main}}]\n"
               "    lanes: {{v1: {{ref: gitops/v1}}}}\nfollowers:\n  f:\n    repository: {repo}\n"
               "    branch: {branch}\n    lane: {lane}\n    trigger: {{exec: [./build.sh]}}\n")


@pytest.mark.parametrize(("repo", "branch", "lane", "key", "line", "says"), [
    ("b", "main", "v1", "followers.f.repository", 10, "(declared: a)"),
    ("a", "main", "v2", "followers.f.lane", 12, "(declared: v1)"),
    ("a", "dev", "v1", "followers.f.branch", 11, "(sources: main)"),
])
def test_a_reference_to_something_undeclared_names_what_is_declared(
        write_config: Callable[..., Path], repo: str, branch: str, lane: str, key: str,
        line: int, says: str) -> None:
    path = write_config(FOLLOWER_OF.format(repo=repo, branch=branch, lane=lane))
    err = assert_error(run_cli("--json", "--config", path, "validate"), "config", 2)
    assert (err["key"], err["line"]) == (key, line) and says in err["message"], err


def repo_with(transport: str) -> str:
    return ("version: 1\nrepositories:\n  a:\n    upstream: https://example.invalid/a.git\n"
            f"    transport: {{mode: https, token: {transport}}}\n")


@pytest.mark.parametrize("ref", ["{file: token.txt}", "{env: GIT_MIRROR_TOKEN}",
                                 "{kubernetes: {name: git-creds, key: token}}"])
def test_each_secret_ref_form_is_accepted(write_config: Callable[..., Path], ref: str) -> None:
    res = run_cli("--json", "--config", write_config(repo_with(ref)), "validate")
    assert res.code == 0, res.stdout
    assert one_object(res)["ok"] is True


@pytest.mark.parametrize(("ref", "says"), [
    ("ghp_inline_secret_value", "dictionary"),
    ("{file: a, env: B}", "exactly one of file, env, kubernetes"),
    ("{}", "exactly one of file, env, kubernetes"),
    ("{vault: x}", "unknown key"),
])
def test_a_secret_is_never_inline_and_names_one_source(
        write_config: Callable[..., Path], ref: str, says: str) -> None:
    path = write_config(repo_with(ref))
    res = run_cli("--json", "--config", path, "validate")
    err = assert_error(res, "config", 2)
    assert err["line"] == 5 and err["key"].startswith("repositories.a.transport.token"), err
    assert says in err["message"]
    assert "ghp_inline_secret_value" not in res.stdout + res.stderr


def test_defaults_cache_beside_the_config_namespace_and_group(
        tmp_path: Path, upstream: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "etc" / "git-mirror.yaml"
    conf.parent.mkdir()
    conf.write_text("version: 1\n" + HWLAB_REPOSITORY.format(url=upstream.url), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_cli("--config", conf, "apply", "--confirm").code == 0
    res = run_cli("--config", conf, "--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    mirror = Repo.at(tmp_path / "etc" / ".git-mirror" / "repos" / "hwlab.git")
    main = upstream.rev("refs/heads/main")
    r1 = upstream.rev("refs/heads/release/1.0")
    refs = mirror.refs("refs/git-mirror/snapshots/")
    # main declares snapshotGroup hwlab-node-runtime; release/* has none: the repository id
    assert refs == {
        f"refs/git-mirror/snapshots/hwlab-node-runtime/main/{main}": main,
        f"refs/git-mirror/snapshots/hwlab/release/1.0/{r1}": r1,
        f"refs/git-mirror/snapshots/hwlab/release/2.0/{upstream.rev('refs/heads/release/2.0')}":
            upstream.rev("refs/heads/release/2.0"),
    }
    assert sorted(s["ref"] for s in one_object(res)["snapshots"]) == sorted(refs)
    assert tree_of(elsewhere) == []


def test_a_relative_cache_is_beside_the_config_file(
        tmp_path: Path, upstream: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "etc" / "git-mirror.yaml"
    conf.parent.mkdir()
    conf.write_text("version: 1\ncache: data/cache\n" + HWLAB_REPOSITORY.format(url=upstream.url),
                    encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert run_cli("--config", conf, "apply", "--confirm").code == 0
    assert (tmp_path / "etc" / "data" / "cache" / "repos" / "hwlab.git" / "HEAD").exists()
    assert not (tmp_path / "data").exists()


def test_init_writes_a_commented_starter_that_validates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = run_cli("--json", "init")
    assert res.code == 0 and one_object(res)["ok"] is True
    text = (tmp_path / "git-mirror.yaml").read_text(encoding="utf-8")
    assert text.lstrip().startswith("#")
    assert run_cli("--json", "validate").code == 0
    again = run_cli("--json", "init")
    assert_error(again, "usage", 2)
    assert (tmp_path / "git-mirror.yaml").read_text(encoding="utf-8") == text
    other = tmp_path / "sub" / "other.yaml"
    other.parent.mkdir()
    assert run_cli("--json", "--config", other, "init").code == 0
    assert run_cli("--json", "--config", other, "validate").code == 0


def test_validate_checks_and_changes_nothing(config: Path, upstream: Repo) -> None:
    before = upstream.refs()
    res = run_cli("--json", "--config", config, "validate")
    assert res.code == 0 and one_object(res)["ok"] is True
    assert tree_of(config.parent / ".git-mirror") == []
    assert upstream.refs() == before


# --- 3. Commands: options, exit codes, one JSON object, errors --------------------------------

def test_global_options_go_before_or_after_the_command(config: Path, synced: Repo) -> None:
    forms = [
        ["--config", str(config), "--json", "status", "--repo", "hwlab"],
        ["status", "--repo", "hwlab", "--json", "--config", str(config)],
        ["--json", "status", f"--config={config}", "--repo", "hwlab"],
    ]
    outs = [one_object(run_cli(*f)) for f in forms]
    assert all(o["ok"] is True for o in outs)
    assert len({json.dumps(o["repositories"], sort_keys=True) for o in outs}) == 1
    lane = [run_cli("--config", config, "--lane", "v03", "--json", "flush"),
            run_cli("--config", config, "flush", "--lane", "v03", "--json")]
    assert [one_object(r)["lane"] for r in lane] == ["v03", "v03"]


@pytest.mark.parametrize("args", [
    ["status"], ["status", "--repo", "hwlab"], ["validate"], ["apply"], ["sync"], ["flush"],
    ["snapshots", "list"], ["snapshots", "prune"], ["follower", "list"],
])
def test_json_is_exactly_one_object_and_logs_go_to_stderr(cli: Cli, synced: Repo,
                                                          args: list[str]) -> None:
    res = cli("-v", "--json", *args)
    data = one_object(res)
    assert res.code == 0 and data["ok"] is True, res.stdout
    for line in res.stderr.splitlines():   # -v logs: JSON lines on stderr, never on stdout
        json.loads(line)


@pytest.mark.parametrize(("args", "says"), [
    (["no-such-command"], "no-such-command"),
    (["status", "--no-such-option"], "--no-such-option"),
    (["status", "--repo", "nope"], "nope"),
    (["sync", "--repo", "nope"], "nope"),
    (["flush", "--repo", "nope"], "nope"),
    (["snapshots", "list", "--repo", "nope"], "nope"),
    (["snapshots", "prune", "--repo", "nope"], "nope"),
    (["--lane", "nope", "flush"], "nope"),
    (["--lane", "nope", "sync"], "nope"),
    (["--lane", "nope", "status"], "nope"),
    (["--node", "nope", "status"], "nope"),
    (["sync", "--dry-run", "--confirm"], "--dry-run"),
    (["follower", "trigger"], "--follower"),
    (["follower", "trigger", "--follower", "nope"], "nope"),
    (["closeout", "--follower", "nope", "--merge-commit", "0" * 40], "nope"),
])
def test_usage_errors_exit_2_with_the_error_object(cli: Cli, synced: Repo, args: list[str],
                                                   says: str) -> None:
    before = synced.refs()
    res = cli("--json", *args)
    err = assert_error(res, "usage", 2)
    assert says in err["message"]
    assert synced.refs() == before
    human = cli(*args)
    assert human.code == 2 and "Traceback" not in human.stderr
    assert says in human.stderr


def test_lane_selects_the_repositories_that_declare_it_in_status_too(
        write_config: Callable[..., Path], upstream: Repo) -> None:
    path = write_config("version: 1\n" + HWLAB_REPOSITORY.format(url=upstream.url)
                        + f"  plain:\n    upstream: {upstream.url}\n"
                        + "    transport: {mode: file}\n")
    every = one_object(run_cli("--config", path, "--json", "status"))
    assert [r["id"] for r in every["repositories"]] == ["hwlab", "plain"]
    for args in (["--lane", "v03", "status"], ["status", "--lane", "v03"]):
        res = run_cli("--config", path, "--json", *args)
        assert res.code == 0 and [r["id"] for r in one_object(res)["repositories"]] == ["hwlab"]


def test_an_operation_that_fails_exits_1_with_the_error_and_a_hint(
        cli: Cli, synced: Repo, upstream: Repo, tmp_path: Path) -> None:
    upstream.path.rename(tmp_path / "upstream-gone.git")
    res = cli("--json", "sync", "--confirm")
    err = assert_error(res, "upstream-unreachable", 1)
    assert upstream.url in err["message"]
    assert "git-mirror" in err["hint"]
    human = cli("sync", "--confirm")
    assert human.code == 1 and "upstream-unreachable" in human.stderr


def test_a_busy_repository_fails_without_wait_and_says_how_to_wait(
        cli: Cli, synced: Repo, config: Path, upstream: Repo) -> None:
    import fcntl

    lock = config.parent / ".git-mirror" / "state" / "hwlab" / "lock"
    new = upstream.commit("main", "while busy")
    with open(lock, "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)    # another operation on the repository
        for command in ("sync", "flush"):
            err = assert_error(cli("--json", command, "--confirm"), "busy", 1)
            assert err["hint"] == f"git-mirror {command} --repo hwlab --confirm --wait"
        assert synced.rev("refs/heads/main") != new
    res = cli("--json", "sync", "--confirm", "--wait")
    assert res.code == 0 and synced.rev("refs/heads/main") == new


def test_a_command_before_apply_says_to_apply(cli: Cli, config: Path) -> None:
    err = assert_error(cli("--json", "flush", "--confirm"), "not-applied", 1)
    assert "apply --confirm" in err["hint"]


def test_an_io_error_is_the_error_object_not_a_traceback(
        write_config: Callable[..., Path], upstream: Repo, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    path = write_config(f"version: 1\ncache: {blocker}/cache\n"
                        + HWLAB_REPOSITORY.format(url=upstream.url))
    for args in (["apply", "--confirm"], ["sync", "--confirm"]):
        res = run_cli("--config", path, "--json", *args)
        err = assert_error(res, "io", 1)
        assert str(blocker) in err["message"]
        human = run_cli("--config", path, *args)
        assert human.code == 1 and "Traceback" not in human.stderr
        assert "error [io]" in human.stderr


def test_a_full_disk_is_its_own_code() -> None:
    import errno

    from git_mirror.cli.failures import as_error

    err = as_error(OSError(errno.ENOSPC, "No space left on device", "/cache/state/runs.jsonl"))
    assert err.code == "disk-full" and "/cache/state/runs.jsonl" in err.message
    assert err.hint and "free space" in err.hint
    assert as_error(ValueError("boom")).to_json()["code"] == "error"


def test_a_full_stdout_is_one_line_on_stderr_not_a_traceback(config: Path, synced: Repo) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "git-mirror"      # this checkout's console script
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    for mode in (["--json"], []):                             # the JSON object, the text
        with open("/dev/full", "w", encoding="utf-8") as full:   # writes fail with ENOSPC
            res = subprocess.run([str(script), "--config", str(config), *mode, "status"],
                                 stdout=full, stderr=subprocess.PIPE, text=True, env=env,
                                 timeout=120, check=False)
        assert res.returncode == 1, mode
        assert "Traceback" not in res.stderr
        assert res.stderr.strip().splitlines() == [
            "error [disk-full]: the result could not be written to stdout: "
            "No space left on device"], mode


def test_verify_names_a_tampered_hook_as_integrity_and_apply_restores_it(
        cli: Cli, config: Path, synced: Repo) -> None:
    ok = cli("--json", "verify")
    assert ok.code == 0 and one_object(ok)["ok"] is True
    hook = config.parent / ".git-mirror" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    for args in (["verify"], ["verify", "--repo", "hwlab"]):
        err = assert_error(cli("--json", *args), "integrity", 1)
        assert str(hook) in err["message"] and "apply --confirm" in err["hint"]
    assert_error(cli("--json", "verify", "--repo", "nope"), "usage", 2)
    assert cli("--json", "apply", "--confirm").code == 0
    assert cli("--json", "verify").code == 0


# --- dry runs --------------------------------------------------------------------------------

def test_mutating_commands_without_confirm_are_dry_runs_that_change_nothing(
        cli: Cli, config: Path, upstream: Repo, mirror: Repo) -> None:
    cache = config.parent / ".git-mirror"
    # before apply: nothing may be created, not even the cache directory
    for args in (["apply"], ["apply", "--dry-run"], ["sync"], ["sync", "--dry-run"]):
        res = cli("--json", *args)
        data = one_object(res)
        assert res.code == 0 and data["dryRun"] is True, res.stdout
        assert tree_of(cache) == []
    assert cli("--json", "apply", "--confirm").code == 0
    assert cli("--json", "sync", "--confirm").code == 0
    upstream.commit("main", "new upstream work")          # something for sync to do
    client = Client(mirror.path, config.parent / "ci")
    client.lane_commit("pending lane work")                # something for flush to do
    files = tree_of(cache / "repos")
    before = all_refs(upstream, mirror)
    for args in (["sync"], ["sync", "--dry-run"], ["flush"], ["flush", "--dry-run"],
                 ["apply"], ["snapshots", "prune"]):
        res = cli("--json", *args)
        data = one_object(res)
        assert res.code == 0 and data["dryRun"] is True, (args, res.stdout)
        assert all_refs(upstream, mirror) == before, args
        assert tree_of(cache / "repos") == files, args
    assert one_object(cli("--json", "sync"))["updated"]      # the plan says what would move
    assert one_object(cli("--json", "flush"))["wouldPush"]
    human = cli("sync")
    assert human.code == 0 and "dry run" in human.stdout


# --- sync and lanes ----------------------------------------------------------------------------

def lane_of(data: dict[str, Any], name: str = "v03") -> dict[str, Any]:
    return next(x for x in data["repositories"][0]["lanes"] if x["name"] == name)


def test_a_lane_missing_in_the_mirror_starts_at_the_upstream_tip(
        cli: Cli, upstream: Repo, mirror: Repo) -> None:
    assert cli("apply", "--confirm").code == 0
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0
    tip = upstream.rev(f"{LANE}")
    assert mirror.rev(LANE) == tip and mirror.rev(STAGE_LANE) == tip
    assert {"ref": LANE, "from": None, "to": tip} in [
        {k: u[k] for k in ("ref", "from", "to")} for u in one_object(res)["updated"]]


def test_a_lane_behind_upstream_fast_forwards(cli: Cli, upstream: Repo, synced: Repo) -> None:
    old = synced.rev(LANE)
    new = upstream.commit("gitops/v03", "upstream lane work")
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0
    assert synced.rev(LANE) == new
    updated = [{k: u[k] for k in ("ref", "from", "to")} for u in one_object(res)["updated"]]
    assert {"ref": LANE, "from": old, "to": new} in updated
    status = one_object(cli("--json", "status"))
    assert lane_of(status)["pendingFlush"] is False and lane_of(status)["githubInSync"] is True


def test_a_lane_ahead_of_upstream_is_left_for_flush(
        cli: Cli, upstream: Repo, synced: Repo, client: Client) -> None:
    ahead = client.lane_commit("pipeline output")
    res = cli("--json", "sync", "--confirm")
    assert res.code == 0
    assert synced.rev(LANE) == ahead and upstream.rev(LANE) != ahead
    status = one_object(cli("--json", "status"))
    assert status["pendingFlush"] is True and status["githubInSync"] is False
    lane = lane_of(status)
    assert (lane["pendingFlush"], lane["githubInSync"], lane["diverged"]) == (True, False, False)
    assert lane["mirrorCommit"] == ahead and lane["githubCommit"] == upstream.rev(LANE)


def test_a_diverged_lane_is_left_exactly_and_reported(
        cli: Cli, upstream: Repo, synced: Repo, client: Client) -> None:
    ours = client.lane_commit("ours")
    theirs = upstream.commit("gitops/v03", "theirs")
    res = cli("--json", "sync", "--confirm")
    data = one_object(res)
    assert synced.rev(LANE) == ours                      # never rewound, never merged
    assert synced.rev(STAGE_LANE) == theirs              # upstream as last observed
    assert data["diverged"] is True
    assert data["repositories"][0]["lanes"][0]["diverged"] is True
    assert LANE not in [u["ref"] for u in data["updated"]]
    status = one_object(cli("--json", "status"))
    assert lane_of(status)["diverged"] is True and status["pendingFlush"] is True
    flush = cli("--json", "flush", "--confirm")
    assert_error(flush, "diverged", 1)
    assert upstream.rev(LANE) == theirs and synced.rev(LANE) == ours


def test_sync_json_lists_what_moved_and_only_the_snapshots_it_created(
        cli: Cli, upstream: Repo, synced: Repo) -> None:
    again = one_object(cli("--json", "sync", "--confirm"))
    assert again["ok"] is True and again["updated"] == [] and again["snapshots"] == []
    old = synced.rev("refs/heads/main")
    new = upstream.commit("main", "one more")
    data = one_object(cli("--json", "sync", "--confirm"))
    snap = f"refs/unidesk/snapshots/hwlab-node-runtime/main/{new}"
    assert [{k: s[k] for k in ("ref", "commit")} for s in data["snapshots"]] == [
        {"ref": snap, "commit": new}]
    updated = [{k: u[k] for k in ("ref", "from", "to")} for u in data["updated"]]
    assert {"ref": "refs/heads/main", "from": old, "to": new} in updated
    assert synced.rev(snap) == new
    # an earlier snapshot still names its commit
    assert synced.rev(f"refs/unidesk/snapshots/hwlab-node-runtime/main/{old}") == old


# --- 4. JSON shapes ------------------------------------------------------------------------------

def test_status_json_has_the_contract_fields_and_needs_no_network(
        cli: Cli, config: Path, upstream: Repo, synced: Repo, tmp_path: Path) -> None:
    upstream.path.rename(tmp_path / "away.git")          # no upstream: status reads the cache
    res = cli("--json", "status")
    data = one_object(res)
    assert res.code == 0
    assert {"ok": True, "node": "local", "source": "yaml"}.items() <= data.items()
    assert data["config"]["path"] == str(config) and len(data["config"]["sha256"]) == 64
    assert (data["pendingFlush"], data["githubInSync"]) == (False, True)
    (repo,) = data["repositories"]
    assert repo["id"] == "hwlab"
    assert ({"mode": "file", "url": upstream.url, "source": "yaml"}.items()
            <= repo["transport"].items())
    assert {"mode": "none", "source": "yaml"}.items() <= repo["proxy"].items()
    assert repo["secrets"] == []
    assert repo["refSources"] == {"githubFieldsAreMirrorStageCache": True,
                                  "stagePrefix": "refs/mirror-stage/"}
    assert repo["lastSync"]["ok"] is True and repo["lastSync"]["at"].endswith("Z")
    main = synced.rev("refs/heads/main")
    src = next(s for s in repo["sources"] if s["branch"] == "main")
    assert src["mirrorCommit"] == src["githubCommit"] == main
    assert src["snapshotRef"] == f"refs/unidesk/snapshots/hwlab-node-runtime/main/{main}"
    assert {s["branch"] for s in repo["sources"]} == {"main", "release/1.0", "release/2.0"}
    (lane,) = repo["lanes"]
    assert {"name": "v03", "ref": LANE, "pendingFlush": False, "githubInSync": True,
            "diverged": False}.items() <= lane.items()
    assert lane["mirrorCommit"] == lane["githubCommit"] == synced.rev(LANE)
    assert (repo["pendingFlush"], repo["githubInSync"]) == (False, True)
    assert len(cli("--json", "status", "--repo", "hwlab").json["repositories"]) == 1


def test_status_names_the_declared_proxy_and_secrets_without_their_values(
        write_config: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "id").write_text("not really a key\n", encoding="utf-8")
    monkeypatch.setenv("GM_TOKEN", "tok-value-0f9e8d7c")
    path = write_config(textwrap.dedent("""\
        version: 1
        proxies:
          corp: {mode: http-connect, url: http://127.0.0.1:3128}
        repositories:
          hwlab:
            upstream: https://github.com/example/hwlab.git
            transport: {mode: https, token: {env: GM_TOKEN}, proxy: corp}
        """))
    res = run_cli("--config", path, "--json", "status")
    data = one_object(res)
    assert res.code == 0
    (repo,) = data["repositories"]
    assert ({"mode": "http-connect", "name": "corp", "source": "yaml"}.items()
            <= repo["proxy"].items())
    assert repo["transport"]["mode"] == "https"
    (secret,) = repo["secrets"]
    assert secret["role"] == "token" and secret["sourceRef"] == "env:GM_TOKEN"
    assert secret["fingerprint"]
    assert "tok-value-0f9e8d7c" not in res.stdout + res.stderr


def test_flush_confirm_json_has_the_contract_fields(
        cli: Cli, upstream: Repo, synced: Repo, client: Client) -> None:
    old = upstream.rev(LANE)
    new = client.lane_commit("to publish")
    res = cli("--json", "flush", "--confirm")
    data = one_object(res)
    assert res.code == 0 and data["ok"] is True and data["dryRun"] is False
    assert [{k: p[k] for k in ("ref", "from", "to")} for p in data["pushed"]] == [
        {"ref": LANE, "from": old, "to": new}]
    assert data["partialSuccess"] is None and data["partialSuccessRecovered"] is False
    assert data["postPushRecovery"] is None
    assert (data["pendingFlush"], data["githubInSync"]) == (False, True)
    assert upstream.rev(LANE) == new and synced.rev(STAGE_LANE) == new


# --- serve's push rules, through the mirror's own receive-pack ------------------------------

def test_clients_push_lanes_only_fast_forward_only_with_the_reason(
        synced: Repo, client: Client) -> None:
    tip = client.lane_commit("lane work")
    main = synced.rev("refs/heads/main")
    snaps = synced.refs("refs/unidesk/snapshots/")
    snap = next(iter(snaps))
    client.checkout("refs/heads/main")
    on_main = client.commit("not for a source branch")   # a fast-forward of main: still refused
    cases = [
        (f"{on_main}:refs/heads/main", "source branch"),
        (f"+{tip}:refs/heads/main", "source branch"),
        (f"+{tip}:{snap}", "snapshot"),
        (f"{tip}:refs/unidesk/snapshots/hwlab-node-runtime/main/{tip}", "snapshot"),
        (f":{snap}", "snapshot"),
        (f"+{tip}:refs/mirror-stage/heads/gitops/v03", "refused"),
        (f"+{tip}~1:{LANE}", "fast-forward"),
        (f":{LANE}", "refused"),
    ]
    for refspec, why in cases:
        res = client.push(refspec)
        err = res.stderr.decode()
        assert res.returncode != 0, refspec
        assert why in err, (refspec, err)
    assert synced.rev("refs/heads/main") == main
    assert synced.refs("refs/unidesk/snapshots/") == snaps
    assert synced.rev(LANE) == tip
    assert synced.rev("refs/mirror-stage/heads/gitops/v03") != tip


def test_help_lists_the_contract_commands() -> None:
    res = run_cli("--help")
    assert res.code == 0
    for command in ("init", "validate", "status", "apply", "render", "sync", "flush", "serve",
                    "snapshots", "follower", "closeout", "cleanup-runs"):
        assert f"  {command}" in res.stdout, command
