"""The next command to run after a transport failure: the operation that failed, again."""

from __future__ import annotations

from git_mirror.errors import GitError


def retry_command(exc: GitError, rid: str) -> str:
    """``flush`` when the failed git process was a push, else ``sync``."""
    op = "flush" if "push" in exc.argv else "sync"
    return f"git-mirror {op} --repo {rid} --confirm --wait"
