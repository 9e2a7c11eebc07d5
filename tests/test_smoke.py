from __future__ import annotations

import json
import subprocess
from pathlib import Path

import git_mirror
from tests.support.cli import CHECKOUT, checkout_env, console_script, run_cli


def test_version_prints_the_package_version() -> None:
    from git_mirror import __version__

    res = run_cli("--version")
    assert res.code == 0
    assert __version__ in res.stdout


def test_the_tests_run_this_checkouts_code(tmp_path: Path) -> None:
    """In-process and as a process, the code under test is this checkout's src/, whatever
    ``git-mirror`` another clone put on PATH."""
    assert Path(git_mirror.__file__).resolve().is_relative_to(CHECKOUT / "src")
    script = console_script()
    # the script's own interpreter and sys.path, running the script itself
    interpreter = script.read_text(encoding="utf-8").splitlines()[0].removeprefix("#!").strip()
    probe = ("import runpy, sys, git_mirror; print(git_mirror.__file__, file=sys.stderr); "
             f"sys.argv = [{str(script)!r}, '--version']; "
             f"runpy.run_path({str(script)!r}, run_name='__main__')")
    res = subprocess.run([interpreter, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert Path(res.stderr.strip()).resolve().is_relative_to(CHECKOUT / "src"), res.stderr
    assert f"git-mirror, version {git_mirror.__version__}" in res.stdout


def test_git_mirror_is_a_git_subcommand(tmp_path: Path) -> None:
    """`git mirror ...` finds the console script on PATH (git runs git-<name>)."""
    res = subprocess.run(["git", "mirror", "--version"], capture_output=True, text=True,
                         env=checkout_env(), cwd=tmp_path, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert "git-mirror, version" in res.stdout


def test_verbose_logs_json_lines_to_stderr_and_keeps_stdout_one_object(
        tmp_path: Path, upstream: object, config: Path) -> None:
    res = run_cli("--config", config, "-v", "--json", "sync", "--confirm")
    assert res.code == 0
    assert json.loads(res.stdout)["ok"] is True  # stdout: exactly one JSON object
    lines = [json.loads(line) for line in res.stderr.splitlines()]
    assert any(e["logger"] == "git_mirror.sync" and e["repository"] == "hwlab" and e["ok"] is True
               for e in lines)
    quiet = run_cli("--config", config, "--json", "status")
    assert quiet.stderr == ""


def test_global_options_may_follow_the_command(tmp_path: Path, upstream: object,
                                               config: Path) -> None:
    before = run_cli("--config", config, "--json", "status")
    after = run_cli("status", "--config", config, "--json")
    assert before.code == after.code == 0
    assert json.loads(after.stdout)["config"] == json.loads(before.stdout)["config"]
    dry = run_cli("sync", f"--config={config}", "--dry-run", "--json")
    assert dry.code == 0 and json.loads(dry.stdout)["dryRun"] is True
    # an unknown node named after the command is still checked
    bad = run_cli("sync", "--json", "--config", config, "--node", "nope")
    assert bad.code == 2 and json.loads(bad.stdout)["error"]["code"] == "usage"


def test_hoisting_keeps_order_values_and_the_double_dash() -> None:
    from git_mirror.cli.main import hoist_global_options as hoist

    assert hoist(["status", "--json"]) == ["--json", "status"]
    assert hoist(["--config", "a.yaml", "flush", "--lane", "v03", "--confirm"]) == [
        "--config", "a.yaml", "--lane", "v03", "flush", "--confirm"]
    # one given after the command comes later, so it wins
    assert hoist(["--node", "a", "sync", "--node=b"]) == ["--node", "a", "--node=b", "sync"]
    assert hoist(["snapshots", "list", "--repo", "x", "-v"]) == [
        "-v", "snapshots", "list", "--repo", "x"]
    assert hoist(["follower", "trigger", "--", "--json"]) == ["follower", "trigger", "--", "--json"]
    assert hoist(["--json"]) == ["--json"] and hoist([]) == []


def test_json_to_a_pipe_is_one_line(tmp_path: Path, upstream: object, config: Path) -> None:
    res = subprocess.run([console_script(), "--config", str(config), "status", "--json"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("\n") == 1 and json.loads(res.stdout)["source"] == "yaml"


def _stubbed_install(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run scripts/install.sh with dpkg-query, apt-get, uv and ln replaced by stubs that only
    record their arguments: what it would change, without changing the machine."""
    import os

    bin_dir, calls = tmp_path / "stubs", tmp_path / "calls"
    bin_dir.mkdir()
    stubs = {"dpkg-query": 'echo "install ok installed"',  # every package is there
             "apt-get": 'echo "apt-get $*" >> "$CALLS"', "sudo": 'echo "sudo $*" >> "$CALLS"',
             "uv": 'echo "uv $*" >> "$CALLS"', "ln": 'echo "ln $*" >> "$CALLS"'}
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "CALLS": str(calls)}
    res = subprocess.run(["bash", str(CHECKOUT / "scripts" / "install.sh"), *args],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    return res, calls.read_text() if calls.exists() else ""


def test_install_links_nothing_outside_the_clone_unless_asked(tmp_path: Path) -> None:
    res, calls = _stubbed_install(tmp_path)
    assert res.returncode == 0, res.stderr
    assert calls == "uv sync --frozen --quiet\n"  # the clone's .venv, nothing else


def test_install_links_the_global_command_with_link_global(tmp_path: Path) -> None:
    import os

    res, calls = _stubbed_install(tmp_path, "--link-global")
    if not os.access("/usr/local/bin", os.W_OK):
        assert res.returncode == 1 and "--link-global needs write access" in res.stderr
        return
    assert res.returncode == 0, res.stderr
    sync, link = calls.splitlines()
    assert sync == "uv sync --frozen --quiet"
    ln, flags, target, name = link.split()
    assert (ln, flags, name) == ("ln", "-sf", "/usr/local/bin/git-mirror")
    assert Path(target).resolve() == (CHECKOUT / ".venv" / "bin" / "git-mirror").resolve()


def test_install_refuses_an_unknown_option(tmp_path: Path) -> None:
    res, calls = _stubbed_install(tmp_path, "--link-globally")
    assert res.returncode == 2 and "unknown option --link-globally" in res.stderr
    assert calls == ""
