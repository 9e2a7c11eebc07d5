"""Integrity: is the ref protection what git-mirror put there, and are the protected refs?

Checked from the cache only (no network), by ``verify``, ``status`` and ``apply``, and before
every push by ``serve``:

* the protection is intact: ``<cache>/hooks/pre-receive`` is exactly the script this version
  of git-mirror installs (compared by content; its sha256 is reported), executable, and in
  force in every mirror (``core.hooksPath`` names that directory); no other hook is there or
  in a mirror's own ``hooks/`` directory. What is wrong here is fixed by
  ``apply --confirm``;
* every protected ref was written by git-mirror: source branches, tags, stage refs and
  anything else outside the lanes must have been last written by one of git-mirror's own ref
  transactions (their reflog messages begin ``git-mirror``), to the value they hold now; a
  snapshot ref must point to the commit its name ends with and must have been created by
  sync. A ref a client pushed while the protection was off (reflog ``push``) or that was set
  by hand is *forged*. Forged refs are never deleted: ``verify --repair --confirm``
  (:mod:`git_mirror.mirror.verify`) moves them to ``refs/mirror-quarantine/<time>/...``
  (hidden from clients by ``uploadpack.hideRefs``) and records each move.

Lanes are the refs clients may write (the hook decides how): they are not checked here.
Only sync, flush and ``snapshots prune`` write the protected refs, all under the repository
lock; ``verify`` takes that lock, so it never sees a transaction half way. ``status`` does
not wait for it: a problem it sees is read a second time before it is reported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.errors import IntegrityError
from git_mirror.git.reflog import read_reflog
from git_mirror.git.refs import list_refs
from git_mirror.mirror.hooks import (
    HOOK,
    expected_hook,
    hook_state,
    hooks_path,
    stray_hooks,
)
from git_mirror.mirror.layout import RepoLayout

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

QUARANTINE = "refs/mirror-quarantine/"
OURS = "git-mirror"
SYNC_MESSAGE = "git-mirror sync"
APPLY_HINT = "git-mirror apply --confirm"
REPAIR_HINT = "git-mirror verify --repair --confirm"


@dataclass(frozen=True)
class Problem:
    """One thing that is not what git-mirror put there.

    ``fix`` is ``apply`` (the protection: hook, hooks path, stray hooks) or ``repair`` (a
    forged ref, for ``verify --repair --confirm``).
    """

    kind: str
    message: str
    fix: str
    repository: str | None = None
    ref: str | None = None
    commit: str | None = None
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The problem's JSON object; ``fix`` is the command that fixes it."""
        out: dict[str, Any] = {"kind": self.kind, "message": self.message,
                               "repository": self.repository,
                               "fix": APPLY_HINT if self.fix == "apply" else REPAIR_HINT}
        if self.ref is not None:
            out.update(ref=self.ref, commit=self.commit)
        if self.path is not None:
            out["path"] = self.path
        return out


def node_problems(cfg: LoadedConfig) -> list[Problem]:
    """The hook every mirror of the node uses: present, ours, executable, alone (nothing to
    protect, nothing to say, before any mirror exists)."""
    if not any((RepoLayout.of(cfg, rid).git_dir / "HEAD").exists()
               for rid in cfg.model.repositories):
        return []
    state = hook_state(cfg)
    path = state.path
    problems: list[Problem] = []
    if state.sha256 is None:
        problems.append(Problem("hook-missing", f"the ref protection hook {path} is missing: "
                                "clients' pushes are not checked", "apply", path=path))
    elif state.sha256 != state.expected_sha256:
        problems.append(Problem("hook-modified", f"the ref protection hook {path} is not the one "
                                f"git-mirror installs (found {state.sha256}, expected "
                                f"{state.expected_sha256})", "apply", path=path))
    elif not state.executable:
        problems.append(Problem("hook-not-executable", f"the ref protection hook {path} is not "
                                "executable, so git does not run it", "apply", path=path))
    for stray in stray_hooks(hooks_path(cfg)):
        if stray.name == HOOK:
            continue
        problems.append(Problem("stray-hook", f"{stray} is a hook git-mirror did not install",
                                "apply", path=str(stray)))
    return problems


