"""``verify``: the integrity checks of :mod:`git_mirror.mirror.integrity` as a command, and
``--repair``: forged refs moved into the quarantine.

The refs are read under the repository lock (only sync, flush and ``snapshots prune`` write
the protected refs, all under it), so no transaction is seen half way. A repair moves every
forged ref of a repository to ``refs/mirror-quarantine/<time>/<ref>`` in one ref transaction
(create the quarantine ref, delete the original, each with its expected value) and records
each move in the audit journal: nothing is deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from git_mirror.errors import GitMirrorError
from git_mirror.git.refs import RefTransaction, RefUpdate
from git_mirror.mirror.hooks import HookState, hook_state
from git_mirror.mirror.integrity import (
    QUARANTINE,
    Problem,
    check_refs,
    integrity_error,
    node_problems,
    repo_protection_problems,
)
from git_mirror.mirror.layout import RepoLayout, selected_repositories

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


@dataclass(frozen=True)
class QuarantineMove:
    """A forged ref moved (or, in a dry run, to be moved) to ``quarantined_as``; ``kind``
    (the problem's) is said for a move made."""

    ref: str
    commit: str
    quarantined_as: str
    reason: str
    kind: str | None = None

    def to_json(self) -> dict[str, str]:
        """``{"ref", "commit", "quarantinedAs", ["kind",] "reason"}``."""
        out = {"ref": self.ref, "commit": self.commit, "quarantinedAs": self.quarantined_as}
        if self.kind is not None:
            out["kind"] = self.kind
        out["reason"] = self.reason
        return out


@dataclass
class RepoVerify:
    """One repository's part of ``verify``: refs checked, problems, moves, or its error."""

    id: str
    exists: bool = True
    checked_refs: int = 0
    problems: list[Problem] = field(default_factory=list)
    quarantined: list[QuarantineMove] = field(default_factory=list)
    would_quarantine: list[QuarantineMove] = field(default_factory=list)
    error: GitMirrorError | None = None

    def to_json(self) -> dict[str, Any]:
        """The repository's object under ``repositories``."""
        return {"id": self.id, "ok": not self.problems and self.error is None,
                "exists": self.exists, "checkedRefs": self.checked_refs,
                "problems": [p.to_json() for p in self.problems],
                "quarantined": [q.to_json() for q in self.quarantined],
                "wouldQuarantine": [q.to_json() for q in self.would_quarantine],
                "error": self.error.to_json() if self.error else None}


@dataclass
class VerifyResult:
    """The result of ``verify``: the hook, the node's problems, every repository's part."""

    node: str
    repair: bool
    dry_run: bool
    hooks: HookState
    node_problems: list[Problem]
    repositories: list[RepoVerify]

    @property
    def problems(self) -> list[Problem]:
        """Every problem found: the node's, then each repository's."""
        return self.node_problems + [p for r in self.repositories for p in r.problems]

    @property
    def error(self) -> GitMirrorError | None:
        """A repository's error, else one for the problems (none for a repair's plan)."""
        failed = next((r.error for r in self.repositories if r.error), None)
        if failed is not None:
            return failed
        problems = self.problems
        if not problems:
            return None
        if self.repair and self.dry_run and all(p.fix == "repair" for p in problems):
            return None  # the plan is the answer; --confirm carries it out
        return integrity_error(problems)

    @property
    def ok(self) -> bool:
        """No error."""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``verify``."""
        out: dict[str, Any] = {
            "ok": self.ok, "node": self.node, "hooks": self.hooks.to_json(),
            "problems": [p.to_json() for p in self.problems],
            "quarantined": [{"repository": r.id, **q.to_json()} for r in self.repositories
                            for q in r.quarantined],
            "repositories": [r.to_json() for r in self.repositories],
        }
        if self.repair:
            out["dryRun"] = self.dry_run
            out["wouldQuarantine"] = [{"repository": r.id, **q.to_json()}
                                      for r in self.repositories for q in r.would_quarantine]
        if any(q.kind == "forged-ref" for r in self.repositories for q in r.quarantined):
            # A quarantined branch, tag or stage ref comes back from upstream with a sync.
            out["next"] = "git-mirror sync --confirm --wait"
        err = self.error
        if err is not None:
            out["error"] = err.to_json()
        return out


def quarantine_name(ref: str, stamp: str) -> str:
    """Where ``ref`` goes in the quarantine of the repair made at ``stamp``."""
    return f"{QUARANTINE}{stamp}/{ref.removeprefix('refs/')}"


def _quarantine(layout: RepoLayout, problems: list[Problem], stamp: str) -> list[QuarantineMove]:
    """Move every forged ref of ``problems`` into the quarantine, in one transaction."""
    from git_mirror.mirror import audit

    moved = [QuarantineMove(ref, commit, quarantine_name(ref, stamp), p.message, kind=p.kind)
             for p, ref, commit in _forged(problems)]
    if not moved:
        return []
    txn = RefTransaction(layout.git_dir, message="git-mirror quarantine")
    for m in moved:
        txn.create(m.quarantined_as, m.commit)
        txn.delete(m.ref, m.commit)
    txn.commit()
    audit.record(layout.state_dir, layout.id, "quarantine",
                 [RefUpdate(m.ref, None, m.commit) for m in moved],
                 extra=[{"quarantinedAs": m.quarantined_as, "reason": m.reason} for m in moved])
    return moved


def _forged(problems: list[Problem]) -> list[tuple[Problem, str, str]]:
    """The problems a repair moves (a forged ref: its ref and commit known), with both."""
    return [(p, p.ref, p.commit) for p in problems
            if p.fix == "repair" and p.ref and p.commit]


def verify(cfg: LoadedConfig, *, repo: str | None = None, repair: bool = False,
           confirm: bool = False, wait: bool = True, node: str = "local") -> VerifyResult:
    """Check the protection and every protected ref; with ``repair`` and ``confirm``,
    quarantine the forged refs. Reads the cache only (no network)."""
    from git_mirror.mirror.lock import DEFAULT_WAIT, repo_lock

    ids = selected_repositories(cfg, repo)
    result = VerifyResult(node=node, repair=repair, dry_run=not confirm, hooks=hook_state(cfg),
                          node_problems=node_problems(cfg), repositories=[])
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for rid in ids:
        layout = RepoLayout.of(cfg, rid)
        res = RepoVerify(rid)
        result.repositories.append(res)
        if not (layout.git_dir / "HEAD").exists():
            res.exists = False
            continue
        try:
            res.problems = repo_protection_problems(cfg, rid)
            # The protected refs are written under the repository lock only: holding it,
            # the refs and their reflogs are read in a state no transaction is changing.
            with repo_lock(layout.state_dir, rid, wait=wait, timeout=min(DEFAULT_WAIT, 120),
                           command="verify"):
                res.checked_refs, ref_found = check_refs(layout, recheck=False)
                if repair and confirm:
                    res.quarantined = _quarantine(layout, ref_found, stamp)
                    res.checked_refs, ref_found = check_refs(layout, recheck=False)
                elif repair:
                    res.would_quarantine = [
                        QuarantineMove(ref, commit, quarantine_name(ref, stamp), p.message)
                        for p, ref, commit in _forged(ref_found)]
            res.problems += ref_found
        except GitMirrorError as exc:
            res.error = exc
    return result
