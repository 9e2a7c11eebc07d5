"""``sync``, ``flush`` and ``status`` on a kubernetes node: one Job each, in the node's namespace.

The Job (:func:`git_mirror.kube.render.job_manifest`) runs ``git-mirror --json <op> ...`` with
the node's ConfigMap, cache PVC and secrets mounted, beside the serve pod. Its pod knows that
it *is* the node (``GIT_MIRROR_IN_NODE``), so the same CLI runs the operation locally there.

- without ``--confirm`` (sync, flush): no Job; the result shows the Job that would be created;
- ``--confirm`` without ``--wait``: the Job is created; ``"status": "running"`` and its name;
- ``--confirm --wait``: the Job is watched until it ends (bounded by its own deadline plus
  scheduling time), and the result its pod wrote as its termination message
  (:mod:`git_mirror.kube.result`; never scraped from the log) becomes this command's result,
  so exit codes and fields are those of the operation itself;
- ``status`` comes from the running serve (:mod:`git_mirror.kube.nodestatus`); only when
  serve does not answer is it a Job, which always waits: a read-only one that reads the
  cache in the PVC (R14: the pod reads only the mirror's own refs; nothing goes upstream).

A ``{file:}`` secretRef cannot be mounted into the pod: sync and flush with ``--confirm``
refuse it (a config error), status and closeout run and list it under ``warnings``.

Before a Job is created, the node's ConfigMap must exist (else ``not-applied``) and hold this
very config (else ``drift``): a Job would otherwise run with a config that is not the YAML.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code, DriftError, GitMirrorError, NotAppliedError
from git_mirror.kube.render import (
    JOB_DEADLINE_SECONDS,
    SHA_ANNOTATION,
    Names,
    job_manifest,
    kube_node,
    node_secrets,
)
from git_mirror.kube.result import read_result

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.kube.client import KubeClient, Manifest

POLL_SECONDS = 1.0
SCHEDULING_SLACK_SECONDS = 300


def job_name(node: str, namespace: str, operation: str) -> str:
    """A fresh Job name: ``<base>-<op>-<time><random>``, at most 63 characters."""
    stamp = time.strftime("%m%d%H%M%S", time.gmtime())
    return f"{Names(node, namespace).base}-{operation[:6]}-{stamp}{secrets.token_hex(2)}"


def _apply_hint(node: str) -> str:
    return f"git-mirror --node {node} apply --confirm"


def check_applied(client: KubeClient, cfg: LoadedConfig, node: str, *, strict: bool) -> bool:
    """True when the node's ConfigMap holds this config; raise when it is absent (or differs
    and ``strict``)."""
    target = kube_node(cfg, node)
    names = Names(node, target.namespace)
    cm = client.get("v1", "ConfigMap", names.config, target.namespace)
    if cm is None:
        raise NotAppliedError(f"node {node} is not applied: ConfigMap {target.namespace}/"
                              f"{names.config} does not exist", hint=_apply_hint(node))
    applied = ((cm.get("metadata") or {}).get("annotations") or {}).get(SHA_ANNOTATION)
    if applied != cfg.sha256:
        if strict:
            raise DriftError(f"node {node} runs another config (sha256 {str(applied)[:12]}, "
                             f"this file {cfg.sha256[:12]}); a Job would not run this YAML",
                             hint=_apply_hint(node))
        return False
    return True


def job_state(job: Manifest) -> str:
    """``succeeded``, ``failed`` or ``running``, from the Job's status conditions and counts."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if cond.get("status") == "True" and cond.get("type") in ("Failed", "FailureTarget"):
            return "failed"
    if status.get("succeeded"):
        return "succeeded"
    if status.get("failed"):
        return "failed"
    return "running"


def wait_for_job(client: KubeClient, name: str, namespace: str, *,
                 timeout: float) -> tuple[str, Manifest]:
    """Poll the Job until it ends or ``timeout`` seconds pass; (state, job)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get("batch/v1", "Job", name, namespace)
        if job is None:
            raise GitMirrorError(f"Job {namespace}/{name} disappeared while it was watched",
                                 code=Code.JOB_FAILED, hint="git-mirror status")
        state = job_state(job)
        if state != "running":
            return state, job
        if time.monotonic() >= deadline:
            return "timeout", job
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def job_pod(client: KubeClient, name: str, namespace: str) -> Manifest | None:
    """The Job's (latest) pod, or None."""
    pods = client.list("v1", "Pod", namespace, {"job-name": name})
    if not pods:
        return None
    pods.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
    return pods[-1]


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args[:-1] else None


