"""A ref transaction that no single ref can stop.

Git refuses a whole ``update-ref --stdin`` transaction when one of its refs cannot be
written: an invalid name, or a name that collides with an existing ref as a file against a
directory (``refs/heads/release/a`` exists, so ``refs/heads/release/a/x`` cannot; the same
for snapshot refs, whose names hold branch names). Since branch names come from upstream,
anyone who can push a branch could stop a mirror from syncing. So the updates are planned:

* a ref whose name git would refuse, or that collides with a ref that stays (or with one this
  run creates first), is *refused* and reported on its own; every other ref moves on;
* a creation that collides only with a ref this run deletes (upstream renamed ``release/a``
  to ``release/a/x`` in one step) waits for a second transaction: the deletions first, then
  those creations, each with its expected old value, as git cannot do both in one.

The collision check needs the refs that exist around each new name; the caller passes what
it listed (whole namespaces for branches, stage refs and tags; for snapshots, the candidates,
the refs below them and the snapshot refs that could be their parents: see
:func:`snapshot_probes`). Should git still refuse a ref for a collision that listing did not
show, that ref is refused and the transaction sent again without it, a bounded number of
times.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from git_mirror.errors import Code, GitError
from git_mirror.git.refs import RefTransaction, RefUpdate
from git_mirror.refname import refname_problem

MAX_LATE_REFUSALS = 8
_OID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# What git 2.x says when a name collides as a file against a directory.
_COLLISION = re.compile(
    r"cannot lock ref '(?P<ref>[^']+)': (?:'[^']+' exists; cannot create|there is a non-empty "
    r"directory '[^']+' blocking reference)|cannot process '[^']+' and '(?P<second>[^']+)' at "
    r"the same time")


@dataclass(frozen=True)
class Refusal:
    """A ref update left out, and why (git would not take the name, or it collides)."""

    ref: str
    reason: str

    def to_json(self) -> dict[str, str]:
        """``{"ref", "reason"}``."""
        return {"ref": self.ref, "reason": self.reason}


@dataclass
class Phases:
    """The updates of the first transaction, those that wait for the second, the refused."""

    first: list[RefUpdate] = field(default_factory=list)
    second: list[RefUpdate] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


@dataclass
class Applied:
    """What the transactions changed so far, and what was refused (filled as they go)."""

    updates: list[RefUpdate] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def parents(ref: str) -> Iterator[str]:
    """``refs/heads/a/b`` -> ``refs/heads/a``, ``refs/heads``, ``refs``."""
    end = ref.rfind("/")
    while end > 0:
        yield ref[:end]
        end = ref.rfind("/", 0, end)


def snapshot_probes(candidates: Iterable[str], snapshot_prefix: str) -> list[str]:
    """The snapshot refs that could be a parent of a candidate snapshot ref.

    Every snapshot name ends in a commit id, so only a parent whose last component is one
    can exist as a snapshot (``.../release/a/<C>`` above ``.../release/a/<C>/<D>``).
    """
    out: set[str] = set()
    for ref in candidates:
        for parent in parents(ref):
            if not parent.startswith(snapshot_prefix):
                break
            if _OID.match(parent.rsplit("/", 1)[-1]):
                out.add(parent)
    return sorted(out)


def isolate(updates: Sequence[RefUpdate], existing: Collection[str],
            refused: dict[str, str] | None = None) -> Phases:
    """Split ``updates`` into two transactions and the refused refs (see the module doc).

    ``existing``: the refs the mirror holds around the updated names. ``refused``: refs
    already refused (ref -> reason), left out.
    """
    out = Phases()
    valid = _valid_names(updates, dict(refused or {}), out.refused)
    later = _place_creations(valid, existing, out.refused)
    refused_now = {r.ref for r in out.refused}
    for u in valid:
        if u.ref in refused_now:
            continue
        (out.second if u.ref in later else out.first).append(u)
    return out


def _valid_names(updates: Sequence[RefUpdate], given: dict[str, str],
                 refused: list[Refusal]) -> list[RefUpdate]:
    """The updates of names git takes and not ``given`` as refused; the others go to
    ``refused`` with their reason."""
    valid: list[RefUpdate] = []
    for u in updates:
        if u.ref in given:
            refused.append(Refusal(u.ref, given[u.ref]))
            continue
        problem = refname_problem(u.ref)
        if problem:
            refused.append(Refusal(u.ref, f"git does not take this ref name: {problem}"))
            continue
        valid.append(u)
    return valid


def _place_creations(valid: list[RefUpdate], existing: Collection[str],
                     refused: list[Refusal]) -> set[str]:
    """The new refs that must wait for the second transaction (a ref deleted in the first
    is their directory, or below them); those that can never be created (a ref where their
    directory would be, refs below them) go to ``refused``."""
    creations = sorted((u for u in valid if u.old is None and u.new is not None),
                       key=lambda u: u.ref)
    if not creations:
        return set()
    deleted = {u.ref for u in valid if u.new is None}
    remaining = set(existing) - deleted
    # Refs below a new name follow it in sorted order: one bisect per new ref, over the refs
    # of the namespaces the new refs are in (a new snapshot does not sort every branch).
    roots = tuple({"/".join(u.ref.split("/", 3)[:3]) + "/" for u in creations})
    ordered = sorted(r for r in remaining if r.startswith(roots))
    ordered_deleted = sorted(deleted)
    created: set[str] = set()
    created_dirs: set[str] = set()
    later: set[str] = set()
    for u in creations:
        above = list(parents(u.ref))
        blocker = next((p for p in above if p in remaining or p in created), None)
        if blocker is not None:
            refused.append(Refusal(u.ref, f"the ref {blocker} exists, and a ref name cannot "
                                          "also be a directory of refs"))
            continue
        if u.ref in created_dirs or _has_below(ordered, u.ref):
            refused.append(Refusal(u.ref, f"refs exist below {u.ref}/, and a directory of "
                                          "refs cannot also be a ref"))
            continue
        created.add(u.ref)
        created_dirs.update(above)
        if deleted and (_has_below(ordered_deleted, u.ref) or not deleted.isdisjoint(above)):
            later.add(u.ref)
    return later


def _has_below(ordered: Sequence[str], name: str) -> bool:
    """True when the sorted ``ordered`` holds a ref below ``name/``."""
    i = bisect.bisect_left(ordered, name + "/")
    return i < len(ordered) and ordered[i].startswith(name + "/")


def collision_in(stderr: str) -> str | None:
    """The ref git names when it refused a transaction for a file/directory collision."""
    m = _COLLISION.search(stderr)
    if m is None:
        return None
    return m.group("ref") or m.group("second")


def commit_isolated(git_dir: Path, updates: Sequence[RefUpdate], existing: Collection[str], *,
                    message: str, into: Applied) -> None:
    """Commit ``updates`` as :func:`isolate` plans them; ``into`` says what was applied and
    refused, even when a GitError (a ref moved, a full disk) ends it half way."""
    late: dict[str, str] = {}
    phases = isolate(updates, existing)
    into.refused.extend(phases.refused)
    for batch in (phases.first, phases.second):
        while True:
            todo = [u for u in batch if u.ref not in late]
            txn = RefTransaction(git_dir, message=message)
            txn.extend(todo)
            try:
                txn.commit()
            except GitError as exc:
                ref = collision_in(exc.stderr) if exc.code == Code.CONFLICT else None
                if ref is None or ref in late or len(late) >= MAX_LATE_REFUSALS \
                        or ref not in {u.ref for u in todo}:
                    raise
                late[ref] = ("git refused it: "
                             + (exc.stderr.strip().splitlines() or [exc.message])[0]
                             .removeprefix("fatal: "))
                into.refused.append(Refusal(ref, late[ref]))
                continue
            into.updates.extend(todo)
            break