def repo_protection_problems(cfg: LoadedConfig, rid: str,
                             settings: Mapping[str, str] | None = None) -> list[Problem]:
    """The hook is in force in ``rid``'s mirror: ``core.hooksPath`` is ours, no other hooks."""
    from git_mirror.mirror.local_apply import read_settings

    layout = RepoLayout.of(cfg, rid)
    if not (layout.git_dir / "HEAD").exists():
        return []
    if settings is None:
        settings = read_settings(layout.git_dir)
    problems: list[Problem] = []
    want = str(hooks_path(cfg))
    have = settings.get("core.hookspath")
    if have != want and not _same_hook(have, layout.git_dir):
        problems.append(Problem("hooks-path", f"mirror {rid}: core.hooksPath is {have!r}, not "
                                f"{want!r}: the ref protection hook is not in force", "apply",
                                repository=rid, path=str(layout.git_dir / "config")))
    for stray in stray_hooks(layout.git_dir / "hooks"):
        problems.append(Problem("stray-hook", f"mirror {rid}: {stray} is a hook git-mirror did "
                                "not install", "apply", repository=rid, path=str(stray)))
    return problems


def _same_hook(hooks_path: str | None, git_dir: Path) -> bool:
    """True when ``hooks_path`` is another name of our hooks directory: the same cache seen
    through another mount point (a pod of a kubernetes node mounts the cache volume where
    its config is), holding exactly our hook and nothing else."""
    if not hooks_path:
        return False
    other = Path(hooks_path) if os.path.isabs(hooks_path) else git_dir / hooks_path
    try:
        same = (other / HOOK).read_text(encoding="utf-8") == expected_hook()
    except OSError:
        return False
    return same and os.access(other / HOOK, os.X_OK) and \
        not [p for p in stray_hooks(other) if p.name != HOOK]


def protection_problems(cfg: LoadedConfig, rid: str) -> list[Problem]:
    """What ``serve`` checks before a push: the node's hook and its force in ``rid``."""
    return node_problems(cfg) + repo_protection_problems(cfg, rid)


def _written_by_us(git_dir: Path | str, ref: str, oid: str) -> str | None:
    """None when git-mirror's own transactions explain ``ref`` at ``oid``; else why not."""
    entries = read_reflog(git_dir, ref, tail=True)
    if not entries:
        return "has no reflog: nothing shows that git-mirror wrote it"
    # The newest entry that set the current value; every write since must be ours too (a
    # transaction of ours may have logged its next value a moment before moving the ref).
    for i in range(len(entries) - 1, -1, -1):
        if entries[i].new == oid:
            later = entries[i:]
            foreign = next((e for e in later if not e.message.startswith(OURS)), None)
            if foreign is None:
                return None
            if foreign.message == "push":
                return "was written by a client push (reflog: push), not by git-mirror"
            return f"was written outside git-mirror (reflog message {foreign.message!r})"
    return f"holds {oid[:12]}, a value no recorded write gave it (changed behind git's back)"


def _snapshot_problem(layout: RepoLayout, git_dir: str, ref: str, oid: str) -> Problem | None:
    rid = layout.id
    named = ref.rsplit("/", 1)[-1]
    if named != oid:
        return Problem("snapshot-mismatch", f"mirror {rid}: snapshot {ref} points to {oid}, not "
                       "to the commit its name ends with", "repair", repository=rid, ref=ref,
                       commit=oid)
    entries = read_reflog(git_dir, ref)
    if not entries:
        why = "has no reflog: nothing shows that sync created it"
    elif not (entries[0].is_create and entries[0].message.startswith(SYNC_MESSAGE)):
        first = entries[0].message
        why = ("was created by a client push (reflog: push), not by sync" if first == "push"
               else f"was not created by sync (reflog message {first!r})")
    elif entries[-1].new != oid or any(not e.message.startswith(OURS) for e in entries):
        why = "was moved after sync created it"
    else:
        return None
    return Problem("forged-snapshot", f"mirror {rid}: snapshot {ref} {why}", "repair",
                   repository=rid, ref=ref, commit=oid)


def ref_problems(layout: RepoLayout, refs: Mapping[str, str],
                 known: frozenset[str] = frozenset()) -> list[Problem]:
    """Every protected ref of ``refs`` that git-mirror's own writes do not explain.

    ``known``: snapshot refs (``"<oid> <ref>"``) proven before; see :func:`check_refs`.
    """
    lanes = {lane.ref for lane in layout.lanes}
    snapshots = layout.snapshot_prefix
    git_dir = str(layout.git_dir)
    problems: list[Problem] = []
    for ref, oid in sorted(refs.items()):
        if ref in lanes or ref.startswith(QUARANTINE):
            continue
        if ref.startswith(snapshots):
            if f"{oid} {ref}" in known:
                continue
            problem = _snapshot_problem(layout, git_dir, ref, oid)
            if problem is not None:
                problems.append(problem)
            continue
        why = _written_by_us(git_dir, ref, oid)
        if why is not None:
            problems.append(Problem("forged-ref", f"mirror {layout.id}: {ref} {why}", "repair",
                                    repository=layout.id, ref=ref, commit=oid))
    return problems


