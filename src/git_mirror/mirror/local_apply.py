"""``apply`` on a local node: one bare mirror per declared repository, configured as YAML says.

Idempotent: the desired git config is compared with what is on disk (one ``git config
--list -z``), and only differences are written. A repository removed from YAML is reported as
orphaned, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.config.egress import effective_proxy_name
from git_mirror.errors import Code
from git_mirror.git.refs import RefUpdate
from git_mirror.git.run import git
from git_mirror.mirror.layout import HEADS, RepoLayout

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

__all__ = ["ApplyResult", "RepoApply", "apply_local", "effective_proxy_name", "ensure_repo"]

REMOTE = "upstream"
# Settings every mirror carries. Values are strings, as git config stores them.
BASE_SETTINGS: dict[str, str] = {
    "core.logallrefupdates": "always",   # a reflog for every ref, snapshots included
    "gc.auto": "0",                       # no surprise gc under a running sync
    "gc.autodetach": "false",
    "maintenance.auto": "false",
    "receive.autogc": "false",
    "receive.denynonfastforwards": "true",
    "receive.denydeletes": "true",
    "receive.fsckobjects": "true",
    "uploadpack.allowfilter": "true",     # partial clones for CI
    "uploadpack.allowreachablesha1inwant": "true",
    "protocol.version": "2",
    "repack.writebitmaps": "true",
    "pack.writebitmaphashcache": "true",
    "core.commitgraph": "true",
    "fetch.writecommitgraph": "false",
    "http.receivepack": "true",
    # Quarantined refs (verify --repair) are kept as evidence, out of clients' sight.
    "uploadpack.hiderefs": "refs/mirror-quarantine/",
    "receive.hiderefs": "refs/mirror-quarantine/",
    # The reflogs prove who wrote each protected ref (verify): a manual gc keeps them.
    "gc.reflogexpire": "never",
    "gc.reflogexpireunreachable": "never",
}


def desired_settings(cfg: LoadedConfig, rid: str, node: str | None = None) -> dict[str, str]:
    """Every git config setting the YAML declares for ``rid``'s mirror (values as git's)."""
    repo = cfg.model.repositories[rid]
    settings = dict(BASE_SETTINGS)
    layout = RepoLayout.of(cfg, rid)
    settings.update({
        f"remote.{REMOTE}.url": repo.upstream,
        # What `git fetch upstream` by hand would do: upstream into the stage refs only.
        f"remote.{REMOTE}.fetch": "\n".join(
            f"+{p}:{RepoLayout.stage_of(p)}" for p in layout.upstream_patterns()),
        f"remote.{REMOTE}.tagopt": "--no-tags",
        "gitmirror.id": rid,
        "gitmirror.transport": repo.transport.mode,
        "gitmirror.proxy": effective_proxy_name(cfg, rid, node) or "none",
        "gitmirror.namespace": cfg.model.snapshots.namespace,
        # The lane refs, for the pre-receive hook: it reads them from here rather than
        # loading the YAML, so that a client push pays for no config parsing.
        "gitmirror.lanes": " ".join(sorted(HEADS + lane.ref.removeprefix(HEADS)
                                           for lane in repo.lanes.values())),
        # The source branch patterns, so that a refusal names the kind of ref refused.
        "gitmirror.sources": " ".join(sorted(HEADS + s.pattern for s in layout.sources)),
    })
    hooks = hooks_dir(cfg)
    if hooks is not None:
        settings["core.hookspath"] = str(hooks)
    return settings


def hooks_dir(cfg: LoadedConfig) -> Path | None:
    """Where the mirror's git hooks live (None until a hook is installed by apply)."""
    path = cfg.cache_dir / "hooks"
    return path if (path / "pre-receive").exists() else None


# Keys that would change how upstream is reached if they sat in a mirror's own config
# (``url.*.insteadOf`` rewrites even explicit URLs; the others are beaten by what the
# transport passes, but do not belong there either). The transport is the YAML's alone (R13).
# An include (or a per-worktree config file) can bring any of these in from elsewhere: it is
# a transport setting too, and apply removes it.
_TRANSPORT_PREFIXES = ("url.", "http.", "https.", "credential.", f"remote.{REMOTE}.",
                       "include.", "includeif.")
