"""The FAKE API server (:class:`tests.support.fakekube.FakeKube`) served over HTTP on 127.0.0.1.

An ASGI app (Starlette, run by uvicorn in a thread) speaks the REST paths, verbs, content
types and ``Status`` error bodies git-mirror's real client (:class:`LightkubeClient`, through a
kubeconfig) uses, over the same state store the in-process fake keeps:

- ``/api/v1/...`` and ``/apis/GROUP/VERSION/...``: namespaced and cluster-scoped items and
  collections; GET (``labelSelector``), POST (create: 201, 409 AlreadyExists), PATCH with
  ``application/apply-patch+yaml`` only (server-side apply: ``fieldManager`` required,
  ``force``, ``dryRun=All``; 409 Conflict naming the other manager without force; a
  ``metadata.resourceVersion`` in the body is a precondition), PUT (replace, guarded by
  ``resourceVersion``), DELETE (404 when the object is missing);
- ``pods/NAME/log`` (text), ``services/NAME:PORT/proxy/PATH`` (GET to the backend a test
  registered in :attr:`FakeKube.service_backends`; 503 "no endpoints" otherwise);
- every error is a ``Status`` object (``kind: Status``, ``status: Failure``, ``reason``,
  ``code``, ``message``) with the matching HTTP status.

An exception inside the fake is kept in :attr:`FakeKube.errors` (and answered 500), so the
fixture fails the test that caused it instead of a thread dying silently.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from git_mirror.kube.client import KubeError
from tests.support.fakekube import FakeKube

# plural -> (kind, cluster scoped): the resources git-mirror reads and writes.
RESOURCES: dict[str, tuple[str, bool]] = {
    "namespaces": ("Namespace", True), "configmaps": ("ConfigMap", False),
    "secrets": ("Secret", False), "serviceaccounts": ("ServiceAccount", False),
    "services": ("Service", False), "persistentvolumeclaims": ("PersistentVolumeClaim", False),
    "pods": ("Pod", False), "roles": ("Role", False), "rolebindings": ("RoleBinding", False),
    "networkpolicies": ("NetworkPolicy", False), "deployments": ("Deployment", False),
    "jobs": ("Job", False), "ingresses": ("Ingress", False), "pipelines": ("Pipeline", False),
    "pipelineruns": ("PipelineRun", False), "taskruns": ("TaskRun", False),
    "applications": ("Application", False),
}
APPLY_TYPE = "application/apply-patch+yaml"
PREFIX = "the API server refused: "


def status(code: int, reason: str, message: str,
           details: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": message, "reason": reason,
                            "code": code}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=code)


class BadRequest(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def _parse(path: str) -> tuple[str, str, str | None, str | None, list[str], bool]:
    """(apiVersion, kind, namespace, name, subresource parts, cluster scoped) of a REST path."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        api_version, rest = "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise BadRequest(404, "NotFound",
                         f"the server could not find the requested resource ({path})")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in RESOURCES:
        raise BadRequest(404, "NotFound",
                         f"the server could not find the requested resource ({path})")
    kind, cluster = RESOURCES[rest[0]]
    name = rest[1] if len(rest) > 1 else None
    return api_version, kind, namespace, name, rest[2:], cluster


