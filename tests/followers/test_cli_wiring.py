"""The follower commands are part of the CLI by a normal import: listed by ``--help``, and a
module that cannot be imported fails loudly instead of dropping its commands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import git_mirror.cli
import git_mirror.kube
from git_mirror.cli.main import main
from git_mirror.errors import Code
from tests.support.cli import run_cli
from tests.support.follower import FOLLOWER

FOLLOWER_COMMANDS = ("follower", "closeout", "cleanup-runs")


def _commands_listed(help_text: str) -> set[str]:
    """The command names of the ``Commands:`` section of click's help."""
    section = help_text.partition("Commands:")[2]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  ")}


def test_help_lists_the_follower_commands() -> None:
    res = run_cli("--help")
    assert res.code == 0, res.stderr
    listed = _commands_listed(res.stdout)
    assert set(FOLLOWER_COMMANDS) <= listed, listed


def test_an_unimportable_follower_cli_fails_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes ``import git_mirror.cli.followers`` raise.
    monkeypatch.setitem(sys.modules, "git_mirror.cli.followers", None)
    monkeypatch.delattr(git_mirror.cli, "followers", raising=False)
    with pytest.raises(ImportError, match=r"git_mirror\.cli\.followers"):
        main(["--help"])


def test_an_unimportable_kube_backend_fails_the_follower_command(
        monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    monkeypatch.setitem(sys.modules, "git_mirror.kube.followers", None)
    monkeypatch.delattr(git_mirror.kube, "followers", raising=False)
    res = run_cli("--config", config, "--json", "follower", "list")
    assert res.code == 1, res.stdout
    assert res.json["ok"] is False
    assert res.json["error"]["code"] == Code.ERROR


def test_cleanup_state_still_accepts_wait(config: Path) -> None:
    # --wait is accepted for symmetry with the other follower commands; cleanup never waits.
    res = run_cli("--config", config, "--json", "follower", "cleanup-state", "--follower",
                  FOLLOWER, "--wait")
    assert res.code == 0, res.stdout
    assert res.json["dryRun"] is True and res.json["follower"] == FOLLOWER