_TRANSPORT_KEYS = ("core.sshcommand", "ssh.variant", "core.gitproxy", "core.askpass",
                   "extensions.worktreeconfig")


def is_transport_key(key: str) -> bool:
    """True for a git config key that decides how upstream is reached."""
    return key.startswith(_TRANSPORT_PREFIXES) or key in _TRANSPORT_KEYS


def default_head(layout: RepoLayout) -> str | None:
    """The mirror's HEAD: the first source branch that is not a glob (None: all are)."""
    for spec in layout.sources:
        if not spec.is_glob:
            return HEADS + spec.pattern
    return None


# What ``git config --local --list`` said of a mirror's config file (see read_settings).
SETTINGS_CACHE = "git-config.json"


def read_settings(git_dir: Path, cache: Path | None = None) -> dict[str, str]:
    """The mirror's own git config, as git reads it.

    With ``cache`` (a file of git-mirror's, outside the mirror), what git said is kept there
    keyed by the config file's sha256: every sync checks for drift, and the file changes only
    when someone changes the mirror.
    """
    try:
        raw = (git_dir / "config").read_bytes()
    except OSError:
        raw = None
    # An include (or a per-worktree config) makes the answer depend on other files: ask git.
    lowered = raw.lower() if raw is not None else b""
    cacheable = (cache is not None and raw is not None and b"include" not in lowered
                 and b"worktreeconfig" not in lowered)
    digest = hashlib.sha256(raw).hexdigest() if raw is not None else ""
    if cacheable:
        assert cache is not None
        try:
            cached = json.loads(cache.read_text())
            if cached.get("sha256") == digest and isinstance(cached.get("settings"), dict):
                return {str(k): str(v) for k, v in cached["settings"].items()}
        except (OSError, ValueError):
            pass
    settings = _git_settings(git_dir)
    try:  # keep only an answer about the bytes that were hashed
        cacheable = cacheable and (git_dir / "config").read_bytes() == raw
    except OSError:
        cacheable = False
    if cacheable:
        assert cache is not None
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"sha256": digest, "settings": settings}))
            os.replace(tmp, cache)
        except OSError:
            tmp.unlink(missing_ok=True)
    return settings


def _git_settings(git_dir: Path) -> dict[str, str]:
    # --includes: what git itself will use when it fetches or pushes, included files too.
    out = git(["config", "--local", "--includes", "--list", "-z"], git_dir=git_dir,
              what="git config").stdout
    settings: dict[str, str] = {}
    for item in out.split(b"\0"):
        if not item:
            continue
        key, _, value = item.decode("utf-8", "replace").partition("\n")
        # git prints section and variable names in lower case already; a subsection
        # (``url.<base>.insteadof``) keeps its case, which unsetting it needs.
        # A multi-valued key reads as its values joined by newlines, as desired_settings has it.
        settings[key] = f"{settings[key]}\n{value}" if key in settings else value
    return settings


@dataclass(frozen=True)
class SettingChange:
    """One difference between a mirror and the YAML: a git config key (``repository``: the
    mirror itself, ``HEAD``: its default branch), its value now and the declared one."""

    key: str
    old: str | None
    new: str | None

    def to_json(self) -> dict[str, Any]:
        """``{"key", "from", "to"}``."""
        return {"key": self.key, "from": self.old, "to": self.new}


@dataclass
class RepoApply:
    """What apply does (or would do) to one mirror: create it, update settings, or nothing."""

    id: str
    path: str
    action: str  # create | update | unchanged
    changes: list[SettingChange] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # stale git lock files removed

    def to_json(self) -> dict[str, Any]:
        """The repository's entry in ``apply --json``."""
        return {"id": self.id, "path": self.path, "action": self.action,
                "changes": [c.to_json() for c in self.changes], "recovered": self.recovered}


