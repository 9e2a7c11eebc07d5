"""The embedded default: a local upstream, a config for it, then apply, sync and status.

``git-mirror demo --dir DIR`` needs no network: it builds a bare upstream with a ``main``
branch, a ``release/1.0`` branch, a tag and a GitOps lane, writes ``DIR/git-mirror.yaml``,
and runs the main job on the local node. Run it again to see an idempotent sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.git.run import git

if TYPE_CHECKING:
    from git_mirror.mirror.local_apply import ApplyResult
    from git_mirror.mirror.status import StatusResult
    from git_mirror.mirror.sync import SyncResult

COMMIT_ENV = {"GIT_AUTHOR_NAME": "git-mirror demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
              "GIT_COMMITTER_NAME": "git-mirror demo",
              "GIT_COMMITTER_EMAIL": "demo@example.invalid"}

CONFIG = """\
# Written by `git-mirror demo`: a local node mirroring a local upstream.
version: 1
snapshots:
  namespace: demo
repositories:
  app:
    upstream: {upstream}
    transport: {{mode: file}}
    sources:
      - branch: main
        snapshotGroup: app-runtime
      - branch: release/*
    tags: true
    lanes:
      v03: {{ref: gitops/v03}}
"""


def commit(git_dir: Path, message: str, files: dict[str, str], parent: str | None = None) -> str:
    """Create a commit holding ``files`` (flat) on top of ``parent``; return its id."""
    entries = []
    for name, content in sorted(files.items()):
        blob = git(["hash-object", "-w", "--stdin"], git_dir=git_dir,
                   input=content.encode()).text.strip()
        entries.append(f"100644 blob {blob}\t{name}")
    tree = git(["mktree"], git_dir=git_dir, input=("\n".join(entries) + "\n").encode()).text.strip()
    args = ["commit-tree", tree, "-m", message]
    if parent:
        args += ["-p", parent]
    return git(args, git_dir=git_dir, env=COMMIT_ENV).text.strip()


def build_upstream(path: Path) -> None:
    """A bare upstream with ``main``, ``release/1.0``, a tag, a lane and an undeclared branch."""
    git(["init", "--bare", "--quiet", str(path)])
    c1 = commit(path, "initial", {"README": "demo app\n"})
    c2 = commit(path, "feature", {"README": "demo app\n", "app.txt": "v1\n"}, c1)
    rel = commit(path, "release 1.0", {"README": "demo app\n", "app.txt": "v1.0\n"}, c1)
    lane = commit(path, "gitops: deploy v1", {"deploy.yaml": "image: app@v1\n"})
    git(["update-ref", "--stdin"], git_dir=path, input=(
        f"create refs/heads/main {c2}\ncreate refs/heads/release/1.0 {rel}\n"
        f"create refs/heads/gitops/v03 {lane}\ncreate refs/heads/scratch {c1}\n"
        f"create refs/tags/v1.0 {rel}\n").encode())
    git(["symbolic-ref", "HEAD", "refs/heads/main"], git_dir=path)


@dataclass
class DemoResult:
    """The demo's apply, sync and status, and where its config is."""

    config: Path
    applied: ApplyResult
    synced: SyncResult
    status: StatusResult

    def text(self) -> str:
        """What a person sees: the three results as the commands print them, and what next."""
        from git_mirror.cli.human import apply_text, status_text, sync_text

        return "\n\n".join([apply_text(self.applied.to_json()), sync_text(self.synced.to_json()),
                             status_text(self.status.to_json()),
                             f"config: {self.config}\n"
                             f"next: git-mirror --config {self.config} status --json"])

    def to_json(self) -> dict[str, Any]:
        """``ok`` (the sync's), the config path, the three results and the text."""
        return {"ok": self.synced.ok, "config": str(self.config),
                "apply": self.applied.to_json(), "sync": self.synced.to_json(),
                "status": self.status.to_json(), "text": self.text()}


def run_demo(directory: str) -> DemoResult:
    """Build the demo in ``directory`` (once), then apply, sync and read the status."""
    from git_mirror.config import load_config
    from git_mirror.mirror.local_apply import apply_local
    from git_mirror.mirror.status import status
    from git_mirror.mirror.sync import sync

    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    upstream = root / "upstream.git"
    if not (upstream / "HEAD").exists():
        build_upstream(upstream)
    cfg_path = root / "git-mirror.yaml"
    if not cfg_path.exists():
        cfg_path.write_text(CONFIG.format(upstream=f"file://{upstream}"), encoding="utf-8")
    cfg = load_config(cfg_path)
    applied = apply_local(cfg, confirm=True)
    synced = sync(cfg, confirm=True, wait=True)
    return DemoResult(cfg_path, applied, synced, status(cfg))
