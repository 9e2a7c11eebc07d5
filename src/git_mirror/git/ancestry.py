"""Many "is A an ancestor of B?" questions in one git process.

Flush (and the mirror's ref-protection hook) must know, for every lane it is about to send
or accept, that the old value is an ancestor of the new one: otherwise the update would
rewind history. One ``git merge-base --is-ancestor`` per lane would make the cost grow with
the number of lanes, so :func:`ancestors` asks one ``git rev-list --parents``
for the commits reachable from the new values but not from the old ones. Walking that
(small) set from each new value tells, in the common case, that the walk stops exactly at
its old value. Only when the walk is inconclusive (lanes that share history, or a rewrite)
does it fall back to one ``merge-base`` for that pair, so the answer is always exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from git_mirror.git.run import git

Pair = tuple[str, str]  # (ancestor, descendant)


def refs_with_parents(git_dir: Path,
                      patterns: Sequence[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Map refname -> (object id, parent commits) in one ``git for-each-ref``.

    The parents answer the most common ancestry question for free: a lane one commit ahead
    of its stage ref has the stage commit as its parent.
    """
    out = git(["for-each-ref", "--format=%(objectname) %(refname) %(parent)", "--", *patterns],
              git_dir=git_dir, what="git for-each-ref").text
    refs: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in out.splitlines():
        oid, name, *parents = line.rstrip(" ").split(" ")
        refs[name] = (oid, tuple(parents))
    return refs


def ancestors(git_dir: Path, pairs: Sequence[Pair], *,
              env: Mapping[str, str] | None = None) -> dict[Pair, bool]:
    """For each ``(a, d)``: True when ``a`` is reachable from ``d`` (or equal).

    Every object named must exist in the repository. ``env`` carries extra git variables
    (the receive hook passes the quarantine object directories through it).
    """
    answers: dict[Pair, bool] = {}
    todo = [(a, d) for a, d in dict.fromkeys(pairs) if a != d]
    for a, d in pairs:
        if a == d:
            answers[(a, d)] = True
    if not todo:
        return answers
    heads = sorted({d for _, d in todo})
    bases = sorted({a for a, _ in todo})
    stdin = "".join(f"{h}\n" for h in heads) + "".join(f"^{b}\n" for b in bases)
    out = git(["rev-list", "--parents", "--stdin"], git_dir=git_dir,
              input=stdin.encode(), env=env, what="git rev-list").text
    parents: dict[str, list[str]] = {}
    for line in out.splitlines():
        commit, *rest = line.split(" ")
        parents[commit] = rest
    for a, d in todo:
        verdict = _walk(d, a, parents)
        if verdict is None:
            verdict = _is_ancestor(git_dir, a, d, env)
        answers[(a, d)] = verdict
    return answers


def _walk(head: str, base: str, parents: Mapping[str, list[str]]) -> bool | None:
    """True when the walk from ``head`` inside the new commits stops at ``base``; None if unsure."""
    if head not in parents:
        # ``head`` is itself reachable from some old value: cannot tell from this walk.
        return None
    seen: set[str] = set()
    stack = [head]
    left_the_set = False
    while stack:
        c = stack.pop()
        if c in seen:
            continue
        seen.add(c)
        for p in parents.get(c, ()):
            if p == base:
                return True
            if p in parents:
                stack.append(p)
            else:
                left_the_set = True
    # Only root commits ended the walk: ``base`` is not in ``head``'s history at all.
    return None if left_the_set else False


def _is_ancestor(git_dir: Path, a: str, d: str, env: Mapping[str, str] | None) -> bool:
    res = git(["merge-base", "--is-ancestor", a, d], git_dir=git_dir, env=env,
              ok_codes=(0, 1), what="git merge-base")
    return res.returncode == 0
