"""Git hooks installed into the mirror by apply: the ``pre-receive`` ref protection.

One hooks directory, ``<cache>/hooks``, serves every mirror of the node through
``core.hooksPath`` (set by apply). The hook runs :mod:`git_mirror.mirror.protect` with the
interpreter and package git-mirror itself runs from, both baked into the script, so that the
rules clients meet are exactly the ones this version of git-mirror implements.

Here too: the hook as found (:func:`hook_state`), the hooks git-mirror did not install
(:func:`stray_hooks`), and what apply does about both (:func:`converge_protection`: the hook
rewritten, every other hook moved aside, never deleted). What is wrong is reported by
:mod:`git_mirror.mirror.integrity`.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.git.refs import RefUpdate
from git_mirror.mirror.layout import RepoLayout

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

HOOK = "pre-receive"
# Every hook git may run in a repository (githooks(5)): any of them besides ours is a stray.
HOOK_NAMES = frozenset((
    "applypatch-msg", "pre-applypatch", "post-applypatch", "pre-commit", "pre-merge-commit",
    "prepare-commit-msg", "commit-msg", "post-commit", "pre-rebase", "post-checkout",
    "post-merge", "pre-push", "pre-receive", "update", "proc-receive", "post-receive",
    "post-update", "reference-transaction", "push-to-checkout", "pre-auto-gc",
    "post-rewrite", "sendemail-validate", "fsmonitor-watchman", "p4-changelist",
    "p4-prepare-changelist", "p4-post-changelist", "p4-pre-submit", "post-index-change",
))

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
    path = hooks_path(cfg) / HOOK
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


def sha256_text(text: str | bytes) -> str:
    """``sha256:<hex>`` of ``text`` (UTF-8) or of the bytes: how hooks are compared."""
    data = text.encode() if isinstance(text, str) else text
    return "sha256:" + hashlib.sha256(data).hexdigest()


def expected_hook() -> str:
    """The ``pre-receive`` script this version of git-mirror installs."""
    return pre_receive_script()


@dataclass(frozen=True)
class HookState:
    """The installed hook as found: its path, sha256 (None when absent), the sha256 of the
    one this version installs, and whether git can run it."""

    path: str
    sha256: str | None
    expected_sha256: str
    executable: bool

    @property
    def ok(self) -> bool:
        """Ours, and executable."""
        return self.sha256 == self.expected_sha256 and self.executable

    def to_json(self) -> dict[str, Any]:
        """The ``hooks`` object of ``verify``."""
        return {"path": self.path, "sha256": self.sha256, "expectedSha256": self.expected_sha256,
                "executable": self.executable, "ok": self.ok}


def hook_state(cfg: LoadedConfig) -> HookState:
    """The installed hook as found (see :class:`HookState`)."""
    path = hooks_path(cfg) / HOOK
    try:
        found: str | None = sha256_text(path.read_bytes())
    except OSError:
        found = None
    return HookState(str(path), found, sha256_text(expected_hook()),
                     found is not None and os.access(path, os.X_OK))


def stray_hooks(directory: Path) -> list[Path]:
    """Hooks in ``directory`` other than ours (``*.sample`` files never run)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return []
    out = []
    for entry in entries:
        if entry.name in HOOK_NAMES or (entry.is_file() and os.access(entry, os.X_OK)
                                        and not entry.name.startswith(".")
                                        and not entry.name.endswith(".sample")):
            out.append(entry)
    return out


@dataclass
class StrayHook:
    """A hook git-mirror did not install: where it was, its sha256 (None when unreadable),
    and where apply moved it (None until moved)."""

    path: str
    sha256: str | None
    moved_to: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"path", "sha256", "movedTo"}``."""
        return {"path": self.path, "sha256": self.sha256, "movedTo": self.moved_to}


@dataclass
class HookConvergence:
    """What apply did (or, in a dry run, would do) for the protection: the hook's ``action``
    (``create``, ``update`` or ``unchanged``) from sha256 ``before`` to ``after``, and the
    stray hooks moved aside."""

    path: str
    action: str
    before: str | None
    after: str
    stray_hooks: list[StrayHook]

    def to_json(self) -> dict[str, Any]:
        """The ``hooks`` object of apply's result."""
        return {"path": self.path, "action": self.action, "from": self.before,
                "to": self.after, "strayHooks": [h.to_json() for h in self.stray_hooks]}


def converge_protection(cfg: LoadedConfig, *, confirm: bool,
                        request_id: str | None = None) -> HookConvergence:
    """What apply does for the protection: the hook rewritten when it is not ours, and every
    other hook moved (never deleted) to ``<cache>/state/quarantine/hooks/<time>/``.

    Each change is recorded in the audit journal of every declared repository (operation
    ``apply``).
    """
    from git_mirror.mirror.hooks import install_hooks

    before = hook_state(cfg)
    action = "unchanged" if before.ok else ("create" if before.sha256 is None else "update")
    out = HookConvergence(before.path, action, before.sha256, before.expected_sha256,
                          _stray_hooks(cfg))
    if not confirm:
        return out
    install_hooks(cfg)
    _move_aside(cfg, out.stray_hooks)
    _record_convergence(cfg, out, request_id)
    return out


def _stray_hooks(cfg: LoadedConfig) -> list[StrayHook]:
    """Every hook besides ours: in the node's hooks directory and in each mirror's own."""
    strays = [p for p in stray_hooks(hooks_path(cfg)) if p.name != HOOK]
    for rid in cfg.model.repositories:
        strays += stray_hooks(RepoLayout.of(cfg, rid).git_dir / "hooks")
    found = []
    for path in strays:
        try:
            digest: str | None = sha256_text(path.read_bytes())
        except OSError:
            digest = None
        found.append(StrayHook(str(path), digest))
    return found


def _move_aside(cfg: LoadedConfig, strays: list[StrayHook]) -> None:
    """Move ``strays`` under ``<cache>/state/quarantine/hooks/<time>/``, not executable."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    where = cfg.cache_dir / "state" / "quarantine" / "hooks" / stamp
    for stray in strays:
        src = Path(stray.path)
        dest = where / src.relative_to(cfg.cache_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        os.chmod(dest, 0o644)  # kept as evidence, never run
        stray.moved_to = str(dest)


def _record_convergence(cfg: LoadedConfig, out: HookConvergence, request_id: str | None) -> None:
    """The hook's change and each move, in the audit journal of every repository."""
    from git_mirror.mirror import audit

    changes = ([RefUpdate("hooks/pre-receive", out.after, out.before)]
               if out.action != "unchanged" else [])
    changes += [RefUpdate(str(Path(h.path).relative_to(cfg.cache_dir)), None, h.sha256)
                for h in out.stray_hooks]
    if not changes:
        return
    moved: list[dict[str, Any]] = [{"movedTo": h.moved_to} for h in out.stray_hooks]
    extra = moved if out.action == "unchanged" else [{}, *moved]
    for rid in cfg.model.repositories:
        audit.record(RepoLayout.of(cfg, rid).state_dir, rid, "apply", changes,
                     request_id=request_id, extra=extra)