def check_args(cfg: LoadedConfig, operation: str, args: list[str], global_args: list[str]) -> None:
    """An undeclared ``--repo`` or ``--lane`` (sync, flush) is a usage error here, as on the
    local node, not a Job that fails in the cluster (nor a dry run that plans one)."""
    from git_mirror.mirror.layout import selected_repositories

    lane = _option(global_args, "--lane")
    selected_repositories(cfg, _option(args, "--repo"),
                          lane if operation in ("sync", "flush") else None)


def confirm_hint(node: str, operation: str, args: list[str], *, global_args: list[str],
                 hint_args: list[str]) -> str:
    """The command that does what a dry run showed, confirmed: the same scope (``--config``
    as the user gave it, ``--node``, ``--lane``, ``--repo``), then ``--confirm --wait``."""
    import shlex

    scope = [a for a in args if a not in ("--confirm", "--wait")]
    return shlex.join(["git-mirror", *hint_args, "--node", node, *global_args, operation, *scope,
                       "--confirm", "--wait"])


def run_job(cfg: LoadedConfig, *, node: str, operation: str, args: list[str], confirm: bool,
            wait: bool, global_args: list[str] | None = None, client: KubeClient | None = None,
            timeout: float | None = None, hint_args: list[str] | None = None) -> dict[str, Any]:
    """Run ``git-mirror [GLOBAL_ARGS] <operation> ARGS`` as a Job on ``node``; the result as
    the contract has it.

    ``hint_args`` are the user's own global options that the Job does not get (``--config
    PATH``); a dry run's hint keeps them.
    """
    from git_mirror.kube.apply import refuse_unmountable
    from git_mirror.kube.client import client_for

    target = kube_node(cfg, node)
    check_args(cfg, operation, args, global_args or [])
    ns = target.namespace
    name = job_name(node, ns, operation)
    job = job_manifest(cfg, node, operation, args, name, global_args=global_args)
    ref = {"name": name, "namespace": ns, "context": target.context}
    # Read-only operations may run with another config: they report it (configApplied).
    read_only = operation in ("status", "closeout")
    unmountable = list(node_secrets(cfg, node).unmountable)
    if not confirm:
        return {"ok": True, "node": node, "executor": "kubernetes", "dryRun": True,
                "job": {**ref, "status": "not-created"}, "wouldCreate": job,
                "warnings": unmountable,
                "hint": confirm_hint(node, operation, args, global_args=global_args or [],
                                     hint_args=hint_args or [])}
    if not read_only:
        # A {file:} secret is not in the pod: sync and flush would fail there, or reach
        # upstream otherwise than declared. status and closeout read only the cache.
        refuse_unmountable(cfg, unmountable)
    client = client or client_for(cfg, node)
    in_sync = check_applied(client, cfg, node, strict=not read_only)
    client.create(job)
    if not wait:
        return {"ok": True, "node": node, "executor": "kubernetes", "dryRun": False,
                "status": "running", "job": {**ref, "status": "running"}}
    limit = timeout if timeout is not None else JOB_DEADLINE_SECONDS + SCHEDULING_SLACK_SECONDS
    state, _ = wait_for_job(client, name, ns, timeout=limit)
    ctx = f" --context {target.context}" if target.context else ""
    logs_hint = f"kubectl{ctx} -n {ns} logs job/{name}"
    if state == "timeout":
        raise GitMirrorError(f"Job {ns}/{name} did not finish within {int(limit)} s; it may "
                             "still be pending or running", code=Code.TIMEOUT, hint=logs_hint)
    pod = job_pod(client, name, ns)
    result, terminated = read_result(pod) if pod is not None else (None, {})
    if result is None:
        # No result came back (the pod was never started, was killed, or ran out of memory):
        # what the kubelet says about the container, and where its log is.
        how = ", ".join(f"{k} {terminated[k]}" for k in ("reason", "exitCode") if k in terminated)
        raise GitMirrorError(f"Job {ns}/{name} {state} without a result"
                             + (f" ({how})" if how else ""), code=Code.JOB_FAILED,
                             hint=logs_hint, details={"job": {**ref, "status": state},
                                                      "terminated": terminated})
    result["job"] = {**ref, "status": state}
    result.setdefault("node", node)
    result["executor"] = "kubernetes"
    if read_only:
        result["configApplied"] = in_sync
        if unmountable:
            result["warnings"] = [*(result.get("warnings") or []), *unmountable]
    return result
