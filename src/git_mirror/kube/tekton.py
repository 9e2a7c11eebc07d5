"""Tekton PipelineRuns of a follower: the manifest (pure), their state, finding and waiting.

A follower's PipelineRun (``tekton.dev/v1``) runs the declared Pipeline with git-mirror's
params, whose only source is one snapshot ref of the mirror (R11)::

    snapshot-ref   refs/<ns>/snapshots/<group>/<branch>/<commit>   what to fetch and build
    commit         the snapshot's commit                            what to check out
    repo-url       http://<service>.<namespace>.svc:<port>/<id>.git the mirror (serve)
    lane-ref       e.g. refs/heads/gitops/v03                       where deploy commits go
    push-url       the same URL: pushes go through serve's token-gated receive-pack and the
                   mirror's ref-protection hook (lanes only, fast-forward only)

No param names a mutable branch. The Pipeline declares these params (extra ones from
``trigger.tekton.params`` come after them). Labels: ``git-mirror/follower``,
``git-mirror/commit``, ``git-mirror/lane`` and the node's ``app.kubernetes.io/*`` labels
(component ``follower``); the full snapshot ref is the annotation ``git-mirror/snapshot-ref``.
Tekton copies a PipelineRun's labels to its TaskRuns and pods and adds
``tekton.dev/pipelineRun``, which is how cleanup finds them.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code, GitMirrorError
from git_mirror.kube.node import (
    L_COMPONENT,
    L_INSTANCE,
    L_MANAGED,
    Names,
    dns_label,
    labels,
    listen_port,
)

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Follower, TektonSpec
    from git_mirror.kube.client import KubeClient, Manifest

API = "tekton.dev/v1"
L_FOLLOWER, L_COMMIT, L_LANE = "git-mirror/follower", "git-mirror/commit", "git-mirror/lane"
A_SNAPSHOT = "git-mirror/snapshot-ref"
# The lane's tip in the mirror when the run was created, and the lane commit the run published
# (recorded once the run finished): closeout's deployedContainsRun compares the latter with
# the deployed revision.
A_LANE_BEFORE = "git-mirror/lane-tip-before"
A_PUBLISHED = "git-mirror/published-lane-commit"
NOTHING = "none"  # A_PUBLISHED of a run that published no lane commit
L_TEKTON_RUN = "tekton.dev/pipelineRun"
COMPONENT = "follower"
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


def service_url(cfg: LoadedConfig, node: str, rid: str) -> str:
    """The mirror's in-cluster URL of repository ``rid``: the node's Service, serve's port."""
    from git_mirror.kube.node import kube_node

    ns = kube_node(cfg, node).namespace
    _, port = listen_port(cfg)
    return f"http://{Names(node, ns).base}.{ns}.svc:{port}/{rid}.git"


def run_namespace(cfg: LoadedConfig, node: str, spec: TektonSpec) -> str:
    """Where the follower's PipelineRuns go: its tekton namespace, else the node's."""
    from git_mirror.kube.node import kube_node

    return spec.namespace or kube_node(cfg, node).namespace


def run_name(fid: str, commit: str) -> str:
    """``<follower>-<UTC time>-<short commit>-<random>``: at most 63 characters, sortable."""
    stamp = time.strftime("%y%m%d%H%M%S", time.gmtime())
    return f"{dns_label(fid, 36)}-{stamp}-{commit[:7].lower()}-{secrets.token_hex(2)}"


def run_labels(node: str, fid: str, lane: str | None = None,
               commit: str | None = None) -> dict[str, str]:
    """The labels of a follower's PipelineRun: the node's, the follower, its lane and commit."""
    out = {**labels(node, COMPONENT), L_FOLLOWER: fid}
    if lane is not None:
        out[L_LANE] = lane
    if commit is not None:
        out[L_COMMIT] = commit[:63]  # a label value holds 63 characters; SHA-1 ids fit
    return out


