"""Upstream's declared refs and their new objects in one ``git fetch``: one connection and
one negotiation.

A confirmed sync needs two things from upstream: the tips of the declared refs (to plan) and
the objects of the new ones (to write). Asking with ``ls-remote`` and then ``fetch`` costs two
sessions with upstream; a raw ``git fetch`` costs one. Here the fetch runs in a private
*view* of the mirror (``<state>/upstream-view``: its own ``HEAD`` and per-view refs, the
mirror's object store and shared refs through ``GIT_COMMON_DIR``), and writes upstream's
tips as ``refs/worktree/git-mirror/upstream/...``: refs that only the view sees. The
mirror's own refs are not touched; the plan is made from what the view holds, and written
in the one ref transaction of the sync, as before. A no-op sync is one ls-refs exchange.

git requires a pattern to fetch a ref that may be missing upstream (a lane not yet
flushed), so an exact name ``refs/heads/main`` is fetched as ``refs/heads/main*``; a ref
that only shares the prefix (``main-old``) reaches the view and the object store, never a
ref of the mirror (the plan keeps only the declared names).

The view is a cache of "upstream as last fetched". A sync that did not finish marks it
unsettled, and the next one starts it empty; a fetch that fails because an object the view
names is gone (a person pruned and collected garbage) starts it empty and fetches once more.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from git_mirror.errors import GitError
from git_mirror.git.remote import RemoteEnv, fetch_listed
from git_mirror.git.run import git

if TYPE_CHECKING:
    from git_mirror.mirror.layout import RepoLayout

VIEW_PREFIX = "refs/worktree/git-mirror/upstream/"
SETTLED = "settled"
SPECS = "refspecs"
# What git says when the view names an object the store no longer has.
_MISSING = ("bad object", "missing object", "unable to read ", "did not send all necessary objects")


def view_dir(layout: RepoLayout) -> Path:
    """The private view's git directory, under the repository's state."""
    return layout.state_dir / "upstream-view"


def refspecs(patterns: Sequence[str]) -> list[str]:
    """Forced refspecs from upstream's patterns to the view: each cut at its first glob
    character and ended with ``*`` (git's one-star pattern, which may also match nothing)."""
    out: set[str] = set()
    for pat in patterns:
        cut = min((i for i, c in enumerate(pat) if c in "*?["), default=len(pat))
        src = pat[:cut] + "*"
        out.add(f"+{src}:{VIEW_PREFIX}{src.removeprefix('refs/')}")
    return sorted(out)


def _reset(view: Path) -> None:
    for sub in ("refs", "logs"):
        shutil.rmtree(view / sub, ignore_errors=True)


def _prepare(view: Path, common: Path, specs: list[str]) -> None:
    view.mkdir(parents=True, exist_ok=True)
    head = view / "HEAD"
    if not head.exists():
        head.write_text("ref: refs/heads/git-mirror-upstream-view\n", encoding="utf-8")
    # What makes this directory a view of the mirror for every part of git (the ref store
    # reads this file, not GIT_COMMON_DIR), as a linked worktree's git directory is; the
    # mirror does not list it among its worktrees.
    common_file = view / "commondir"
    want = f"{common.resolve()}\n"
    try:
        current = common_file.read_text(encoding="utf-8")
    except OSError:
        current = ""
    if current != want:
        common_file.write_text(want, encoding="utf-8")
    text = "\n".join(specs) + "\n"
    spec_file = view / SPECS
    try:
        same = spec_file.read_text(encoding="utf-8") == text
    except OSError:
        same = False
    settled = view / SETTLED
    if not same or not settled.exists():
        # Other patterns than last time, or a sync that did not finish: start empty.
        _reset(view)
        spec_file.write_text(text, encoding="utf-8")
    settled.unlink(missing_ok=True)


def settle(layout: RepoLayout) -> None:
    """Mark the view as agreeing with the mirror's stage refs (after a committed sync)."""
    view = view_dir(layout)
    if view.is_dir():
        (view / SETTLED).touch()


def _read(view: Path, common: Path,
          own_patterns: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """One for-each-ref through the view: upstream's refs and the mirror's own."""
    out = git(["for-each-ref", "--format=%(objectname) %(refname)", "--", VIEW_PREFIX,
               *own_patterns],
              git_dir=view, env={"GIT_COMMON_DIR": str(common)}, what="git for-each-ref").text
    upstream: dict[str, str] = {}
    own: dict[str, str] = {}
    for line in out.splitlines():
        oid, sep, name = line.partition(" ")
        if not sep or len(oid) not in (40, 64):
            raise GitError(f"unexpected for-each-ref line: {line!r}")
        if name.startswith(VIEW_PREFIX):
            upstream["refs/" + name[len(VIEW_PREFIX):]] = oid
        else:
            own[name] = oid
    return upstream, own


def fetch_upstream(layout: RepoLayout, remote: RemoteEnv, own_patterns: Sequence[str],
                   negotiation_tips: Sequence[str] = ()) -> tuple[dict[str, str], dict[str, str]]:
    """Upstream's refs under the declared patterns (name -> oid), their objects fetched, and
    the mirror's own refs under ``own_patterns``, read in the same process after the fetch."""
    view = view_dir(layout)
    specs = refspecs(layout.upstream_patterns())
    _prepare(view, layout.git_dir, specs)
    try:
        fetch_listed(view, layout.git_dir, remote, specs, negotiation_tips)
    except GitError as exc:
        if not any(m in (exc.stderr or "") for m in _MISSING):
            raise
        _reset(view)
        fetch_listed(view, layout.git_dir, remote, specs, negotiation_tips)
    return _read(view, layout.git_dir, own_patterns)
