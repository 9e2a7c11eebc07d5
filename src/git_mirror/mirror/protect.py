"""Ref protection for clients of the mirror: the rules the ``pre-receive`` hook enforces.

Every client push into a mirror (over file://, ssh or the smart HTTP server) goes through
``git receive-pack``, which runs the hook that ``apply`` installs; the hook runs
``python -m git_mirror.mirror.protect`` with the interpreter git-mirror runs under. The
rules (CONTRACT section 3):

* a lane ref may be created, or moved fast-forward; never rewound, never deleted;
* source branches (every other ``refs/heads/*``) follow upstream: read-only to clients;
* stage refs (``refs/mirror-stage/*``) are upstream as last observed: read-only;
* snapshot refs are immutable: no create, update or delete;
* tags follow upstream; anything else is not the mirror's to accept.

The mirror's own writes (``update-ref`` from sync and flush) do not run hooks. The hook must
be quick, so this module imports only the git layer: what it needs to know about the
repository (its lane refs and snapshot namespace) is in the mirror's git config, written by
``apply`` (``gitmirror.lanes``, ``gitmirror.namespace``, ``gitmirror.sources``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from git_mirror.git.oid import RefMove

# Variables receive-pack sets so that the hook sees the pushed objects before they are
# moved into the repository (the quarantine); git_env drops GIT_* so they are passed on.
_QUARANTINE_VARS = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                    "GIT_QUARANTINE_PATH")


@dataclass(frozen=True)
class Update(RefMove):
    """One line of the hook's input: ``<old> <new> <ref>``."""

    ref: str


def parse_updates(text: str) -> list[Update]:
    """The hook's input, one :class:`Update` a line; ValueError on a line of another shape."""
    out = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) != 3:
            raise ValueError(f"unexpected pre-receive input line: {line!r}")
        out.append(Update(*parts))
    return out


def refusals(updates: Sequence[Update], lanes: Sequence[str], namespace: str,
             ancestry: Callable[[list[tuple[str, str]]], Mapping[tuple[str, str], bool]],
             sources: Sequence[str] | None = None) -> list[str]:
    """One reason per refused update (empty: accept the push). Pure but for ``ancestry``.

    ``sources`` are the source branch patterns (``refs/heads/main``, ``refs/heads/release/*``);
    a branch that is neither a lane nor a source branch is refused as an undeclared one.
    None: not known (a mirror configured before they were recorded)."""
    lane_set = set(lanes)
    snapshots = f"refs/{namespace}/snapshots/"
    reasons: list[str] = []
    moves: list[Update] = []
    hint = ("push lane refs only: " + ", ".join(sorted(lane_set))) if lane_set else \
        "this mirror declares no lanes, so it accepts no pushes"
    for u in updates:
        if u.ref not in lane_set:
            reasons.append(_not_a_lane(u.ref, snapshots, sources, hint))
        elif u.is_delete:
            reasons.append(f"{u.ref}: lane refs cannot be deleted")
        elif not u.is_create:
            moves.append(u)
    if moves:
        verdicts = ancestry([(u.old, u.new) for u in moves])
        reasons += [f"{u.ref}: non-fast-forward ({u.old[:12]} is not an ancestor of "
                    f"{u.new[:12]}); lanes only move forward: fetch, rebase or merge, push again"
                    for u in moves if not verdicts[(u.old, u.new)]]
    return reasons


def _not_a_lane(ref: str, snapshots: str, sources: Sequence[str] | None, hint: str) -> str:
    """Why a client may not write ``ref``, which is not a lane: what kind of ref it is."""
    import fnmatch

    if ref.startswith(snapshots):
        return f"{ref}: snapshot refs are immutable (no create, update or delete)"
    if ref.startswith("refs/mirror-stage/"):
        return (f"{ref}: stage refs record upstream as last observed; "
                "only sync and flush write them")
    if ref.startswith("refs/heads/") and sources is not None \
            and not any(fnmatch.fnmatchcase(ref, pat) for pat in sources):
        return (f"{ref}: not a declared lane of this mirror (nor a source branch); {hint}; "
                "a new lane is declared under lanes: in the YAML, then: "
                "git-mirror apply --confirm")
    if ref.startswith("refs/heads/"):
        return f"{ref}: source branches follow upstream and are read-only; {hint}"
    if ref.startswith("refs/tags/"):
        return f"{ref}: tags follow upstream and are read-only; {hint}"
    return f"{ref}: not a lane ref; {hint}"


def _read_config(git_dir: Path) -> tuple[list[str], str, list[str] | None]:
    from git_mirror.git.run import git

    text = git(["config", "-z", "--get-regexp", r"^gitmirror\."], git_dir=git_dir,
               ok_codes=(0, 1), what="git config").text
    lanes: list[str] = []
    namespace = "git-mirror"
    sources: list[str] | None = None
    for item in text.split("\0"):
        key, _, value = item.partition("\n")
        if key == "gitmirror.lanes":
            lanes = value.split()
        elif key == "gitmirror.namespace":
            namespace = value
        elif key == "gitmirror.sources":
            sources = value.split()
    return lanes, namespace, sources


def pre_receive(stdin: str, git_dir: Path, environ: Mapping[str, str]) -> list[str]:
    """Run the rules against a real repository (the hook's body)."""
    from git_mirror.git.ancestry import ancestors

    env = {k: environ[k] for k in _QUARANTINE_VARS if k in environ}
    lanes, namespace, sources = _read_config(git_dir)
    return refusals(parse_updates(stdin), lanes, namespace,
                    lambda pairs: ancestors(git_dir, pairs, env=env), sources)


def main(argv: Sequence[str] | None = None) -> int:
    """Hook entry point: exit 0 to accept, 1 (with one line per reason on stderr) to refuse."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["pre-receive"]:
        sys.stderr.write("usage: python -m git_mirror.mirror.protect pre-receive\n")
        return 2
    git_dir = Path(os.path.abspath(os.environ.get("GIT_DIR", ".")))
    text = sys.stdin.read()
    try:
        reasons = pre_receive(text, git_dir, os.environ)
    # The hook's last word on the push: whatever went wrong, refuse rather than let an
    # unchecked update through.
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"git-mirror: push refused, the ref check failed: {exc}\n")
        return 1
    for reason in reasons:
        sys.stderr.write(f"git-mirror: refused {reason}\n")
    if not reasons:
        note_accepted(text, os.environ)
    return 1 if reasons else 0


# ``serve`` names a file per push request: the updates the hook accepted go there, and serve
# records in the audit journal those that landed, with the token and the request id.
PUSH_RECORD_ENV = "GIT_MIRROR_PUSH_RECORD"


def note_accepted(text: str, environ: Mapping[str, str]) -> None:
    """Write the accepted updates where ``serve`` asked (:data:`PUSH_RECORD_ENV`), if it did."""
    path = environ.get(PUSH_RECORD_ENV)
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError:
        pass  # the push itself does not depend on its record


if __name__ == "__main__":
    sys.exit(main())
