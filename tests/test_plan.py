"""The sync planner's lane and snapshot rules, checked over generated histories."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from git_mirror.mirror.layout import LaneSpec, RepoLayout, SourceSpec
from git_mirror.mirror.plan import lane_state, plan_sync

# A tiny commit graph: c0 <- c1 <- c2 (line), and x1 on a side branch from c0.
PARENT = {"c1": "c0", "c2": "c1", "x1": "c0", "c0": None}


def oid(name: str | None) -> str | None:
    return None if name is None else name.ljust(40, "f")


def ancestry(a: str, b: str) -> bool:
    """True when a is an ancestor of b (or equal) in PARENT."""
    node: str | None = b[:2]
    target = a[:2]
    while node is not None:
        if node == target:
            return True
        node = PARENT[node]
    return False


LAYOUT = RepoLayout(id="r", cache=__import__("pathlib").Path("/nonexistent"), namespace="ns",
                    sources=(SourceSpec("main", "g"), SourceSpec("release/*", "r")),
                    lanes=(LaneSpec("v03", "gitops/v03"),), tags=True)
commits = st.sampled_from([None, "c0", "c1", "c2", "x1"])


@given(mirror=commits, upstream=commits)
def test_lane_never_rewinds_and_follows_the_rules(mirror: str | None, upstream: str | None) -> None:
    m, u = oid(mirror), oid(upstream)
    state = lane_state("v03", "refs/heads/gitops/v03", m, u, ancestry)
    plan = plan_sync(LAYOUT, {"refs/heads/gitops/v03": u} if u else {},
                     {"refs/heads/gitops/v03": m} if m else {}, ancestry)
    lane_updates = [x for x in plan.updates if x.ref == "refs/heads/gitops/v03"]
    if m is None and u is not None:
        assert state.action == "created"
        assert lane_updates[0].new == u
        assert lane_updates[0].old is None
    elif m is not None and u is not None and m != u and ancestry(m, u):
        assert state.action == "fast-forward" and lane_updates[0].new == u
    else:
        assert lane_updates == []  # ahead, diverged, in sync or absent: the lane is left as it is
    if lane_updates and m is not None:
        assert ancestry(m, lane_updates[0].new or "")  # never a rewind
    if m and u and not ancestry(m, u) and not ancestry(u, m):
        assert state.diverged
    # The stage always becomes exactly upstream.
    stage = [x for x in plan.updates if x.ref == "refs/mirror-stage/heads/gitops/v03"]
    assert (stage[0].new if stage else None) == u


@settings(max_examples=60)
@given(ups=st.dictionaries(st.sampled_from(["main", "release/1", "release/2", "feature/x",
                                           "gitops/v03"]),
                           st.sampled_from(["c0", "c1", "c2", "x1"]), max_size=5),
       snaps=st.sets(st.sampled_from(["c0", "c1", "c2", "x1"])))
def test_snapshots_only_for_sources_and_never_twice(ups: dict[str, str], snaps: set[str]) -> None:
    upstream = {f"refs/heads/{b}": oid(c) or "" for b, c in ups.items()}
    local = {f"refs/ns/snapshots/g/main/{oid(c)}": oid(c) or "" for c in snaps}
    plan = plan_sync(LAYOUT, upstream, local, ancestry)
    for ref, commit in plan.snapshots:
        assert ref not in local
        assert ref.endswith("/" + commit)
        branch = ref.split("/", 4)[4].rsplit("/", 1)[0]
        assert LAYOUT.source_for(branch) is not None
    assert not any("feature" in r or "gitops" in r for r, _ in plan.snapshots)
    # Undeclared branches never reach the stage or the mirror's heads.
    assert not any("feature/x" in u.ref for u in plan.updates)
