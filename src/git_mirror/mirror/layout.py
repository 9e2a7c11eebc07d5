"""Where things live: the repository paths under the cache and the names of refs.

::

    <cache>/repos/<id>.git                      the bare mirror
    <cache>/state/<id>/lock                     the per-repository lock (sync, flush)
    <cache>/state/<id>/last-sync.json           the last sync's record
    <cache>/state/<id>/runs.jsonl               every run, newest last (bounded)

    refs/heads/<branch>                         source branches and lanes
    refs/tags/<tag>                             tags (when declared)
    refs/mirror-stage/heads/<branch>            upstream as last observed
    refs/mirror-stage/tags/<tag>
    refs/<namespace>/snapshots/<group>/<branch>/<commit>
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

STAGE = "refs/mirror-stage/"
STAGE_HEADS = "refs/mirror-stage/heads/"
STAGE_TAGS = "refs/mirror-stage/tags/"
HEADS = "refs/heads/"
TAGS = "refs/tags/"


@dataclass(frozen=True)
class SourceSpec:
    """A declared source: a branch name or glob, and the snapshot group of its snapshots."""

    pattern: str  # branch name or glob, without refs/heads/
    group: str

    @property
    def is_glob(self) -> bool:
        """The pattern has a ``*``."""
        return "*" in self.pattern

    def matches(self, branch: str) -> bool:
        """``branch`` (without ``refs/heads/``) is this source."""
        return self._regex.match(branch) is not None

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(fnmatch.translate(self.pattern))


@dataclass(frozen=True)
class LaneSpec:
    """A declared lane: its name and branch."""

    name: str
    branch: str  # without refs/heads/

    @property
    def ref(self) -> str:
        """The lane's ref, in the mirror and upstream alike."""
        return HEADS + self.branch

    @property
    def stage_ref(self) -> str:
        """Where the mirror keeps the lane as upstream was last seen."""
        return STAGE_HEADS + self.branch


@dataclass(frozen=True)
class RepoLayout:
    """One declared repository: its paths and the refs it follows."""

    id: str
    cache: Path
    namespace: str
    sources: tuple[SourceSpec, ...]
    lanes: tuple[LaneSpec, ...]
    tags: bool

    @classmethod
    def of(cls, cfg: LoadedConfig, rid: str) -> RepoLayout:
        """The layout of ``rid`` as the config declares it."""
        repo = cfg.model.repositories[rid]
        return cls(
            id=rid, cache=cfg.cache_dir, namespace=cfg.model.snapshots.namespace,
            sources=tuple(SourceSpec(s.branch.removeprefix(HEADS), s.snapshot_group or rid)
                          for s in repo.sources),
            lanes=tuple(LaneSpec(name, lane.ref.removeprefix(HEADS))
                        for name, lane in repo.lanes.items()),
            tags=repo.tags,
        )

    @property
    def git_dir(self) -> Path:
        """The bare mirror: ``<cache>/repos/<id>.git``."""
        return self.cache / "repos" / f"{self.id}.git"

    @property
    def state_dir(self) -> Path:
        """The repository's state (lock, journal, audit): ``<cache>/state/<id>``."""
        return self.cache / "state" / self.id

    @property
    def snapshot_prefix(self) -> str:
        """``refs/<namespace>/snapshots/``."""
        return f"refs/{self.namespace}/snapshots/"

    def snapshot_ref(self, group: str, branch: str, commit: str) -> str:
        """The snapshot of ``commit`` of ``branch`` in ``group``: its name fixes its value."""
        return f"{self.snapshot_prefix}{group}/{branch}/{commit}"

    @cached_property
    def _lane_branches(self) -> frozenset[str]:
        return frozenset(lane.branch for lane in self.lanes)

    @cached_property
    def _wants_regex(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})"
                                   for p in self.upstream_patterns()))

    def source_for(self, branch: str) -> SourceSpec | None:
        """The first declared source that matches ``branch`` (lanes never match)."""
        if branch in self._lane_branches:
            return None
        for spec in self.sources:
            if spec.matches(branch):
                return spec
        return None

    def lane(self, name: str) -> LaneSpec | None:
        """The lane named ``name``, if declared."""
        return next((lane for lane in self.lanes if lane.name == name), None)

    def upstream_patterns(self) -> list[str]:
        """The upstream ref names and globs sync asks for."""
        pats = [HEADS + s.pattern for s in self.sources]
        pats += [HEADS + lane.branch for lane in self.lanes]
        if self.tags:
            pats.append(TAGS + "*")
        return pats

    def wants(self, upstream_ref: str) -> bool:
        """True when sync follows ``upstream_ref`` (a source, a lane, or a declared tag)."""
        return self._wants_regex.match(upstream_ref) is not None

    @staticmethod
    def stage_of(upstream_ref: str) -> str:
        """``refs/heads/x`` -> ``refs/mirror-stage/heads/x``."""
        return STAGE + upstream_ref.removeprefix("refs/")

    @staticmethod
    def upstream_of(stage_ref: str) -> str:
        """``refs/mirror-stage/heads/x`` -> ``refs/heads/x``."""
        return "refs/" + stage_ref.removeprefix(STAGE)

    def local_patterns(self) -> list[str]:
        """Prefixes for one for-each-ref that sees everything sync and status compare."""
        pats = [STAGE, HEADS]
        if self.tags:
            pats.append(TAGS)
        return pats

    def snapshot_pattern(self) -> str:
        """The for-each-ref pattern of every snapshot of the repository."""
        return self.snapshot_prefix


def selected_repositories(cfg: LoadedConfig, repo: str | None,
                          lane: str | None = None) -> list[str]:
    """Every declared repository id, or just ``repo``; with ``lane`` (the global ``--lane``),
    only those that declare it. An undeclared repository or lane is a usage error that names
    the declared ones."""
    from git_mirror.errors import UsageError

    if repo is not None and repo not in cfg.model.repositories:
        raise UsageError(f"repository {repo!r} is not declared in {cfg.path} "
                         f"(declared: {', '.join(cfg.model.repositories) or 'none'})",
                         hint="git-mirror status")
    ids = list(cfg.model.repositories) if repo is None else [repo]
    if lane is None:
        return ids
    found = [rid for rid in ids if lane in cfg.model.repositories[rid].lanes]
    if not found:
        declared = sorted({name for rid in ids for name in cfg.model.repositories[rid].lanes})
        raise UsageError(f"lane {lane!r} is not declared"
                         + (f" in repository {repo}" if repo else "")
                         + f" in {cfg.path} (declared: {', '.join(declared) or 'none'})",
                         hint="git-mirror status")
    return found
