"""``status`` on a kubernetes node: read from the running ``serve``; a Job only when it is not.

``serve`` already answers ``GET /api/status`` (the ``status --json`` object, from the cache it
holds). The CLI reads it through the API server's service proxy
(``/api/v1/namespaces/NS/services/NAME:http/proxy/api/status``): no Job, no pod, nothing left
behind. When nothing serves it (the Service is missing, or has no ready endpoint: 404/502/503)
the status is read by a read-only Job from the cache volume, as before, and the result says so
(``"via": "job"`` and a ``serve-not-running`` warning). Either way the result carries
``configApplied`` (whether the node runs this very config) and ``"via"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from git_mirror.errors import Code, GitMirrorError, WarningCode
from git_mirror.kube.node import L_INSTANCE, Names, kube_node, node_secrets

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.kube.client import KubeClient

STATUS_PATH = "/api/status"
# What the service proxy answers when nothing serves: no Service, no endpoint, endpoint refused.
NOT_SERVING = (404, 502, 503)
# serve with ``server.anonymousRead: false`` answers reads only with a token, which the
# service proxy does not carry: then a Job reads the status too.
NEEDS_TOKEN = (401, 403)


def node_status(cfg: LoadedConfig, node: str, *, repo: str | None = None,
                global_args: list[str] | None = None, hint_args: list[str] | None = None,
                client: KubeClient | None = None) -> dict[str, Any]:
    """The node's ``status --json`` object, from its serve, else from a Job."""
    from git_mirror.kube.client import KubeError, client_for
    from git_mirror.kube.jobs import check_args, run_job

    target = kube_node(cfg, node)
    ns = target.namespace
    service = Names(node, ns).base
    args = ["--repo", repo] if repo else []
    check_args(cfg, "status", args, global_args or [])
    client = client or client_for(cfg, node)
    try:
        data = client.service_proxy_get(ns, service, "http", STATUS_PATH)
    except KubeError as exc:
        if exc.status not in NOT_SERVING + NEEDS_TOKEN:
            raise
        result = run_job(cfg, node=node, operation="status", args=args, confirm=True, wait=True,
                         global_args=global_args, hint_args=hint_args, client=client)
        ctx = f" --context {target.context}" if target.context else ""
        result["via"] = "job"
        warning = {
            "code": WarningCode.SERVE_NOT_RUNNING,
            "message": f"serve of node {node} does not answer through Service {ns}/{service} "
                       f"({exc.message}); status was read from the cache volume by a Job instead",
            "hint": f"kubectl{ctx} -n {ns} get pods -l {L_INSTANCE}={node}"}
        if exc.status in NEEDS_TOKEN:
            warning = {
                "code": WarningCode.SERVE_NEEDS_TOKEN,
                "message": f"serve of node {node} answers reads only with a token "
                           "(server.anonymousRead: false); status was read from the cache "
                           "volume by a Job instead",
                "hint": f"git-mirror --node {node} status --json"}
        result["warnings"] = [*(result.get("warnings") or []), warning]
        return result
    if not isinstance(data, dict) or "ok" not in data:
        raise GitMirrorError(f"Service {ns}/{service} answered {STATUS_PATH} with something "
                             "that is not a status object", code=Code.KUBERNETES,
                             hint=f"git-mirror --node {node} apply --dry-run")
    out = dict(data)
    out.pop("server", None)
    if repo is not None:
        repos = [r for r in out.get("repositories") or [] if r.get("id") == repo]
        out["repositories"] = repos
        out["pendingFlush"] = any(r.get("pendingFlush") for r in repos)
        out["githubInSync"] = all(r.get("githubInSync") for r in repos)
    out["node"] = node
    out["executor"] = "kubernetes"
    out["via"] = "serve"
    out["service"] = {"name": service, "namespace": ns, "context": target.context}
    out["configApplied"] = (out.get("config") or {}).get("sha256") == cfg.sha256
    unmountable = list(node_secrets(cfg, node).unmountable)
    if unmountable:
        out["warnings"] = [*(out.get("warnings") or []), *unmountable]
    return out
