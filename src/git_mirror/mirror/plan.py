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
    name: str
    ref: str
    mirror: str | None
    upstream: str | None
    action: str  # absent | in-sync | created | fast-forward | ahead | diverged | unknown

    @property
    def diverged(self) -> bool:
        return self.action == "diverged"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ref": self.ref, "mirrorCommit": self.mirror,
                "githubCommit": self.upstream, "action": self.action, "diverged": self.diverged}


@dataclass
class SyncPlan:
    updates: list[RefUpdate] = field(default_factory=list)
    snapshots: list[tuple[str, str]] = field(default_factory=list)  # (ref, commit)
    lanes: list[LaneState] = field(default_factory=list)

    def all_updates(self) -> list[RefUpdate]:
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


def plan_sync(layout: RepoLayout, upstream: Mapping[str, str], local: Mapping[str, str],
              ancestry: Ancestry) -> SyncPlan:
    """Every ref change one sync makes, given upstream's refs and the mirror's."""
    plan = SyncPlan()
    ups = {ref: oid for ref, oid in upstream.items() if layout.wants(ref)}

    def put(ref: str, new: str | None) -> None:
        old = local.get(ref)
        if new == old:
            return
        if new is None:
            assert old is not None
            plan.updates.append(RefUpdate(ref, None, old))
        else:
            plan.updates.append(RefUpdate(ref, new, old))

    # Stage: exactly upstream, for the declared refs.
    for ref, oid in ups.items():
        put(RepoLayout.stage_of(ref), oid)
    for ref in local:
        if ref.startswith(STAGE):
            up_ref = RepoLayout.upstream_of(ref)
            if up_ref not in ups and layout.wants(up_ref):
                put(ref, None)

    # Source branches and their snapshots.
    heads = {r for r in ups if r.startswith(HEADS)} | {r for r in local if r.startswith(HEADS)}
    for ref in heads:
        branch = ref[len(HEADS):]
        spec = layout.source_for(branch)
        if spec is None:
            continue
        tip = ups.get(ref)
        put(ref, tip)
        if tip is not None:
            snap = layout.snapshot_ref(spec.group, branch, tip)
            if snap not in local:
                plan.snapshots.append((snap, tip))

    # Tags.
    if layout.tags:
        for ref in {r for r in ups if r.startswith(TAGS)} | {r for r in local if r.startswith(TAGS)}:
            put(ref, ups.get(ref))

    # Lanes.
    for lane in layout.lanes:
        state = lane_state(lane.name, lane.ref, local.get(lane.ref), ups.get(lane.ref), ancestry)
        plan.lanes.append(state)
        if state.action in ("created", "fast-forward") and state.upstream is not None:
            put(lane.ref, state.upstream)
    plan.updates.sort(key=lambda u: u.ref)
    plan.snapshots.sort()
    return plan
