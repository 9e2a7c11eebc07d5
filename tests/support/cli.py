"""Running the CLI of this checkout: in-process through ``main(argv)``, or as a process through
the console script of the environment running the tests (never a ``git-mirror`` found on PATH,
which may be another clone's)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from git_mirror.cli.main import main

# The checkout whose tests run: its src/ is what every test runs.
CHECKOUT = Path(__file__).resolve().parents[2]
# The environment running the tests (`uv run pytest`: this checkout's .venv).
BIN = Path(sys.executable).parent


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        data = json.loads(self.stdout)
        assert isinstance(data, dict)
        return data


def run_cli(*args: str | Path) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return CliResult(code, out.getvalue(), err.getvalue())


def console_script() -> Path:
    """The ``git-mirror`` console script of the environment running the tests."""
    script = BIN / "git-mirror"
    assert script.exists(), f"{script} is missing: run `uv sync` in {CHECKOUT}"
    return script


def checkout_env(**extra: str) -> dict[str, str]:
    """This process's environment with the console script's directory first on PATH, so that
    ``git-mirror`` and ``git mirror`` find this checkout's command before any other."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{path}", **extra}
