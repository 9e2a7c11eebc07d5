"""``closeout`` on a kubernetes node (R10, R12): the PipelineRun, Argo CD and the mirror.

Three sources, each read-only:

* the PipelineRun (``--pipeline-run``, else the follower's latest): ``runSucceeded``;
* a short Job on the node that runs ``closeout --mirror-only`` against the cache in the PVC:
  ``branchTip``, ``tipContainsMergeCommit`` (``git merge-base --is-ancestor`` there),
  ``pendingFlush``, ``githubInSync`` and the lane, from the mirror's own refs (R14);
* the follower's Argo CD Application (``argocd:``): ``syncRevision``, recorded, not judged
  (Argo CD may not have synced the latest lane commit yet; a later merge moves it on). Without
  ``argocd:`` the sync revision is the lane tip in the mirror, as on a local node.

``ok`` only when the four checks pass; else error ``closeout-failed`` naming the failed checks,
with the next command as the hint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from git_mirror.errors import GitMirrorError
from git_mirror.kube import tekton
from git_mirror.kube.argo import application_state
from git_mirror.kube.jobs import run_job
from git_mirror.kube.node import kube_node

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Follower, TektonSpec
    from git_mirror.kube.client import KubeClient, Manifest

MIRROR_CHECKS = ("tipContainsMergeCommit", "pendingFlush", "githubInSync")


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
                                 f"node {node}; it is left alone", code="not-managed",
                                 hint=f"git-mirror --node {node} follower list")
        return run
    raise GitMirrorError(f"no PipelineRun {name!r} of node {node} (looked in "
                         f"{', '.join(run_namespaces(cfg, node))})", code="not-found",
                         hint=f"git-mirror --node {node} follower list")


def _check(name: str, ok: bool, message: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "status": "pass" if ok else "fail", "message": message}


def closeout(cfg: LoadedConfig, fid: str, follower: Follower, spec: TektonSpec,
             merge_commit: str, *, pipeline_run: str | None, node: str,
             client: KubeClient) -> dict[str, Any]:
    """The closeout object of CONTRACT section 4 for a kubernetes node."""
    rid = follower.repository
    ns = tekton.run_namespace(cfg, node, spec)
    run: Manifest | None
    if pipeline_run is not None:
        try:
            run = find_run(cfg, client, pipeline_run, node)
        except GitMirrorError as exc:
            if exc.code != "not-found":
                raise
            run = None
    else:
        runs = tekton.follower_runs(client, ns, node, fid)
        run = runs[-1] if runs else None
    summary = tekton.run_summary(run) if run is not None else None
    mirror = run_job(cfg, node=node, operation="closeout",
                     args=["--follower", fid, "--merge-commit", merge_commit, "--mirror-only"],
                     confirm=True, wait=True, client=client)
    if "tipContainsMergeCommit" not in mirror:
        err = mirror.get("error") or {}
        raise GitMirrorError(f"the mirror's closeout checks on node {node} failed: "
                             f"{err.get('message') or 'no result'}",
                             code=str(err.get("code") or "job-failed"),
                             hint=err.get("hint") or f"git-mirror --node {node} status",
                             details={"job": mirror.get("job")})
    by_name = {c["name"]: c for c in mirror.get("checks") or []}
    run_ok = summary is not None and summary["status"] == tekton.SUCCEEDED
    belongs = summary is None or summary.get("follower") == fid
    if summary is None:
        run_msg = (f"no PipelineRun {pipeline_run} of node {node}" if pipeline_run else
                   f"follower {fid} has no PipelineRun on node {node}")
    elif not belongs:
        run_ok = False
        run_msg = f"PipelineRun {summary['name']} belongs to follower {summary.get('follower')}"
    else:
        run_msg = (f"PipelineRun {summary['name']} {summary['status']}"
                   + (f" ({summary['reason']})" if summary.get("reason") else ""))
    checks = [
        by_name.get("tipContainsMergeCommit") or _check("tipContainsMergeCommit", False, "no result"),
        _check("runSucceeded", run_ok, run_msg),
        by_name.get("pendingFlush") or _check("pendingFlush", False, "no result"),
        by_name.get("githubInSync") or _check("githubInSync", False, "no result"),
    ]
    lane = mirror.get("lane") or {}
    if follower.argocd is not None:
        argo = application_state(client, follower.argocd)
        sync_revision = argo["revision"]
        source = f"argocd Application {follower.argocd.namespace}/{follower.argocd.application}"
    else:
        argo, sync_revision, source = None, lane.get("mirrorCommit"), "mirror lane tip"
    ok = all(c["ok"] for c in checks)
    data: dict[str, Any] = {
        "ok": ok, "node": node, "executor": "kubernetes", "follower": fid, "repository": rid,
        "branch": follower.branch, "mergeCommit": mirror.get("mergeCommit") or merge_commit,
        "pipelineRun": {"name": summary["name"] if summary else pipeline_run,
                        "status": summary["status"] if summary else None,
                        "namespace": summary["namespace"] if summary else ns,
                        "reason": summary.get("reason") if summary else None,
                        "commit": summary.get("commit") if summary else None,
                        "snapshotRef": summary.get("snapshotRef") if summary else None},
        "syncRevision": sync_revision, "syncRevisionSource": source, "argocd": argo,
        "syncRevisionIsLaneTip": (sync_revision == lane.get("mirrorCommit")
                                  if sync_revision and lane.get("mirrorCommit") else None),
        "branchTip": mirror.get("branchTip"),
        "tipContainsMergeCommit": bool(mirror.get("tipContainsMergeCommit")),
        "pendingFlush": mirror.get("pendingFlush"), "githubInSync": mirror.get("githubInSync"),
        "lane": lane, "checks": checks, "refSources": mirror.get("refSources"),
        "job": mirror.get("job"),
    }
    if argo is not None and not argo["found"]:
        data["warnings"] = [{"code": "argocd-not-found", "message":
                             f"Argo CD Application {argo['namespace']}/{argo['application']} "
                             "was not found; syncRevision is unknown",
                             "hint": f"fix followers.{fid}.argocd in the YAML"}]
    if not ok:
        failed = [c for c in checks if not c["ok"]]
        data["error"] = GitMirrorError(
            f"closeout of {fid} failed: " + "; ".join(f"{c['name']}: {c['message']}"
                                                      for c in failed),
            code="closeout-failed", hint=_hint(node, fid, {c["name"] for c in failed}, summary),
            details={"failedChecks": [c["name"] for c in failed]}).to_json()
    return data


def _hint(node: str, fid: str, failed: set[str], run: dict[str, Any] | None) -> str:
    cli = f"git-mirror --node {node}"
    trigger = f"{cli} follower trigger --follower {fid} --confirm --wait"
    if "runSucceeded" in failed and run and run["status"] == tekton.RUNNING:
        return f"{cli} follower status --follower {fid} --wait"
    if "runSucceeded" in failed and run and run["status"] == tekton.FAILED:
        return f"{cli} cleanup-runs --pipeline-run {run['name']} --confirm && {trigger}"
    if failed & {"runSucceeded", "tipContainsMergeCommit"}:
        return trigger
    if "pendingFlush" in failed:
        return f"{cli} flush --confirm --wait"
    return f"{cli} sync --confirm --wait"
