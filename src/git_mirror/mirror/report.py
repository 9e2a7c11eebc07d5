"""One line per repository, for a person at a terminal: how its sync, flush or apply went.

The lines go to :func:`git_mirror.git.progress.done` (stderr, on a terminal only); the
result object stays the contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from git_mirror.errors import GitMirrorError
    from git_mirror.mirror.flush import RepoFlush
    from git_mirror.mirror.local_apply import RepoApply
    from git_mirror.mirror.sync import RepoSync


def seconds(ms: int) -> str:
    """A duration in milliseconds as seconds, to a tenth (``1.2s``)."""
    return f"{ms / 1000:.1f}s"


def _failed(what: str, ms: int, error: GitMirrorError | None) -> str:
    if error is None:
        return f"{what} FAILED after {seconds(ms)}"
    return f"{what} FAILED after {seconds(ms)} [{error.code}] {error.message}"


def sync_line(res: RepoSync) -> str:
    """How a repository's sync went: refs moved, snapshots made, tips fetched, and why not."""
    if not res.ok:
        return _failed("sync", res.duration_ms, res.error)
    parts = [f"{len(res.updated)} ref update(s)", f"{len(res.snapshots)} new snapshot(s)",
             f"{res.fetched} tip(s) fetched"]
    if res.created_mirror:
        parts.insert(0, "mirror created")
    if res.diverged:
        parts.append("a lane diverged (left as it is)")
    if res.refused:
        parts.append(f"{len(res.refused)} ref(s) refused (see the result)")
    return f"synced in {seconds(res.duration_ms)}: " + ", ".join(parts)


def flush_line(res: RepoFlush) -> str:
    """How a repository's flush went: the lanes pushed, a partial success, or why not."""
    if not res.ok:
        return _failed("flush", res.duration_ms, res.error)
    if not res.pushed:
        return f"flushed in {seconds(res.duration_ms)}: nothing to push"
    lanes = ", ".join(p.ref.removeprefix("refs/heads/") for p in res.pushed)
    line = f"flushed in {seconds(res.duration_ms)}: pushed {lanes}"
    if res.partial_success:
        line += f" ({res.partial_success}; recovered by a sync)" if res.recovered else \
            f" ({res.partial_success})"
    return line


def apply_line(plan: RepoApply) -> str:
    """What apply did to a mirror: created it, updated settings (named), or nothing."""
    if plan.action == "create":
        return f"created {plan.path}"
    if plan.action == "update":
        return f"updated {len(plan.changes)} setting(s): " + ", ".join(
            c.key for c in plan.changes)
    return "unchanged"
