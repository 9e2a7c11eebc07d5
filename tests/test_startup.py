"""What the CLI loads to start: a command that logs nothing does not import the log library.

structlog (with what it pulls in) costs more to import than the rest of the CLI's start-up
(bench/bench_sync.py's "CLI floor" row measures it); the log pipeline loads it for the first
line written, so ``--version`` and a quiet ``validate`` never do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.cli import checkout_env

PROBE = """
import json, sys
from git_mirror.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.__stdout__.write(json.dumps({"structlog": "structlog" in sys.modules}) + "\\n")
"""


def _loaded(*argv: str, cwd: Path) -> dict[str, bool]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         timeout=60, cwd=cwd, env=checkout_env(), check=False)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_command_that_logs_nothing_does_not_import_structlog(tmp_path: Path) -> None:
    assert _loaded("--version", cwd=tmp_path) == {"structlog": False}


FIRST_LINE = """
import io, json, logging, sys
from git_mirror import logs
out = io.StringIO()
logs.configure(logging.INFO, stream=out)
before = "structlog" in sys.modules
logging.getLogger("git_mirror.sync").warning("first line", extra={"repository": "hwlab"})
line = json.loads(out.getvalue())
sys.__stdout__.write(json.dumps({"before": before, "after": "structlog" in sys.modules,
                                 "line": line}) + "\\n")
"""


def test_the_first_line_written_loads_it_and_has_every_field(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", FIRST_LINE], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env=checkout_env(), check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert (seen["before"], seen["after"]) == (False, True)
    line = seen["line"]
    assert (line["event"], line["level"], line["logger"], line["repository"]) == (
        "first line", "warning", "git_mirror.sync", "hwlab")
    assert line["timestamp"].endswith("Z")
