"""Shell completion, run by a real bash the way bash runs it: COMP_WORDS, COMP_CWORD, the
generated function, COMPREPLY. zsh and fish use the same protocol with their own variables;
their scripts are checked as text and their protocol through the command itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.follower import FOLLOWER, follower_config, make_build
from tests.support.gitutil import Repo

BIN = Path(sys.executable).parent
EXTRA = """\
  tools:
    upstream: {url}
    transport: {{mode: file}}
    sources:
      - branch: main
    lanes:
      prod: {{ref: gitops/prod}}
nodes:
  local: {{executor: local}}
  D601:
    executor: kubernetes
    kubernetes: {{context: d601, namespace: devops-infra}}
"""


@pytest.fixture
def completion_config(tmp_path: Path, upstream: Repo) -> Path:
    build = make_build(tmp_path, upstream)
    text = follower_config(upstream, build.script)
    repos, _, followers = text.partition("followers:\n")
    path = tmp_path / "conf" / "mirror.yaml"
    path.parent.mkdir()
    path.write_text(repos + EXTRA.format(url=upstream.url) + "followers:\n" + followers)
    res = run_cli("--config", path, "validate")
    assert res.code == 0, res.stdout + res.stderr
    return path


@pytest.fixture
def script(tmp_path: Path) -> Path:
    res = run_cli("completion", "bash")
    assert res.code == 0, res.stderr
    path = tmp_path / "git-mirror.bash"
    path.write_text(res.stdout)
    return path


def complete(script: Path, words: list[str], cwd: Path,
             config_env: Path | None = None) -> list[str]:
    """What bash offers for ``words`` (the last one is the word being completed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "COMP_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    if config_env is not None:
        env["GIT_MIRROR_CONFIG"] = str(config_env)
    array = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (f"source {script}\n"
               f"COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}\n"
               "_git_mirror_completion git-mirror\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return [ln for ln in proc.stdout.splitlines() if ln]


def test_commands_and_options(script: Path, tmp_path: Path) -> None:
    commands = complete(script, ["git-mirror", ""], tmp_path)
    assert {"sync", "flush", "apply", "status", "serve", "follower", "closeout",
            "completion"} <= set(commands)
    assert complete(script, ["git-mirror", "fl"], tmp_path) == ["flush"]
    options = complete(script, ["git-mirror", "sync", "--"], tmp_path)
    assert {"--repo", "--confirm", "--dry-run", "--wait"} <= set(options)
    assert set(complete(script, ["git-mirror", "follower", ""], tmp_path)) == {
        "list", "status", "trigger", "cleanup-state"}
    assert complete(script, ["git-mirror", "completion", ""], tmp_path) == ["bash", "zsh", "fish"]


def test_repository_ids_lanes_followers_and_nodes_come_from_the_config(
        script: Path, completion_config: Path) -> None:
    where = completion_config.parent
    cfg = ["--config", str(completion_config)]
    assert complete(script, ["git-mirror", *cfg, "sync", "--repo", ""], where) == ["hwlab", "tools"]
    assert complete(script, ["git-mirror", *cfg, "status", "--repo", "t"], where) == ["tools"]
    assert complete(script, ["git-mirror", *cfg, "--lane", ""], where) == ["prod", "v03"]
    assert complete(script, ["git-mirror", *cfg, "--node", ""], where) == ["D601", "local"]
    assert complete(script, ["git-mirror", *cfg, "follower", "status", "--follower", ""],
                    where) == sorted([FOLLOWER, "hwlab-tekton"])
    # --config after the command, as the command line accepts it, is read too.
    assert complete(script, ["git-mirror", "flush", *cfg, "--repo", ""], where) == [
        "hwlab", "tools"]


def test_the_config_is_found_like_the_commands_find_it(script: Path, completion_config: Path,
                                                       tmp_path: Path) -> None:
    by_env = complete(script, ["git-mirror", "sync", "--repo", ""], tmp_path,
                      config_env=completion_config)
    assert by_env == ["hwlab", "tools"]
    default = completion_config.with_name("git-mirror.yaml")
    default.write_text(completion_config.read_text())
    assert complete(script, ["git-mirror", "sync", "--repo", ""], default.parent) == [
        "hwlab", "tools"]


def test_a_broken_or_missing_config_completes_nothing_quietly(script: Path, tmp_path: Path) -> None:
    assert complete(script, ["git-mirror", "sync", "--repo", ""], tmp_path) == []
    bad = tmp_path / "git-mirror.yaml"
    bad.write_text("version: 1\nrepositories: [\n")
    assert complete(script, ["git-mirror", "sync", "--repo", ""], tmp_path) == []


def test_run_names_from_the_cache(script: Path, completion_config: Path) -> None:
    res = run_cli("--config", completion_config, "--json", "follower", "trigger", "--follower",
                  FOLLOWER, "--confirm", "--wait")
    assert res.code == 0, res.stdout + res.stderr
    names = complete(script, ["git-mirror", "--config", str(completion_config), "cleanup-runs",
                              "--pipeline-run", ""], completion_config.parent)
    assert names == [res.json["run"]["name"]]


def test_git_mirror_as_a_git_command_completes_through_gits_completion(
        script: Path, completion_config: Path) -> None:
    """``git mirror ...`` (git runs git-mirror): git's bash completion hands over to us."""
    git_completion = Path("/usr/share/bash-completion/completions/git")
    assert git_completion.exists(), "git's bash completion is part of Debian's git package"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "COMP_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"

    def offered(line: str) -> list[str]:
        words = line.split(" ")
        array = " ".join(f"'{w}'" for w in words)
        program = (f"source {git_completion}\nsource {script}\n"
                   f"COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}\n"
                   f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n"
                   "__git_wrap__git_main\n"
                   'printf "%s\\n" "${COMPREPLY[@]}"\n')
        proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", program],
                              cwd=completion_config.parent, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]

    assert offered(f"git mirror --config {completion_config} sync --repo ") == ["hwlab", "tools"]
    assert offered(f"git -C {completion_config.parent} mirror fl") == ["flush"]


@pytest.mark.parametrize(("shell", "marker"), [
    ("zsh", "#compdef git-mirror"), ("fish", "complete --no-files --command git-mirror")])
def test_zsh_and_fish_scripts_and_their_protocol(shell: str, marker: str,
                                                 completion_config: Path) -> None:
    res = run_cli("completion", shell)
    assert res.code == 0 and marker in res.stdout
    assert "_GIT_MIRROR_COMPLETE" in res.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "COMP_"))}
    env.update(_GIT_MIRROR_COMPLETE=f"{shell}_complete", GIT_MIRROR_CONFIG=str(completion_config),
               COMP_WORDS="git-mirror sync --repo ", COMP_CWORD="3" if shell == "zsh" else "")
    proc = subprocess.run([str(BIN / "git-mirror")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "hwlab" in proc.stdout and "tools" in proc.stdout


def test_an_unknown_shell_is_a_usage_error() -> None:
    res = run_cli("completion", "tcsh")
    assert res.code == 2
    assert "tcsh" in res.stderr