# Snapshot refs proven created by sync, as "<oid> <ref>" lines: a snapshot's name fixes its
# value, so one proven once stays proven while it holds that value; status then reads the
# reflogs of new snapshots only. verify always reads them all.
PROVEN = "proven-snapshots"


def _load_proven(layout: RepoLayout) -> frozenset[str]:
    try:
        return frozenset((layout.state_dir / PROVEN).read_text(encoding="utf-8").splitlines())
    except OSError:
        return frozenset()


def _save_proven(layout: RepoLayout, refs: Mapping[str, str], problems: list[Problem],
                 before: frozenset[str]) -> None:
    bad = {p.ref for p in problems}
    prefix = layout.snapshot_prefix
    proven = frozenset(f"{oid} {ref}" for ref, oid in refs.items()
                       if ref.startswith(prefix) and ref not in bad)
    if proven == before:
        return
    path = layout.state_dir / PROVEN
    tmp = path.with_name(f".{PROVEN}.{os.getpid()}.{time.monotonic_ns()}")
    try:
        tmp.write_text("".join(f"{line}\n" for line in sorted(proven)), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # only a cache: the next reading proves them again


def check_refs(layout: RepoLayout, *, recheck: bool = True, use_proven: bool = False,
               refs: Mapping[str, str] | None = None) -> tuple[int, list[Problem]]:
    """(refs checked, problems) of one mirror: one ``for-each-ref``, reflogs read as files.

    ``refs``: every ref of the mirror (all of ``refs/``) as just read by the caller, which
    then spares that ``for-each-ref`` (status reads them once for both of its uses).

    ``recheck``: a problem is read once more (the ref and its reflog) before it counts, so
    that a transaction of sync's that was under way at the first reading is not reported.
    ``use_proven``: snapshots proven by an earlier reading are not read again.
    """
    if refs is None:
        refs = list_refs(layout.git_dir, ["refs/"])
    before = _load_proven(layout) if use_proven else frozenset()
    problems = ref_problems(layout, refs, before)
    if problems and recheck:
        names = sorted({p.ref for p in problems if p.ref})
        again = {ref: oid for ref, oid in list_refs(layout.git_dir, names).items() if ref in names}
        problems = ref_problems(layout, again)
    _save_proven(layout, refs, problems, before if use_proven else _load_proven(layout))
    return len(refs), problems


def hint_for(problems: Iterable[Problem]) -> str | None:
    """The command that fixes ``problems``: apply, repair, or both in turn (None: none)."""
    fixes = {p.fix for p in problems}
    if not fixes:
        return None
    if fixes == {"apply"}:
        return APPLY_HINT
    if fixes == {"repair"}:
        return REPAIR_HINT
    return f"{APPLY_HINT} && {REPAIR_HINT}"


def integrity_error(problems: list[Problem]) -> IntegrityError:
    """One error for ``problems``: the first five said, all of them in the details."""
    shown = "; ".join(p.message for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return IntegrityError(f"{len(problems)} integrity problem(s): {shown}{more}",
                          hint=hint_for(problems),
                          details={"problems": [p.to_json() for p in problems]})


@dataclass(frozen=True)
class IntegritySummary:
    """The ``integrity`` object that status and apply carry: the problems and their fix."""

    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """``{"ok", "problems", "hint"}``."""
        return {"ok": self.ok, "problems": [p.to_json() for p in self.problems],
                "hint": hint_for(self.problems)}


def summary(problems: Iterable[Problem]) -> IntegritySummary:
    """The ``integrity`` object of ``problems`` (see :class:`IntegritySummary`)."""
    return IntegritySummary(tuple(problems))


def repository_problems(cfg: LoadedConfig, rid: str, *, recheck: bool = True,
                        settings: Mapping[str, str] | None = None,
                        refs: Mapping[str, str] | None = None) -> list[Problem]:
    """``rid``'s protection (hooks path, stray hooks) and forged refs, for status and apply
    (``refs``: every ref of the mirror, when the caller has just read them)."""
    layout = RepoLayout.of(cfg, rid)
    if not (layout.git_dir / "HEAD").exists():
        return []
    return (repo_protection_problems(cfg, rid, settings)
            + check_refs(layout, recheck=recheck, use_proven=True, refs=refs)[1])
