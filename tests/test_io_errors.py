"""A file system error that no operation turns into its own error still ends in the JSON
error object and exit code 1 (CONTRACT 5), never a traceback."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import run_cli


def test_an_unwritable_path_is_a_json_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    res = run_cli("--json", "demo", "--dir", str(blocker / "demo"))
    assert res.code == 1, res.stdout
    err = res.json["error"]
    assert res.json["ok"] is False and err["code"] == "io"
    assert str(blocker / "demo") in err["message"] and err["hint"]