def pipeline_run_manifest(cfg: LoadedConfig, node: str, fid: str, follower: Follower,
                          spec: TektonSpec, *, name: str, snapshot_ref: str, commit: str,
                          lane_ref: str, lane_before: str | None = None) -> Manifest:
    """The PipelineRun of one follower run on one snapshot (pure)."""
    url = service_url(cfg, node, follower.repository)
    params = [{"name": "snapshot-ref", "value": snapshot_ref}, {"name": "commit", "value": commit},
              {"name": "repo-url", "value": url}, {"name": "lane-ref", "value": lane_ref},
              {"name": "push-url", "value": url}]
    params += [{"name": k, "value": v} for k, v in sorted(spec.params.items())]
    body: dict[str, Any] = {"pipelineRef": {"name": spec.pipeline}, "params": params,
                            "timeouts": {"pipeline": spec.timeout}}
    if spec.service_account_name:
        body["taskRunTemplate"] = {"serviceAccountName": spec.service_account_name}
    if spec.workspaces:
        body["workspaces"] = [ws.binding(n) for n, ws in sorted(spec.workspaces.items())]
    return {"apiVersion": API, "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": run_namespace(cfg, node, spec),
                         "labels": run_labels(node, fid, follower.lane, commit),
                         "annotations": {A_SNAPSHOT: snapshot_ref,
                                         A_LANE_BEFORE: lane_before or NOTHING}},
            "spec": body}