def _labels(selector: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for term in (selector or "").split(","):
        if not term:
            continue
        key, sep, value = term.partition("=")
        if not sep or "!" in key:
            raise BadRequest(400, "BadRequest", f"unsupported label selector term {term!r}")
        out[key] = value.lstrip("=")
    return out


class KubeHttp:
    """The HTTP face of a :class:`FakeKube`; :meth:`start` listens on 127.0.0.1."""

    def __init__(self, fake: FakeKube) -> None:
        self.fake = fake
        self.requests: list[tuple[str, str, str]] = []  # (method, path, query)
        self.app = Starlette(routes=[Route("/{path:path}", self._handle,
                                           methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KubeHttp:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-apiserver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake API server did not start")
            time.sleep(0.02)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = None

    def kubeconfig(self, path: Path, contexts: dict[str, str]) -> Path:
        """A kubeconfig whose contexts (name -> default namespace) all point here."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": next(iter(contexts)),
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "fake-token"}}],
            "contexts": [{"name": n,
                          "context": {"cluster": "fake", "user": "tester", "namespace": ns}}
                         for n, ns in contexts.items()]}))
        return path

    # -- requests ---------------------------------------------------------------------------
    async def _handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        self.requests.append((request.method, path, request.url.query))
        body = await request.body()
        try:
            return await run_in_threadpool(self._dispatch, request.method, path,
                                           dict(request.query_params),
                                           request.headers.get("content-type", ""), body)
        except BadRequest as exc:
            return status(exc.code, exc.reason, exc.message)
        except KubeError as exc:
            return status(exc.status or 500, exc.reason or "InternalError",
                          exc.message.removeprefix(PREFIX))
        # The fake's request boundary: anything else is a bug in the fake, answered as the
        # API server would (500) and reported to the test, not swallowed.
        except Exception as exc:  # noqa: BLE001
            self.fake.errors.append(f"{request.method} {path}: {exc!r}\n{traceback.format_exc()}")
            return status(500, "InternalError", f"fake API server error: {exc!r}")

    def _body(self, content_type: str, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body) if content_type.startswith("application/json") or \
                body.lstrip().startswith(b"{") else yaml.safe_load(body)
        except (ValueError, yaml.YAMLError) as exc:
            raise BadRequest(400, "BadRequest", f"the body is not JSON or YAML: {exc}") from None
        if not isinstance(data, dict):
            raise BadRequest(400, "BadRequest", "the body is not an object")
        return data

    def _check_body(self, data: dict[str, Any], api_version: str, kind: str,
                    namespace: str | None, name: str | None, cluster: bool) -> dict[str, Any]:
        if data.get("apiVersion") != api_version or data.get("kind") != kind:
            raise BadRequest(400, "BadRequest", f"the body is {data.get('apiVersion')}/"
                             f"{data.get('kind')}, the path is for {api_version}/{kind}")
        meta = data.setdefault("metadata", {})
        if name is not None and meta.get("name") != name:
            raise BadRequest(400, "BadRequest", f"the name of the object ({meta.get('name')}) "
                             f"does not match the name in the URL ({name})")
        if not cluster:
            if meta.get("namespace") not in (None, namespace):
                raise BadRequest(400, "BadRequest", "the namespace of the provided object does "
                                 "not match the namespace sent on the request")
            meta["namespace"] = namespace
        return data

    def _dispatch(self, method: str, path: str, query: dict[str, str], content_type: str,
                  body: bytes) -> Response:
        fake = self.fake
        api_version, kind, namespace, name, sub, cluster = _parse(path)
        if sub:
            return self._subresource(method, kind, namespace, name or "", sub, query)
        if cluster:
            namespace = None
        if name is None:
            if method == "GET":
                items = fake.list(api_version, kind, namespace, _labels(query.get("labelSelector")))
                return JSONResponse({"apiVersion": api_version, "kind": f"{kind}List",
                                     "metadata": {"resourceVersion": str(time.monotonic_ns())},
                                     "items": items})
            if method == "POST":
                data = self._check_body(self._body(content_type, body), api_version, kind,
                                        namespace, None, cluster)
                return JSONResponse(fake.create(data), status_code=201)
            raise BadRequest(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        if method == "GET":
            obj = fake.get(api_version, kind, name, namespace)
            if obj is None:
                raise BadRequest(404, "NotFound", f'{path.split("/")[-2]} "{name}" not found')
            return JSONResponse(obj)
        if method == "PATCH":
            if content_type.split(";")[0].strip() != APPLY_TYPE:
                raise BadRequest(415, "UnsupportedMediaType",
                                 f"the fake serves only server-side apply ({APPLY_TYPE}), "
                                 f"not {content_type}")
            manager = query.get("fieldManager")
            if not manager:
                raise BadRequest(400, "BadRequest",
                                 "PATCH: fieldManager is required for apply requests")
            data = self._check_body(self._body(content_type, body), api_version, kind, namespace,
                                    name, cluster)
            existed = fake.get(api_version, kind, name, namespace) is not None
            dry_run = query.get("dryRun") == "All"
            out = fake.apply(data, dry_run=dry_run, manager=manager,
                             force=query.get("force") == "true")
            return JSONResponse(out, status_code=200 if existed or dry_run else 201)
        if method == "PUT":
            data = self._check_body(self._body(content_type, body), api_version, kind, namespace,
                                    name, cluster)
            return JSONResponse(fake.replace(data, manager=query.get("fieldManager") or "update"))
        if method == "DELETE":
            if fake.get(api_version, kind, name, namespace) is None:
                raise BadRequest(404, "NotFound", f'{path.split("/")[-2]} "{name}" not found')
            fake.delete(api_version, kind, name, namespace)
            return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                 "status": "Success", "details": {"name": name, "kind": kind}})
        raise BadRequest(405, "MethodNotAllowed", f"{method} is not allowed here")

    def _subresource(self, method: str, kind: str, namespace: str | None, name: str,
                     sub: list[str], query: dict[str, str]) -> Response:
        if kind == "Pod" and sub == ["log"] and method == "GET":
            return PlainTextResponse(self.fake.logs(name, namespace or ""))
        if kind == "Service" and sub[:1] == ["proxy"] and method == "GET":
            # NAME:PORT or SCHEME:NAME:PORT, as the API server takes them
            pieces = name.split(":")
            service, port = (pieces[1], pieces[2]) if len(pieces) == 3 else (pieces[0], pieces[-1])
            text, code = self.fake.service_get(service, port, "/" + "/".join(sub[1:]),
                                               namespace or "")
            return Response(text, status_code=code, media_type="application/json")
        raise BadRequest(404, "NotFound", f"no subresource {'/'.join(sub)} of {kind}")
