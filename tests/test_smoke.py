from __future__ import annotations

from tests.support.cli import run_cli


def test_version_prints_the_package_version() -> None:
    from git_mirror import __version__

    res = run_cli("--version")
    assert res.code == 0
    assert __version__ in res.stdout