@dataclass
class ApplyResult:
    """``apply`` on a local node: the hook, every mirror, the orphans, what is still wrong."""

    node: str
    dry_run: bool
    repositories: list[RepoApply]
    orphaned: list[str]
    executor: str = "local"
    hooks: dict[str, Any] | None = None       # the protection hook (integrity.converge_protection)
    integrity: dict[str, Any] | None = None   # what is still wrong after (or, dry run, before)

    @property
    def changed(self) -> bool:
        """Apply changed (or, dry run, would change) something."""
        hooks = self.hooks or {}
        return (any(r.action != "unchanged" for r in self.repositories)
                or hooks.get("action", "unchanged") != "unchanged"
                or bool(hooks.get("strayHooks")))

    def to_json(self) -> dict[str, Any]:
        """The ``apply --json`` object of a local node."""
        out = {"ok": True, "node": self.node, "executor": self.executor, "dryRun": self.dry_run,
               "changed": self.changed,
               "repositories": [r.to_json() for r in self.repositories],
               "orphaned": self.orphaned}
        if self.hooks is not None:
            out["hooks"] = self.hooks
        if self.integrity is not None:
            out["integrity"] = self.integrity
            out["warnings"] = [{"code": Code.INTEGRITY, "message": p["message"], "hint": p["fix"]}
                               for p in self.integrity["problems"]]
        return out


def plan_repo(cfg: LoadedConfig, rid: str, node: str | None = None, *,
              cached: bool = False) -> RepoApply:
    """What apply would change in ``rid``'s mirror. ``cached``: the git config may be read
    from :data:`SETTINGS_CACHE` in the repository's state directory (sync's drift check)."""
    layout = RepoLayout.of(cfg, rid)
    desired = desired_settings(cfg, rid, node)
    head = default_head(layout)
    if not (layout.git_dir / "HEAD").exists():
        changes = [SettingChange("repository", None, str(layout.git_dir))]
        changes += [SettingChange(k, None, v) for k, v in sorted(desired.items())]
        if head:
            changes.append(SettingChange("HEAD", None, head))
        return RepoApply(rid, str(layout.git_dir), "create", changes)
    current = read_settings(layout.git_dir, layout.state_dir / SETTINGS_CACHE if cached else None)
    changes = [SettingChange(k, current.get(k), v)
               for k, v in sorted(desired.items()) if current.get(k) != v]
    if "core.hookspath" in current and "core.hookspath" not in desired:
        changes.append(SettingChange("core.hookspath", current["core.hookspath"], None))
    changes += [SettingChange(k, v, None) for k, v in sorted(current.items())
                if is_transport_key(k) and k not in desired]
    if head:
        try:
            cur_head = (layout.git_dir / "HEAD").read_text().strip().removeprefix("ref: ")
        except OSError:
            cur_head = None
        if cur_head != head:
            changes.append(SettingChange("HEAD", cur_head, head))
    return RepoApply(rid, str(layout.git_dir), "update" if changes else "unchanged", changes)


def execute(plan: RepoApply) -> None:
    """Carry out ``plan``: create the mirror, or write the settings that differ."""
    git_dir = Path(plan.path)
    if plan.action == "create":
        _create(git_dir, plan)
        return
    _configure(git_dir, plan)


