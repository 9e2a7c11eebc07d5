"""Git hooks installed into the mirror by apply: the ``pre-receive`` ref protection.

One hooks directory, ``<cache>/hooks``, serves every mirror of the node through
``core.hooksPath`` (set by apply). The hook runs :mod:`git_mirror.mirror.protect` with the
interpreter and package git-mirror itself runs from, both baked into the script, so that the
rules clients meet are exactly the ones this version of git-mirror implements.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

# -I: no user site, no PYTHON* variables, no current directory on sys.path; the package's own
# root is put first so the hook runs this very code even when it is not installed.
_LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
           "from git_mirror.mirror.protect import main; sys.exit(main(sys.argv[1:]))")


def pre_receive_script(python: str | None = None, package_root: str | None = None) -> str:
    """The text of the ``pre-receive`` hook."""
    python = python or sys.executable
    if package_root is None:
        import git_mirror

        package_root = str(Path(git_mirror.__file__).resolve().parent.parent)
    return ("#!/bin/sh\n"
            "# Installed by `git-mirror apply --confirm`; rewritten by every apply.\n"
            "# Clients may create or fast-forward lane refs only; see git_mirror.mirror.protect.\n"
            f"exec {shlex.quote(python)} -I -c {shlex.quote(_LAUNCH)} "
            f"{shlex.quote(package_root)} pre-receive\n")


def hooks_path(cfg: LoadedConfig) -> Path:
    """The one hooks directory of the node, ``core.hooksPath`` of every mirror."""
    return cfg.cache_dir / "hooks"


def install_hooks(cfg: LoadedConfig) -> bool:
    """Install or refresh the mirror's hooks; True when something changed."""
    path = hooks_path(cfg) / "pre-receive"
    text = pre_receive_script()
    try:
        if path.read_text(encoding="utf-8") == text and os.access(path, os.X_OK):
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pre-receive.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o755)
        # A rename: a push running while apply refreshes the hook sees the old or new script.
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