def succeeded_condition(run: Manifest) -> dict[str, Any]:
    """The PipelineRun's ``Succeeded`` condition; empty while Tekton has set none."""
    for cond in (run.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Succeeded":
            return dict(cond)
    return {}


def run_state(run: Manifest) -> str:
    """``succeeded``, ``failed`` or ``running``, from the ``Succeeded`` condition (Tekton's)."""
    status = succeeded_condition(run).get("status")
    return SUCCEEDED if status == "True" else FAILED if status == "False" else RUNNING


@dataclass(frozen=True)
class PipelineRunSummary:
    """The short form of a PipelineRun that trigger, status, closeout and cleanup show and
    judge: its state from the ``Succeeded`` condition, and git-mirror's labels and
    annotations. ``lane_tip_before`` and ``published_lane_commit`` are shown only when the
    run's annotations record them (``recorded``): closeout infers the latest run's when
    they are not."""

    name: str | None
    namespace: str | None
    status: str  # running | succeeded | failed
    reason: str | None
    message: str | None
    commit: str | None
    snapshot_ref: str | None
    follower: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    lane_tip_before: str | None = None
    published_lane_commit: str | None = None
    recorded: frozenset[str] = frozenset()  # laneTipBefore, publishedLaneCommit

    def _recorded(self) -> dict[str, Any]:
        values = {"laneTipBefore": self.lane_tip_before,
                  "publishedLaneCommit": self.published_lane_commit}
        return {k: v for k, v in values.items() if k in self.recorded}

    def to_json(self) -> dict[str, Any]:
        """The run as trigger, list, status and cleanup show it."""
        return {"name": self.name, "namespace": self.namespace, "status": self.status,
                "reason": self.reason, "message": self.message, "commit": self.commit,
                "snapshotRef": self.snapshot_ref, "follower": self.follower,
                "createdAt": self.created_at, "startedAt": self.started_at,
                "finishedAt": self.finished_at, **self._recorded()}

    def for_job(self) -> dict[str, Any]:
        """What the closeout Job needs of the run (nothing else goes into its argv)."""
        return {"name": self.name, "status": self.status, "reason": self.reason,
                "commit": self.commit, "snapshotRef": self.snapshot_ref,
                "follower": self.follower, "finishedAt": self.finished_at, **self._recorded()}


def run_summary(run: Manifest) -> PipelineRunSummary:
    """The summary of PipelineRun ``run`` (see :class:`PipelineRunSummary`)."""
    meta = run.get("metadata") or {}
    status = run.get("status") or {}
    cond = succeeded_condition(run)
    notes = meta.get("annotations") or {}
    labels_ = meta.get("labels") or {}

    def noted(key: str) -> str | None:
        return None if notes[key] == NOTHING else notes[key]

    recorded = {"laneTipBefore": A_LANE_BEFORE, "publishedLaneCommit": A_PUBLISHED}
    return PipelineRunSummary(
        name=meta.get("name"), namespace=meta.get("namespace"), status=run_state(run),
        reason=cond.get("reason"), message=cond.get("message"), commit=labels_.get(L_COMMIT),
        snapshot_ref=notes.get(A_SNAPSHOT), follower=labels_.get(L_FOLLOWER),
        created_at=meta.get("creationTimestamp"), started_at=status.get("startTime"),
        finished_at=status.get("completionTime"),
        lane_tip_before=noted(A_LANE_BEFORE) if A_LANE_BEFORE in notes else None,
        published_lane_commit=noted(A_PUBLISHED) if A_PUBLISHED in notes else None,
        recorded=frozenset(k for k, a in recorded.items() if a in notes))


def record_published(client: KubeClient, run: Manifest, lane_tip: str | None) -> str | None:
    """Record on the PipelineRun the lane commit it published: the lane's tip in the mirror
    after it, when that moved since it was created (else "none"). Returns the commit."""
    meta = run["metadata"]
    notes = dict(meta.get("annotations") or {})
    before = notes.get(A_LANE_BEFORE)
    if before is None or A_PUBLISHED in notes:
        return None
    published = lane_tip if lane_tip and lane_tip != before else None
    notes[A_PUBLISHED] = published or NOTHING
    client.apply({"apiVersion": API, "kind": "PipelineRun",
                  "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                               "labels": dict(meta.get("labels") or {}), "annotations": notes},
                  "spec": run["spec"]})
    return published


def is_managed(run: Manifest, node: str) -> bool:
    """True when git-mirror created the PipelineRun for ``node`` (its labels say so)."""
    have = (run.get("metadata") or {}).get("labels") or {}
    return have.get(L_MANAGED) == "git-mirror" and have.get(L_INSTANCE) == node \
        and have.get(L_COMPONENT) == COMPONENT


def _order(run: Manifest) -> tuple[str, str]:
    meta = run.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def follower_runs(client: KubeClient, namespace: str, node: str, fid: str) -> list[Manifest]:
    """The follower's PipelineRuns on the node, oldest first."""
    runs = client.list(API, "PipelineRun", namespace, run_labels(node, fid))
    return sorted(runs, key=_order)


def timeout_seconds(text: str) -> float:
    """A Tekton duration (``1h30m``, ``45m``, ``90s``) in seconds."""
    total = 0.0
    for amount, unit in re.findall(r"(\d+)([hms])", text):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def wait_for_run(client: KubeClient, name: str, namespace: str, *, timeout: float,
                 poll: float) -> Manifest:
    """Poll the PipelineRun until it has finished or ``timeout`` seconds passed; the run."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(API, "PipelineRun", name, namespace)
        if run is None:
            raise GitMirrorError(f"PipelineRun {namespace}/{name} disappeared while it was "
                                 "watched", code=Code.RUN_LOST, hint="git-mirror follower list")
        if run_state(run) != RUNNING or time.monotonic() >= deadline:
            return run
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def run_objects(client: KubeClient, run: Manifest) -> list[tuple[str, str, str, str]]:
    """What belongs to a PipelineRun: its pods, its TaskRuns, then itself, as
    (apiVersion, kind, namespace, name), in the order cleanup deletes them."""
    meta = run["metadata"]
    ns, name = meta["namespace"], meta["name"]
    sel = {L_TEKTON_RUN: name}
    out = [("v1", "Pod", ns, p["metadata"]["name"]) for p in client.list("v1", "Pod", ns, sel)]
    out += [(API, "TaskRun", ns, t["metadata"]["name"])
            for t in client.list(API, "TaskRun", ns, sel)]
    out.append((API, "PipelineRun", ns, name))
    return out
