"""The layers of the package hold: ``lint-imports`` (import-linter, configured in
pyproject.toml) keeps every contract, and a planted upward import is caught, so the check
cannot pass vacuously."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with pyproject.toml's contracts, on the package found under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(ROOT / "pyproject.toml")],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
                          check=False)


def test_every_import_contract_is_kept(tmp_path: Path) -> None:
    res = lint_imports(ROOT / "src", tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout
    # the layers contract is one of those kept, not absent
    assert "KEPT" in res.stdout and "cli > server | kube" in res.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "git_mirror", src / "git_mirror",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # the config layer reaching up into the mirror layer
    planted = src / "git_mirror" / "config" / "planted.py"
    planted.write_text('"""An upward import."""\n\nimport git_mirror.mirror.layout\n')
    res = lint_imports(src, tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "BROKEN" in res.stdout
    assert "git_mirror.config.planted -> git_mirror.mirror.layout" in res.stdout


def test_a_new_top_level_module_must_be_given_a_layer(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "git_mirror", src / "git_mirror",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (src / "git_mirror" / "unplaced.py").write_text('"""A module without a layer."""\n')
    res = lint_imports(src, tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "git_mirror.unplaced" in res.stdout
