"""The pure part of sync: from upstream refs and local refs to one list of ref updates.

No git here except the ancestry question, passed in as a function, so the lane rules can be
tested exhaustively. The rules (CONTRACT section 3):

* stage refs become exactly what upstream has for the declared refs;
* source branches follow upstream (force allowed) and get a snapshot for every tip that has
  none yet (created with the zero old value: an existing snapshot can never move);
* tags follow upstream when declared;
* a lane missing in the mirror starts at the upstream tip, a lane behind fast-forwards, a lane
  ahead is left for flush, a diverged lane is left exactly as it is and reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from git_mirror.git.refs import RefUpdate
from git_mirror.mirror.layout import HEADS, STAGE, TAGS, RepoLayout

# ancestry(a, b) -> True if a is an ancestor of b; None when it cannot be told (objects missing)
Ancestry = Callable[[str, str], bool | None]


@dataclass(frozen=True)
class LaneState:
    """A lane as sync sees it: the mirror's commit, upstream's, and what sync does with it."""

    name: str
    ref: str
    mirror: str | None
    upstream: str | None
    action: str  # absent | in-sync | created | fast-forward | ahead | diverged | unknown

    @property
    def diverged(self) -> bool:
        """The mirror and upstream both moved: the lane is left for a person."""
        return self.action == "diverged"

    def to_json(self) -> dict[str, Any]:
        """The lane's entry in a repository's ``lanes`` of ``sync --json``."""
        return {"name": self.name, "ref": self.ref, "mirrorCommit": self.mirror,
                "githubCommit": self.upstream, "action": self.action, "diverged": self.diverged}


@dataclass
class SyncPlan:
    """The ref updates and new snapshots of one sync, and the state of its lanes."""

    updates: list[RefUpdate] = field(default_factory=list)
    snapshots: list[tuple[str, str]] = field(default_factory=list)  # (ref, commit)
    lanes: list[LaneState] = field(default_factory=list)

    def all_updates(self) -> list[RefUpdate]:
        """The updates, then the snapshots as creations (zero old value: they never move)."""
        return self.updates + [RefUpdate(ref, commit, None) for ref, commit in self.snapshots]


def candidate_snapshots(layout: RepoLayout, upstream: Mapping[str, str]) -> list[str]:
    """Snapshot refs that sync would create for the upstream tips (to ask which exist)."""
    out = []
    for ref, oid in upstream.items():
        if ref.startswith(HEADS):
            branch = ref[len(HEADS):]
            spec = layout.source_for(branch)
            if spec is not None:
                out.append(layout.snapshot_ref(spec.group, branch, oid))
    return out


def lane_state(name: str, ref: str, mirror: str | None, upstream: str | None,
               ancestry: Ancestry) -> LaneState:
    """What the lane rules say of a lane at ``mirror`` when upstream has ``upstream``."""
    if mirror is None and upstream is None:
        action = "absent"
    elif mirror is None:
        action = "created"
    elif upstream is None or mirror == upstream:
        action = "ahead" if upstream is None else "in-sync"
    elif ancestry(upstream, mirror):
        action = "ahead"
    else:
        behind = ancestry(mirror, upstream)
        action = "fast-forward" if behind else ("unknown" if behind is None else "diverged")
    return LaneState(name, ref, mirror, upstream, action)


class _Planner:
    """The ref changes of one sync, built step by step from upstream's refs and the mirror's."""

    def __init__(self, layout: RepoLayout, upstream: Mapping[str, str],
                 local: Mapping[str, str]) -> None:
        self.layout = layout
        self.local = local
        self.ups = {ref: oid for ref, oid in upstream.items() if layout.wants(ref)}
        self.plan = SyncPlan()

    def put(self, ref: str, new: str | None) -> None:
        """``ref`` must become ``new`` (None: deleted); nothing when it already is."""
        old = self.local.get(ref)
        if new == old:
            return
        if new is None:
            assert old is not None
        self.plan.updates.append(RefUpdate(ref, new, old))

    def stage(self) -> None:
        """Stage refs: exactly upstream, for the declared refs."""
        for ref, oid in self.ups.items():
            self.put(RepoLayout.stage_of(ref), oid)
        for ref in self.local:
            if ref.startswith(STAGE):
                up_ref = RepoLayout.upstream_of(ref)
                if up_ref not in self.ups and self.layout.wants(up_ref):
                    self.put(ref, None)

    def sources(self) -> None:
        """Source branches follow upstream; a tip with no snapshot yet gets one."""
        heads = ({r for r in self.ups if r.startswith(HEADS)}
                 | {r for r in self.local if r.startswith(HEADS)})
        for ref in heads:
            branch = ref[len(HEADS):]
            spec = self.layout.source_for(branch)
            if spec is None:
                continue
            tip = self.ups.get(ref)
            self.put(ref, tip)
            if tip is not None:
                snap = self.layout.snapshot_ref(spec.group, branch, tip)
                if snap not in self.local:
                    self.plan.snapshots.append((snap, tip))

    def tags(self) -> None:
        """Tags follow upstream, when the repository declares them."""
        if self.layout.tags:
            for ref in ({r for r in self.ups if r.startswith(TAGS)}
                        | {r for r in self.local if r.startswith(TAGS)}):
                self.put(ref, self.ups.get(ref))

    def lanes(self, ancestry: Ancestry) -> None:
        """A lane is created or fast-forwarded to upstream; otherwise left as it is."""
        for lane in self.layout.lanes:
            state = lane_state(lane.name, lane.ref, self.local.get(lane.ref),
                               self.ups.get(lane.ref), ancestry)
            self.plan.lanes.append(state)
            if state.action in ("created", "fast-forward") and state.upstream is not None:
                self.put(lane.ref, state.upstream)


def plan_sync(layout: RepoLayout, upstream: Mapping[str, str], local: Mapping[str, str],
              ancestry: Ancestry) -> SyncPlan:
    """Every ref change one sync makes, given upstream's refs and the mirror's."""
    planner = _Planner(layout, upstream, local)
    planner.stage()
    planner.sources()
    planner.tags()
    planner.lanes(ancestry)
    plan = planner.plan
    plan.updates.sort(key=lambda u: u.ref)
    plan.snapshots.sort()
    return plan
