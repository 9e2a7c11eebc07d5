"""Git's ref-name rules, exactly as ``git check-ref-format`` applies them, without a process.

:func:`refname_problem` follows ``check_refname_format()`` of git (refs.c): a name is made
of ``/``-separated components; no component is empty, begins with ``.`` or ends with
``.lock``; the name holds no ``..``, no ``@{``, no ASCII control character or DEL, none of
``space ~ ^ : ? [`` or backslash, and no ``*`` (one is allowed in a pattern); it does not end with
``.`` and is not ``@``; it has at least two components unless one level is allowed.
:func:`branch_problem` adds what ``git check-ref-format --branch`` adds: a branch name
does not begin with ``-`` and is not ``HEAD`` (so ``-main`` and ``--upload-pack=x``, which
a command line would take for options, are refused); :func:`tag_problem` refuses a
leading ``-`` as ``git tag`` does.

Each returns None for a good name, else a short reason.
"""

from __future__ import annotations

import re

_FORBIDDEN = frozenset(" ~^:?[\\\x7f") | frozenset(chr(c) for c in range(32))
# Anything that could break a rule below; a name without any of it is good (the fast path:
# sync checks every ref it writes).
_SUSPECT = re.compile(r"[\x00-\x20~^:?\[\\\x7f*]|\.\.|@\{|//|/\.|\.lock/|\.lock$|^[/.]|[/.]$")


def refname_problem(name: str, *, allow_onelevel: bool = False,
                    pattern: bool = False) -> str | None:
    """Why git would refuse ``name`` as a ref name, or None when it would take it."""
    if "/" in name and _SUSPECT.search(name) is None:
        return None
    return (_whole_name_problem(name) or _character_problem(name, pattern=pattern)
            or _component_problem(name.split("/"), allow_onelevel=allow_onelevel))


def _whole_name_problem(name: str) -> str | None:
    """The rules on the name as a whole: not empty, not ``@``, no ``.`` at the end, no
    ``..`` or ``@{`` in it."""
    if not name:
        return "it is empty"
    if name == "@":
        return "'@' alone is not a ref name"
    if name.endswith("."):
        return "it ends with '.'"
    if ".." in name:
        return "it contains '..'"
    if "@{" in name:
        return "it contains '@{'"
    return None


def _character_problem(name: str, *, pattern: bool) -> str | None:
    """The first forbidden character, else a ``*`` where none (or no second one) may be."""
    bad = next((ch for ch in name if ch in _FORBIDDEN), None)
    if bad is not None:
        return (f"it contains the character {bad!r}" if bad.isprintable()
                else f"it contains the control character {ord(bad):#04x}")
    stars = name.count("*")
    if stars and not pattern:
        return "it contains '*'"
    if stars > 1:
        return "a pattern may contain one '*' only"
    return None


def _component_problem(parts: list[str], *, allow_onelevel: bool) -> str | None:
    """The rules on each ``/``-separated component, and on their number."""
    for part in parts:
        if not part:
            return "it has an empty path component (a leading, trailing or double '/')"
        if part.startswith("."):
            return f"the component {part!r} begins with '.'"
        if part.endswith(".lock"):
            return f"the component {part!r} ends with '.lock'"
    if len(parts) < 2 and not allow_onelevel:
        return "it has one level only (no '/')"
    return None


def branch_problem(branch: str, *, glob: bool = False) -> str | None:
    """Why ``git check-ref-format --branch`` would refuse ``branch`` (without ``refs/heads/``).

    With ``glob``, ``*`` may stand anywhere (it is checked as if it were a letter).
    """
    if branch.startswith("-"):
        return "a branch name may not begin with '-'"
    if branch == "HEAD":
        return "'HEAD' is not a branch name"
    probe = branch.replace("*", "x") if glob else branch
    return refname_problem("refs/heads/" + probe)


def tag_problem(tag: str) -> str | None:
    """Why git would refuse ``tag`` as a tag name (without ``refs/tags/``)."""
    if tag.startswith("-"):
        return "a tag name may not begin with '-'"
    return refname_problem("refs/tags/" + tag)
