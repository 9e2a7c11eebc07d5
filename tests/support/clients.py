"""A CI client of the mirror: a real clone over file://, commits, and real ``git push``.

Pushing this way runs ``git receive-pack`` in the mirror, hence its ``pre-receive`` hook:
exactly what a pipeline pushing a GitOps commit does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.gitutil import run_git

LANE = "refs/heads/gitops/v03"


class Client:
    """A non-bare clone of a mirror."""

    def __init__(self, mirror: Path, workdir: Path) -> None:
        self.mirror = mirror
        self.dir = workdir
        run_git("clone", "--quiet", f"file://{mirror}", str(workdir))

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return run_git(*args, cwd=self.dir, check=check)

    def checkout(self, ref: str) -> str:
        """Fetch ``ref`` from the mirror and check its commit out (detached)."""
        self.git("fetch", "--quiet", "origin", ref)
        self.git("checkout", "--quiet", "--detach", "FETCH_HEAD")
        return self.head()

    def commit(self, message: str) -> str:
        name = message.replace(" ", "-") + ".txt"
        (self.dir / name).write_text(message + "\n", encoding="utf-8")
        self.git("add", name)
        self.git("commit", "--quiet", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.decode().strip()

    def push(self, *refspecs: str) -> subprocess.CompletedProcess[bytes]:
        """``git push origin REFSPECS`` (not checked: refusals are what tests look at)."""
        return self.git("push", "origin", *refspecs, check=False)

    def lane_commit(self, message: str, lane: str = LANE) -> str:
        """A new commit on top of the mirror's lane, pushed into the mirror; must be accepted."""
        self.checkout(lane)
        oid = self.commit(message)
        res = self.push(f"HEAD:{lane}")
        assert res.returncode == 0, res.stderr.decode()
        return oid
