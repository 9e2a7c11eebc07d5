"""Reading refs in one process, and writing them in one transaction.

:func:`list_refs` is one ``git for-each-ref``; :class:`RefTransaction` is one
``git update-ref --stdin -z`` with ``start``/``commit``, in which every update names the
value it expects to replace. A crash or a concurrent writer leaves the old state or the new
one, never a mix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from git_mirror.errors import Code, GitError
from git_mirror.git.run import git


def list_refs(git_dir: Path, patterns: Sequence[str] = ()) -> dict[str, str]:
    """Map refname -> object id for refs matching ``patterns`` (prefixes, globs or names)."""
    out = git(["for-each-ref", "--format=%(objectname) %(refname)", "--", *patterns],
              git_dir=git_dir, what="git for-each-ref").text
    refs: dict[str, str] = {}
    for line in out.splitlines():
        oid, sep, name = line.partition(" ")
        if not sep or len(oid) not in (40, 64):
            raise GitError(f"unexpected for-each-ref line: {line!r}")
        refs[name] = oid
    return refs


# git matches every ref against every pattern: past this many names, one prefix is cheaper.
EXACT_NAMES_LIMIT = 200


def existing_refs(git_dir: Path, names: Sequence[str], prefix: str) -> dict[str, str]:
    """Which of ``names`` (all under ``prefix``) exist, and the refs below them (as
    ``for-each-ref`` patterns match), in one ``for-each-ref``.

    Up to :data:`EXACT_NAMES_LIMIT` names are asked for by name; more, by listing ``prefix``.
    """
    if not names:
        return {}
    if len(names) <= EXACT_NAMES_LIMIT:
        return list_refs(git_dir, names)
    wanted = set(names)

    def asked(ref: str) -> bool:  # the name itself, or below it, as a for-each-ref pattern
        end = len(ref)
        while end > 0:
            if ref[:end] in wanted:
                return True
            end = ref.rfind("/", 0, end)
        return False
    return {ref: oid for ref, oid in list_refs(git_dir, [prefix]).items() if asked(ref)}


@dataclass(frozen=True)
class RefUpdate:
    """One planned ref change. ``old`` of ``None`` means "must not exist" (create)."""

    ref: str
    new: str | None  # None: delete
    old: str | None  # None: must not exist yet

    def to_json(self) -> dict[str, str | None]:
        """``{"ref", "from", "to"}`` as the audit journal and results write it."""
        return {"ref": self.ref, "from": self.old, "to": self.new}


@dataclass
class RefTransaction:
    """Collects updates and commits them with one ``git update-ref --stdin``."""

    git_dir: Path
    message: str = "git-mirror"
    updates: list[RefUpdate] = field(default_factory=list)

    def update(self, ref: str, new: str, old: str | None) -> None:
        """Set ``ref`` to ``new`` if it is ``old`` now (None: if it does not exist)."""
        self.updates.append(RefUpdate(ref, new, old))

    def create(self, ref: str, new: str) -> None:
        """Create ``ref`` at ``new``; refused if it exists."""
        self.updates.append(RefUpdate(ref, new, None))

    def delete(self, ref: str, old: str) -> None:
        """Delete ``ref`` if it is ``old`` now."""
        self.updates.append(RefUpdate(ref, None, old))

    def extend(self, updates: Iterable[RefUpdate]) -> None:
        """Add planned ``updates`` as they are."""
        self.updates.extend(updates)

    def payload(self) -> bytes:
        """The ``-z`` input of ``update-ref --stdin``: start, one command per update, commit."""
        parts: list[bytes] = [b"start\0"]
        for u in self.updates:
            if u.new is None:
                parts.append(f"delete {u.ref}\0{u.old or ''}\0".encode())
            elif u.old is None:
                parts.append(f"create {u.ref}\0{u.new}\0".encode())
            else:
                parts.append(f"update {u.ref}\0{u.new}\0{u.old}\0".encode())
        parts.append(b"commit\0")
        return b"".join(parts)

    def commit(self) -> None:
        """Apply every update or none. Raises GitError(code=Code.CONFLICT) when a ref moved."""
        if not self.updates:
            return
        try:
            git(["update-ref", "--create-reflog", "-m", self.message, "--stdin", "-z"],
                git_dir=self.git_dir, input=self.payload(), what="git update-ref")
        except GitError as exc:
            if exc.code == Code.DISK_FULL:
                raise
            raise _refused(exc) from exc


def _refused(exc: GitError) -> GitError:
    """A refused ``update-ref --stdin`` as a conflict (nothing changed), with git's last line
    and a hint: a ref lock someone else held, else refs that moved under the transaction."""
    if exc.hint:
        hint = exc.hint
    elif ".lock': File exists" in exc.stderr:
        hint = ("another git held a ref lock (a client push in flight?); run the command "
                "again: a lock file left by a killed git is removed then")
    else:
        hint = "run the command again; the refs moved under it"
    last = (exc.stderr.strip().splitlines() or [exc.message])[-1]
    return type(exc)(f"the ref transaction was refused, nothing changed: {last}",
                     argv=exc.details.get("command"), returncode=exc.returncode,
                     stderr=exc.stderr, hint=hint, code=Code.CONFLICT)


def is_ancestor(git_dir: Path, ancestor: str, descendant: str) -> bool:
    """True when ``ancestor`` is reachable from ``descendant`` (or equal)."""
    if ancestor == descendant:
        return True
    res = git(["merge-base", "--is-ancestor", ancestor, descendant], git_dir=git_dir,
              ok_codes=(0, 1), what="git merge-base")
    return res.returncode == 0


def has_commits(git_dir: Path, oids: Iterable[str]) -> set[str]:
    """Which of ``oids`` exist in the repository, in one ``git cat-file --batch-check``."""
    wanted = sorted(set(oids))
    if not wanted:
        return set()
    out = git(["cat-file", "--batch-check=%(objectname) %(objecttype)"], git_dir=git_dir,
              input=("\n".join(wanted) + "\n").encode(), what="git cat-file").text
    present: set[str] = set()
    for line in out.splitlines():
        parts = line.split(" ")
        if len(parts) == 2 and parts[1] in ("commit", "tag"):
            present.add(parts[0])
    return present


def pack_refs(git_dir: Path) -> None:
    """Pack every ref into ``packed-refs`` (one process; reads stay fast as refs accumulate)."""
    git(["pack-refs", "--all"], git_dir=git_dir, what="git pack-refs")
