"""``closeout`` on a kubernetes node (R10, R12): the PipelineRuns, Argo CD and the mirror.

What the cluster says is read here, read-only: the follower's PipelineRuns (status, built
commit, snapshot ref, the lane commit each published) and the Argo CD Application's
``status.sync.revision`` (``argocd:``; without it, the lane commit upstream holds as last
observed, as on a local node). The proof itself runs in a short Job on the node's cache
(``closeout --mirror-only`` with those facts): the same judged run and the same six checks as
on a local node (:mod:`git_mirror.follower.proof`), and the same ledger, in the node's PVC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from git_mirror.errors import Code, GitMirrorError, WarningCode
from git_mirror.follower.results import CloseoutResult
from git_mirror.kube import tekton
from git_mirror.kube.argo import ArgoApplication, application_state
from git_mirror.kube.jobs import run_job
from git_mirror.kube.node import kube_node

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Follower, TektonSpec
    from git_mirror.kube.client import KubeClient, Manifest
    from git_mirror.kube.tekton import PipelineRunSummary

def run_namespaces(cfg: LoadedConfig, node: str) -> list[str]:
    """Where the node's PipelineRuns may be: the node's namespace and every tekton one."""
    from git_mirror.config.models import TektonTrigger

    out = {kube_node(cfg, node).namespace}
    for f in cfg.model.followers.values():
        if isinstance(f.trigger, TektonTrigger) and f.trigger.tekton.namespace:
            out.add(f.trigger.tekton.namespace)
    return sorted(out)


def find_run(cfg: LoadedConfig, client: KubeClient, name: str, node: str) -> Manifest:
    """The node's PipelineRun ``name``; ``not-found``, or ``not-managed`` when git-mirror
    did not create it (cleanup never deletes what is not its own)."""
    from git_mirror.follower.state import check_run_name

    check_run_name(name)
    for ns in run_namespaces(cfg, node):
        run = client.get(tekton.API, "PipelineRun", name, ns)
        if run is None:
            continue
        if not tekton.is_managed(run, node):
            raise GitMirrorError(f"PipelineRun {ns}/{name} was not created by git-mirror for "
                                 f"node {node}; it is left alone", code=Code.NOT_MANAGED,
                                 hint=f"git-mirror --node {node} follower list")
        return run
    raise GitMirrorError(f"no PipelineRun {name!r} of node {node} (looked in "
                         f"{', '.join(run_namespaces(cfg, node))})", code=Code.NOT_FOUND,
                         hint=f"git-mirror --node {node} follower list")


def closeout(cfg: LoadedConfig, fid: str, follower: Follower, spec: TektonSpec,
             merge_commit: str, *, pipeline_run: str | None, node: str,
             client: KubeClient, record: bool = True) -> CloseoutResult:
    """The closeout object of CONTRACT section 4 for a kubernetes node.

    The follower's PipelineRuns (and ``--pipeline-run``'s, whoever's it is) and Argo CD's
    sync revision are read here; the judgement runs in a Job on the node's cache with them
    (``closeout --mirror-only``), by the same code as on a local node, and the Job appends it
    to the node's ledger.
    """
    runs = _runs_to_judge(cfg, client, node, fid, spec, pipeline_run)
    argo = application_state(client, follower.argocd) if follower.argocd is not None else None
    args = _job_args(fid, merge_commit, runs, pipeline_run, argo, record=record)
    data = run_job(cfg, node=node, operation="closeout", args=args, confirm=True, wait=True,
                   client=client)
    if "checks" not in data:
        err = data.get("error") or {}
        raise GitMirrorError(f"the closeout Job on node {node} failed: "
                             f"{err.get('message') or 'no result'}",
                             code=Code.parse(err.get("code"), Code.JOB_FAILED),
                             hint=err.get("hint") or f"git-mirror --node {node} status",
                             details={"job": data.get("job")})
    res = CloseoutResult.from_json(data)
    judged = {r.name: r for r in runs}.get(res.pipeline_run.get("name"))
    if judged is not None:
        res.pipeline_run = {**res.pipeline_run, "namespace": judged.namespace,
                            "reason": judged.reason, "message": judged.message}
    mirror_lane = res.lane.get("mirrorCommit")
    res.details["argocd"] = argo.to_json() if argo is not None else None
    res.details["syncRevisionIsLaneTip"] = (res.sync_revision == mirror_lane
                                            if res.sync_revision and mirror_lane else None)
    if argo is not None:
        _argo_says(res, argo, node=node, fid=fid, merge_commit=merge_commit)
    return res


def _runs_to_judge(cfg: LoadedConfig, client: KubeClient, node: str, fid: str,
                   spec: TektonSpec, pipeline_run: str | None) -> list[PipelineRunSummary]:
    """The summaries of the follower's PipelineRuns, and ``--pipeline-run``'s when it is
    another follower's (the judgement then says whose it is); a run that is gone is left
    for the judgement to report."""
    ns = tekton.run_namespace(cfg, node, spec)
    runs = [tekton.run_summary(r) for r in tekton.follower_runs(client, ns, node, fid)]
    if pipeline_run is not None and pipeline_run not in {r.name for r in runs}:
        try:
            runs.append(tekton.run_summary(find_run(cfg, client, pipeline_run, node)))
        except GitMirrorError as exc:
            if exc.code != Code.NOT_FOUND:
                raise
    return runs


def _job_args(fid: str, merge_commit: str, runs: list[PipelineRunSummary],
              pipeline_run: str | None, argo: ArgoApplication | None, *,
              record: bool) -> list[str]:
    """The arguments of the closeout Job: the facts read from the cluster, as options."""
    import json

    args = ["--follower", fid, "--merge-commit", merge_commit, "--mirror-only",
            "--runs-json", json.dumps([r.for_job() for r in runs], separators=(",", ":"))]
    if pipeline_run is not None:
        args += ["--pipeline-run", pipeline_run]
    if argo is not None:
        args += ["--deployed-source", f"Argo CD Application {argo.name} status.sync.revision"]
        if argo.revision:
            args += ["--deployed", str(argo.revision)]
    if not record:
        args.append("--no-record")
    return args


def _argo_says(res: CloseoutResult, argo: ArgoApplication, *, node: str, fid: str,
               merge_commit: str) -> None:
    """What Argo CD adds to the closeout: the next step when only the deployment is
    missing, and a warning when its Application was not found."""
    if argo.found and res.error is not None \
            and res.error.get("failedChecks") == ["deployedContainsRun"] \
            and res.sync_revision and res.pipeline_run.get("publishedLaneCommit"):
        # Built, flushed, in the mirror: Argo CD has not deployed the run's lane commit yet.
        res.error = {**res.error, "hint": (
            f"let Argo CD sync Application {argo.name} "
            f"(argocd app sync {argo.application}), then: git-mirror --node {node} "
            f"closeout --follower {fid} --merge-commit {merge_commit}")}
    if not argo.found:
        res.details["warnings"] = [*(res.details.get("warnings") or []), {
            "code": WarningCode.ARGOCD_NOT_FOUND, "message":
            f"Argo CD Application {argo.name} was not found; "
            "the deployed revision is unknown",
            "hint": f"fix followers.{fid}.argocd in the YAML"}]
