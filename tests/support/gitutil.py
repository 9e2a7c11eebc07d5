"""Test helpers that drive real git: upstream repositories, commits, ref reads.

Tests use plain subprocess git here (the product's git layer is what is under test).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

TEST_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C",
    "GIT_TERMINAL_PROMPT": "0",
}


def run_git(*args: str, cwd: Path | str | None = None, input: bytes | None = None,
            check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, **TEST_ENV, **(env or {})}
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True,
                          check=check, env=full_env, timeout=120)


def out(*args: str, cwd: Path | str | None = None) -> str:
    return run_git(*args, cwd=cwd).stdout.decode().strip()


class Repo:
    """A bare repository that tests write to with plumbing (no work tree needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not (path / "HEAD").exists():
            run_git("init", "--bare", "--quiet", str(path))
        self._n = 0

    @classmethod
    def at(cls, path: Path) -> Repo:
        """The repository at ``path``, which may not exist yet (a mirror before apply)."""
        r = cls.__new__(cls)
        r.path, r._n = path, 0
        return r

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def git(self, *args: str, input: bytes | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> str:
        return run_git(f"--git-dir={self.path}", *args, input=input, check=check,
                       env=env).stdout.decode().strip()

    def commit(self, branch: str | None = None, message: str | None = None,
               parent: str | None = "tip", files: dict[str, str] | None = None,
               date: str | None = None) -> str:
        """Create a commit; by default on top of ``branch``'s tip, and move ``branch`` to it."""
        self._n += 1
        message = message or f"commit {self._n}"
        files = files or {f"file{self._n}.txt": f"{message}\n"}
        entries = []
        for name, content in sorted(files.items()):
            blob = self.git("hash-object", "-w", "--stdin", input=content.encode())
            entries.append(f"100644 blob {blob}\t{name}")
        tree = self.git("mktree", input=("\n".join(entries) + "\n").encode())
        args = ["commit-tree", tree, "-m", message]
        if parent == "tip" and branch is not None:
            parent = self.rev(f"refs/heads/{branch}")
        if parent and parent != "tip":
            args += ["-p", parent]
        env = {"GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date} if date else None
        oid = self.git(*args, env=env)
        if branch is not None:
            self.set_ref(f"refs/heads/{branch}", oid)
        return oid

    def set_ref(self, ref: str, oid: str) -> None:
        self.git("update-ref", ref, oid)

    def delete_ref(self, ref: str) -> None:
        self.git("update-ref", "-d", ref)

    def tag(self, name: str, oid: str, annotated: bool = False) -> str:
        if annotated:
            run_git(f"--git-dir={self.path}", "tag", "-a", "-m", name, name, oid)
        else:
            self.set_ref(f"refs/tags/{name}", oid)
        return self.rev(f"refs/tags/{name}") or ""

    def rev(self, ref: str) -> str | None:
        res = run_git(f"--git-dir={self.path}", "rev-parse", "--verify", "-q", ref, check=False)
        return res.stdout.decode().strip() or None

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        text = self.git("for-each-ref", "--format=%(objectname) %(refname)", prefix)
        return {ln.split(" ", 1)[1]: ln.split(" ", 1)[0] for ln in text.splitlines() if ln}

    def is_ancestor(self, a: str, b: str) -> bool:
        return run_git(f"--git-dir={self.path}", "merge-base", "--is-ancestor", a, b,
                       check=False).returncode == 0