def _create(git_dir: Path, plan: RepoApply) -> None:
    """Build the mirror beside its place and rename it in: a kill at any instant leaves no
    mirror or a complete one, never one without its settings (which sync would call drift).

    The caller holds the repository lock, so a directory left by an earlier, killed creation
    is stale: it is removed, as is a directory at the mirror's path that has no ``HEAD`` (not
    a repository: what a killed ``git init`` of an older version left).
    """
    import secrets
    import shutil

    git_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in git_dir.parent.glob(f".{git_dir.name}.new-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if git_dir.is_dir() and not (git_dir / "HEAD").exists():
        shutil.rmtree(git_dir)
    # Not mkdtemp (mode 0700): the mirror gets the mode git init would give it (umask).
    building = git_dir.parent / f".{git_dir.name}.new-{os.getpid()}-{secrets.token_hex(4)}"
    building.mkdir()
    try:
        git(["init", "--bare", "--quiet", str(building)], what="git init")
        _configure(building, plan)
        os.rename(building, git_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _configure(git_dir: Path, plan: RepoApply) -> None:
    for change in plan.changes:
        key, value = change.key, change.new
        if key == "repository":
            continue
        if key == "HEAD":
            assert value is not None  # HEAD is always set to a declared branch
            git(["symbolic-ref", "HEAD", value], git_dir=git_dir, what="git symbolic-ref")
        elif value is None:
            git(["config", "--local", "--unset-all", key], git_dir=git_dir, ok_codes=(0, 5),
                what="git config")
        elif "\n" in value:
            git(["config", "--local", "--unset-all", key], git_dir=git_dir, ok_codes=(0, 5),
                what="git config")
            for item in value.split("\n"):
                git(["config", "--local", "--add", key, item], git_dir=git_dir, what="git config")
        else:
            git(["config", "--local", "--replace-all", key, value], git_dir=git_dir,
                what="git config")


def orphaned_repos(cfg: LoadedConfig) -> list[str]:
    """Mirrors in the cache that the YAML no longer declares (reported, never deleted)."""
    root = cfg.cache_dir / "repos"
    if not root.is_dir():
        return []
    declared = set(cfg.model.repositories)
    return sorted(p.name.removesuffix(".git") for p in root.glob("*.git")
                  if p.name.removesuffix(".git") not in declared)


def ensure_repo(cfg: LoadedConfig, rid: str, node: str | None = None) -> RepoApply:
    """Create and configure one mirror (used by apply, and by sync for a new repository)."""
    from git_mirror.mirror.hooks import install_hooks

    # A mirror never exists without its ref protection, even when sync creates it.
    install_hooks(cfg)
    plan = plan_repo(cfg, rid, node)
    if plan.action != "unchanged":
        execute(plan)
    return plan


def apply_local(cfg: LoadedConfig, *, confirm: bool, node: str = "local",
                jobs: int | None = None) -> ApplyResult:
    """Converge the local node to the YAML (dry run unless ``confirm``), ``jobs`` at once."""
    from git_mirror.git import progress
    from git_mirror.mirror import audit, integrity
    from git_mirror.mirror.parallel import each, jobs_for
    from git_mirror.mirror.report import apply_line

    # The hook first: rewritten when it is not ours, other hooks moved aside.
    request_id = audit.new_request_id()  # one id for everything this apply changes
    hooks = integrity.converge_protection(cfg, confirm=confirm, request_id=request_id)
    workers = jobs_for(cfg, jobs)
    plans = each(list(cfg.model.repositories), lambda rid: plan_repo(cfg, rid, node), workers)
    if confirm:
        from git_mirror.mirror.lock import repo_lock
        from git_mirror.mirror.recovery import clear_stale_locks

        def converge(plan: RepoApply) -> None:
            progress.begin(plan.id)
            if plan.action != "unchanged":
                # Under the repository's lock, like every writer of a mirror: a git config
                # write never meets a sync, and a stale lock file is removable by proof.
                layout = RepoLayout.of(cfg, plan.id)
                with repo_lock(layout.state_dir, plan.id, wait=True, command="apply"):
                    if plan.action != "create":  # an apply killed in a git config write
                        plan.recovered = clear_stale_locks(layout.git_dir, layout.state_dir)[0]
                    execute(plan)
                audit.record(layout.state_dir, plan.id, "apply",
                             [RefUpdate("HEAD", c.new, c.old) for c in plan.changes
                              if c.key == "HEAD"], request_id=request_id)
            progress.done(apply_line(plan))

        by_id = {plan.id: plan for plan in plans}
        each(list(by_id), lambda rid: converge(by_id[rid]), workers)
    # What apply cannot fix (forged refs) or, in a dry run, what it would: said, not hidden.
    problems = integrity.node_problems(cfg)
    for rid in cfg.model.repositories:
        problems += integrity.repository_problems(cfg, rid)
    return ApplyResult(node=node, dry_run=not confirm, repositories=plans,
                       orphaned=orphaned_repos(cfg), hooks=hooks,
                       integrity=integrity.summary(problems))
