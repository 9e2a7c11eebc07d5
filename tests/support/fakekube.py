"""A FAKE Kubernetes API server behind git-mirror's client seam (:class:`KubeClient`).

This is a fake, not a cluster: an in-memory, stateful stand-in that behaves like the API
server for exactly what git-mirror uses, so that apply, prune and Jobs are tested without
one. What it does like the real server:

- server-side apply per field manager: maps merge key by key (a label another manager set
  stays; a field git-mirror stops declaring goes), lists are owned whole; ``force`` moves
  ownership; a dry run answers the would-be object and stores nothing;
- ``resourceVersion`` moves only when an object really changes (a no-op apply leaves it);
  ``generation`` moves with ``spec``; a few server defaults (Service clusterIP, Deployment
  revisionHistoryLimit, ...) appear as the server would add them;
- 404 for a missing object or namespace, 409 for ``create`` of an existing one, 422 for an
  invalid manifest (kubernetes-validate, strict; label keys and values, which the schema does
  not describe, as the API server checks them) and for changes to immutable fields (PVC
  spec other than a larger storage request, Deployment selector, Job template);
- Tekton PipelineRuns that really run their Pipeline's step scripts, and Argo CD
  Applications (:mod:`tests.support.faketekton`, fakes too);
- a created Job gets a Pod (labels ``job-name``, ``batch.kubernetes.io/job-name``) that
  really runs the container's ``git-mirror`` command, here, in a subprocess, with the pod's
  volumes laid out under a per-pod directory: the ConfigMap's file, the PVC as a directory
  that outlives pods, Secret items, emptyDirs. The Job then ends Complete or Failed, and the
  pod's log is what the process printed (stdout and stderr interleaved). A pod whose
  ConfigMap, PVC, Secret or ServiceAccount is missing stays Pending, as it would.

What it does not do: scheduling and affinity, images (the command runs with this
interpreter), RBAC, admission, NetworkPolicy enforcement, watches, owner references and
garbage collection, Job TTLs and retries, merge keys inside lists. Paths are emulated by
prefixing the pod directory to arguments and env values that lie under a mount path, and by
``GIT_MIRROR_SECRETS_DIR`` for the secrets root: a config whose ``cache`` is an absolute path
outside every mount would escape the pod directory, so tests use a cache beside the config.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import copy
import itertools
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes_validate

from git_mirror.config.secrets import MOUNT_ROOT
from git_mirror.kube.client import FIELD_MANAGER, KubeError
from tests.support.faketekton import CUSTOM, TektonFake, validate_custom

Key = tuple[str, str, str | None, str]
CLUSTER_SCOPED = {"Namespace"}
SYSTEM_META = ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields")

# The API server's own rules for labels (apimachinery validation), which OpenAPI has not;
# written out by hand here, so that the fake never shares a mistake with the product's checks.
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _qualified_part(text: str) -> bool:
    """Alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric."""
    return bool(text) and text[0] in _ALNUM and text[-1] in _ALNUM and \
        all(c in _ALNUM or c in "-_." for c in text)


def _label_value_ok(text: str) -> bool:
    return len(text) <= 63 and (text == "" or _qualified_part(text))


def _dns_subdomain_ok(text: str) -> bool:
    lower = _ALNUM - set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return 0 < len(text) <= 253 and all(
        part and part[0] in lower and part[-1] in lower
        and all(c in lower or c == "-" for c in part)
        for part in text.split("."))


def label_problem(manifest: Any, path: str = "") -> str | None:
    """The first label key or value (``labels`` and ``matchLabels`` maps anywhere in the
    object) that a real API server rejects, said as it says it; None when all are valid."""
    if isinstance(manifest, list):
        for i, item in enumerate(manifest):
            problem = label_problem(item, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if not isinstance(manifest, dict):
        return None
    for key, value in manifest.items():
        here = f"{path}.{key}" if path else str(key)
        if key in ("labels", "matchLabels") and isinstance(value, dict):
            for name, text in value.items():
                prefix, _, short = str(name).rpartition("/")
                if not (_qualified_part(short) and len(short) <= 63) or \
                        (prefix and not _dns_subdomain_ok(prefix)):
                    return (f"{here}: Invalid value: {name!r}: name part must consist of "
                            "alphanumeric characters, '-', '_' or '.', and must start and end "
                            "with an alphanumeric character")
                if isinstance(text, str) and not _label_value_ok(text):
                    return (f"{here}: Invalid value: {text!r}: a valid label must be an empty "
                            "string or consist of alphanumeric characters, '-', '_' or '.', and "
                            "must start and end with an alphanumeric character (at most 63 "
                            "characters)")
        else:
            problem = label_problem(value, here)
            if problem:
                return problem
    return None


def _merge(base: Any, top: Any) -> Any:
    """``top`` over ``base``: maps key by key, everything else replaced whole."""
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for k, v in top.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(top)


def _without(owned: Any, taken: Any) -> Any:
    """``owned`` minus the fields ``taken`` sets (ownership forced away)."""
    if isinstance(owned, dict) and isinstance(taken, dict):
        out = {}
        for k, v in owned.items():
            if k not in taken:
                out[k] = v
            else:
                rest = _without(v, taken[k])
                if rest not in ({}, None):
                    out[k] = rest
        return out
    return None


def _conflicts(owned: Any, new: Any, path: str = "") -> list[str]:
    """Fields that ``owned`` (another manager's applied config) and ``new`` both set, to
    different values: what server-side apply refuses without ``force``."""
    if isinstance(owned, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in owned.keys() & new.keys():
            out += _conflicts(owned[k], new[k], f"{path}.{k}")
        return out
    return [] if owned == new else [path]


def _modified(kind: str, name: str) -> str:
    """The API server's message for a 409 on a stale ``resourceVersion``."""
    return (f'Operation cannot be fulfilled on {kind.lower()}s "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again")


def _fields_v1(applied: Any) -> dict[str, Any]:
    """A manager's field set in the API server's FieldsV1 notation (lists owned whole)."""
    if not isinstance(applied, dict):
        return {}
    return {f"f:{k}": _fields_v1(v) for k, v in applied.items()
            if k not in ("apiVersion", "kind", "status")}


class FakeKube(TektonFake):
    """The fake API server (see the module docstring for what it covers; Tekton PipelineRuns
    and Argo CD Applications: :mod:`tests.support.faketekton`)."""

    def __init__(self, root: Path, *, autorun: bool = True, job_timeout: float = 120) -> None:
        self.root = root
        self.autorun = autorun
        self.job_timeout = job_timeout
        self._objects: dict[Key, dict[str, Any]] = {}
        self._owners: dict[Key, dict[str, dict[str, Any]]] = {}  # key -> manager -> applied
        self._logs: dict[tuple[str, str], str] = {}
        self._rv = itertools.count(1000)
        self._lock = threading.RLock()
        self.threads: list[threading.Thread] = []
        self.calls: list[tuple[str, str, str]] = []  # (verb, kind, name), for assertions
        # What went wrong inside the fake itself (a pod runner or controller thread that
        # raised): the fixtures fail the test that caused it.
        self.errors: list[str] = []
        # (namespace, Service name) -> the URL of what answers behind it (a serve a test
        # started); a Service without one has no endpoints (503), as when its pod is down.
        self.service_backends: dict[tuple[str, str], str] = {}

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _key(api_version: str, kind: str, name: str, namespace: str | None) -> Key:
        return (api_version, kind, None if kind in CLUSTER_SCOPED else namespace, name)

    def _err(self, status: int, reason: str, message: str) -> KubeError:
        return KubeError(f"the API server refused: {message}", status=status, reason=reason)

    def _check_namespace(self, kind: str, namespace: str | None) -> None:
        if kind in CLUSTER_SCOPED:
            return
        if namespace is None or self._key("v1", "Namespace", namespace, None) not in self._objects:
            raise self._err(404, "NotFound", f'namespaces "{namespace}" not found')

    @staticmethod
    def _validate(manifest: dict[str, Any]) -> str | None:
        problem = label_problem(manifest)
        if problem:
            return problem
        if (manifest.get("apiVersion"), manifest.get("kind")) in CUSTOM:
            return validate_custom(manifest)  # kubernetes-validate knows no CRDs
        try:
            kubernetes_validate.validate(manifest, "1.37", strict=True)
        except kubernetes_validate.ValidationError as exc:
            return f"{'.'.join(str(p) for p in exc.path)}: {exc.message}"
        return None

    @staticmethod
    def _defaults(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Fields the real server adds; server-assigned ones keep their first value."""
        spec = obj.get("spec")
        if obj["kind"] == "Service" and isinstance(spec, dict):
            spec.setdefault("sessionAffinity", "None")
            prev = ((old or {}).get("spec") or {}).get("clusterIP")
            spec["clusterIP"] = (prev or
                                 f"10.96.{secrets.randbelow(250)}.{secrets.randbelow(250) + 2}")
        if obj["kind"] == "Deployment" and isinstance(spec, dict):
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            tspec = spec.get("template", {}).get("spec", {})
            tspec.setdefault("dnsPolicy", "ClusterFirst")
            tspec.setdefault("schedulerName", "default-scheduler")
        if obj["kind"] == "PersistentVolumeClaim" and isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")

    def _immutable(self, old: dict[str, Any], new: dict[str, Any]) -> str | None:
        kind = new["kind"]
        o, n = old.get("spec") or {}, new.get("spec") or {}
        if kind == "PersistentVolumeClaim":
            def rest(s: dict[str, Any]) -> dict[str, Any]:
                s = copy.deepcopy(s)
                s.get("resources", {}).get("requests", {}).pop("storage", None)
                s.pop("volumeName", None)
                return s
            if rest(o) != rest(n):
                return "spec is immutable after creation except resources.requests for bound claims"
            storage = [_quantity(x["resources"]["requests"]["storage"]) for x in (n, o)]
            if storage[0] < storage[1]:
                return "spec.resources.requests.storage: field can not be less than previous value"
        if kind == "Deployment" and o.get("selector") != n.get("selector"):
            return "spec.selector: field is immutable"
        if kind == "Job" and o.get("template") != n.get("template"):
            return "spec.template: field is immutable"
        return None

    def _store(self, key: Key, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        meta = obj["metadata"]
        if old is None:
            meta["uid"] = f"uid-{next(self._rv)}"
            meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            meta["generation"] = 1
            meta["resourceVersion"] = str(next(self._rv))
        else:
            for k in SYSTEM_META:
                if k in old["metadata"]:
                    meta[k] = old["metadata"][k]
            if "status" in old:
                obj["status"] = old["status"]
            if _strip(old) != _strip(obj):
                meta["resourceVersion"] = str(next(self._rv))
                if old.get("spec") != obj.get("spec"):
                    meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        owners = self._owners.get(key)
        if owners:
            meta["managedFields"] = [
                {"manager": m, "operation": "Update" if m == "create" else "Apply",
                 "apiVersion": obj["apiVersion"],
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(cfg)}
                for m, cfg in sorted(owners.items())]
        self._objects[key] = obj
        return copy.deepcopy(obj)

    # -- the KubeClient protocol ----------------------------------------------------------
    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None) -> dict[str, Any] | None:
        with self._lock:
            self.calls.append(("get", kind, name))
            obj = self._objects.get(self._key(api_version, kind, name, namespace))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, api_version: str, kind: str, namespace: str | None,
             labels: dict[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            self.calls.append(("list", kind, ""))
            out = []
            for (av, k, ns, _), obj in sorted(self._objects.items(), key=lambda kv: str(kv[0])):
                have = obj["metadata"].get("labels") or {}
                if (av, k) == (api_version, kind) and (namespace is None or ns == namespace) \
                        and all(have.get(a) == b for a, b in labels.items()):
                    out.append(copy.deepcopy(obj))
            return out

    def apply(self, manifest: dict[str, Any], *, dry_run: bool = False,
              manager: str = FIELD_MANAGER, force: bool = True) -> dict[str, Any]:
        """Server-side apply as ``manager``; without ``force``, a field another manager owns
        with another value is a 409 Conflict; a ``metadata.resourceVersion`` in the manifest
        is a precondition (409 when the object moved on)."""
        with self._lock:
            self.calls.append(("apply" + ("-dry" if dry_run else ""), manifest["kind"],
                               manifest["metadata"]["name"]))
            # Labels now; the schema on the merged object (a partial apply config, such as
            # another manager's replicas alone, lacks fields that the object has).
            problem = label_problem(manifest)
            if problem:
                raise self._err(422, "Invalid", problem)
            meta = manifest["metadata"]
            key = self._key(manifest["apiVersion"], manifest["kind"], meta["name"],
                            meta.get("namespace"))
            self._check_namespace(manifest["kind"], meta.get("namespace"))
            old = self._objects.get(key)
            manifest = copy.deepcopy(manifest)
            expected = manifest["metadata"].pop("resourceVersion", None)
            old_version = None if old is None else old["metadata"]["resourceVersion"]
            if expected is not None and old_version != expected:
                raise self._err(409, "Conflict", _modified(manifest["kind"], meta["name"]))
            owners = copy.deepcopy(self._owners.get(key, {}))
            if not force:
                clashes = [(m, f) for m, cfg in sorted(owners.items()) if m != manager
                           for f in _conflicts(cfg, manifest)]
                if clashes:
                    listing = ", ".join(f'conflict with "{m}": {f}' for m, f in clashes)
                    raise self._err(409, "Conflict", f"Apply failed with {len(clashes)} conflict"
                                    f"{'s' if len(clashes) > 1 else ''}: {listing}")
            owners = {m: _without(cfg, manifest) or {} for m, cfg in owners.items() if m != manager}
            owners[manager] = copy.deepcopy(manifest)
            merged: dict[str, Any] = {}
            for cfg in owners.values():
                merged = _merge(merged, cfg)
            self._defaults(merged, old)
            problem = self._validate(merged)
            if problem:
                raise self._err(422, "Invalid", problem)
            if old is not None:
                problem = self._immutable(old, merged)
                if problem:
                    raise self._err(422, "Invalid",
                                    f"{manifest['kind']} {meta['name']!r} is invalid: {problem}")
            if dry_run:
                out = copy.deepcopy(merged)
                if old is not None:
                    for k in SYSTEM_META:
                        if k in old["metadata"]:
                            out["metadata"][k] = old["metadata"][k]
                return out
            self._owners[key] = owners
            return self._store(key, merged, old)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("create", manifest["kind"], manifest["metadata"]["name"]))
            problem = self._validate(manifest)
            if problem:
                raise self._err(422, "Invalid", problem)
            meta = manifest["metadata"]
            key = self._key(manifest["apiVersion"], manifest["kind"], meta["name"],
                            meta.get("namespace"))
            self._check_namespace(manifest["kind"], meta.get("namespace"))
            if key in self._objects:
                raise self._err(409, "AlreadyExists",
                                f'{manifest["kind"]} "{meta["name"]}" already exists')
            obj = copy.deepcopy(manifest)
            if obj["kind"] == "Job":
                obj["status"] = {}
            self._owners[key] = {"create": copy.deepcopy(manifest)}
            out = self._store(key, obj, None)
        if obj["kind"] == "Job":
            self._start_job(out)
        if (obj["apiVersion"], obj["kind"]) in CUSTOM:
            self._created_custom(out)
        return out

    def replace(self, manifest: dict[str, Any], *, manager: str = "update") -> dict[str, Any]:
        """PUT: the whole object, guarded by its ``metadata.resourceVersion`` (409 when stale)."""
        with self._lock:
            self.calls.append(("replace", manifest["kind"], manifest["metadata"]["name"]))
            meta = manifest["metadata"]
            key = self._key(manifest["apiVersion"], manifest["kind"], meta["name"],
                            meta.get("namespace"))
            old = self._objects.get(key)
            if old is None:
                raise self._err(404, "NotFound",
                                f'{manifest["kind"].lower()}s "{meta["name"]}" not found')
            if meta.get("resourceVersion") != old["metadata"]["resourceVersion"]:
                raise self._err(409, "Conflict", _modified(manifest["kind"], meta["name"]))
            problem = self._validate({k: v for k, v in manifest.items() if k != "status"})
            if problem:
                raise self._err(422, "Invalid", problem)
            obj = copy.deepcopy(manifest)
            self._owners.setdefault(key, {})[manager] = {
                k: v for k, v in copy.deepcopy(manifest).items() if k != "status"}
            return self._store(key, obj, old)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        with self._lock:
            self.calls.append(("delete", kind, name))
            key = self._key(api_version, kind, name, namespace)
            self._objects.pop(key, None)
            self._owners.pop(key, None)

    def logs(self, pod: str, namespace: str) -> str:
        with self._lock:
            if self._key("v1", "Pod", pod, namespace) not in self._objects:
                raise self._err(404, "NotFound", f'pods "{pod}" not found')
            return self._logs.get((namespace, pod), "")

    def service_get(self, service: str, port: str, path: str, namespace: str) -> tuple[bytes, int]:
        """GET through the API server's service proxy: (body, HTTP status) of the backend."""
        import httpx

        with self._lock:
            self.calls.append(("proxy", "Service", service))
            svc = self._objects.get(self._key("v1", "Service", service, namespace))
            backend = self.service_backends.get((namespace, service))
        if svc is None:
            raise self._err(404, "NotFound", f'services "{service}" not found')
        ports = [str(p.get("name")) for p in svc["spec"].get("ports", [])] + \
            [str(p.get("port")) for p in svc["spec"].get("ports", [])]
        if port and port not in ports:
            raise self._err(503, "ServiceUnavailable",
                            f'no endpoints available for service "{service}:{port}"')
        if backend is None:
            raise self._err(503, "ServiceUnavailable",
                            f'no endpoints available for service "{service}"')
        try:
            resp = httpx.get(backend + path, timeout=60)
        except httpx.HTTPError as exc:
            raise self._err(503, "ServiceUnavailable",
                            f"error trying to reach service: {exc}") from None
        return resp.content, resp.status_code

    def service_proxy_get(self, namespace: str, service: str, port: str, path: str) -> Any:
        """The :class:`KubeClient` method: the backend's JSON answer; KubeError otherwise."""
        body, code = self.service_get(service, port, path, namespace)
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            if isinstance(data, dict) and "ok" in data:
                return data  # the backend's own answer, whatever its HTTP status
        if code >= 400:
            raise self._err(code, "ServiceUnavailable" if code == 503 else "InternalError",
                            body.decode(errors="replace")[:200])
        return json.loads(body)

    # -- what tests use beside the protocol -----------------------------------------------
    def add_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        """A Secret the operator created (values base64-encoded as the API keeps them)."""
        with self._lock:
            self._check_namespace("Secret", namespace)
            self.create({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": name, "namespace": namespace},
                         "data": {k: base64.b64encode(v.encode()).decode()
                                  for k, v in data.items()}})

    def volume_dir(self, namespace: str, claim: str) -> Path:
        return self.root / "volumes" / namespace / claim

    def wait_idle(self, timeout: float = 60) -> None:
        for t in list(self.threads):
            t.join(timeout)

    def check(self) -> None:
        """Raise when something failed inside the fake (the fixtures call this at teardown)."""
        if self.errors:
            raise AssertionError("the fake API server failed inside:\n" + "\n".join(self.errors))

    # -- Jobs -----------------------------------------------------------------------------
    def _set_status(self, kind: str, name: str, namespace: str, status: dict[str, Any]) -> None:
        with self._lock:
            key = self._key("batch/v1" if kind == "Job" else "v1", kind, name, namespace)
            obj = self._objects.get(key)
            if obj is None:
                return
            obj["status"] = status
            obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def _start_job(self, job: dict[str, Any]) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        template = job["spec"]["template"]
        pod_name = f"{name}-{secrets.token_hex(3)[:5]}"
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": pod_name, "namespace": ns,
                            "labels": {**template["metadata"].get("labels", {}), "job-name": name,
                                       "batch.kubernetes.io/job-name": name,
                                       "controller-uid": job["metadata"]["uid"]}},
               "spec": copy.deepcopy(template["spec"]), "status": {"phase": "Pending"}}
        with self._lock:
            self._store(self._key("v1", "Pod", pod_name, ns), pod, None)
        self._set_status("Job", name, ns, {"active": 1, "ready": 0})
        if not self.autorun:
            return
        self._spawn(self._run_pod, job, pod_name)

    def _spawn(self, target: Any, *args: Any) -> None:
        """A controller thread whose exception is kept in :attr:`errors` (not lost)."""
        def run() -> None:
            try:
                target(*args)
            # The controller thread's boundary: anything it hits is a failure of the fake,
            # kept for the test to report, never lost in a thread.
            except BaseException as exc:  # noqa: BLE001
                import traceback

                self.errors.append(f"{getattr(target, '__name__', target)}: {exc!r}\n"
                                   + traceback.format_exc())
        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _run_pod(self, job: dict[str, Any], pod_name: str) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        spec = job["spec"]["template"]["spec"]
        laid = self._lay_out(ns, spec, self.root / "pods" / pod_name)
        if laid is None:
            return  # stays Pending, as a pod with a missing volume source or account does
        argv, env, cwd = laid
        self._set_status("Pod", pod_name, ns, {"phase": "Running"})
        deadline = min(self.job_timeout, float(job["spec"].get("activeDeadlineSeconds") or 1e9))
        try:
            proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=deadline, check=False)
            log, code = proc.stdout.decode("utf-8", "replace"), proc.returncode
        except subprocess.TimeoutExpired as exc:
            log, code = (exc.stdout or b"").decode("utf-8", "replace"), -1
        with self._lock:
            self._logs[(ns, pod_name)] = log
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        container = spec["containers"][0]
        term = self.root / "pods" / pod_name / (container.get("terminationMessagePath")
                                               or "/dev/termination-log").lstrip("/")
        # As the kubelet: at most 4096 bytes of the file; the log's tail only when the policy
        # asks for it and the file is empty after a failure.
        message = term.read_bytes()[:4096].decode("utf-8", "replace") if term.exists() else ""
        fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not message and code != 0 and fallback:
            message = "\n".join(log.splitlines()[-80:])[-2048:]
        terminated = {"exitCode": 137 if code == -1 else code, "finishedAt": now,
                      "reason": "Completed" if code == 0 else "Error"}
        if message:
            terminated["message"] = message
        self._set_status("Pod", pod_name, ns, {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [{"name": container["name"], "ready": False, "restartCount": 0,
                                   "image": container.get("image", ""), "imageID": "",
                                   "state": {"terminated": terminated}}]})
        if code == 0:
            self._set_status("Job", name, ns, {
                "succeeded": 1, "completionTime": now,
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                               {"type": "Complete", "status": "True"}]})
        else:
            reason = "DeadlineExceeded" if code == -1 else "BackoffLimitExceeded"
            self._set_status("Job", name, ns, {"failed": 1, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": reason},
                {"type": "Failed", "status": "True", "reason": reason}]})

    def _secret_value(self, ns: str, name: str, key: str) -> str | None:
        secret = self._objects.get(self._key("v1", "Secret", name, ns))
        if secret is None or key not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"][key]).decode()

    def _lay_out(self, ns: str, spec: dict[str, Any],
                 pod_root: Path) -> tuple[builtins.list[str], dict[str, str], Path] | None:
        """The pod's files under ``pod_root``; None when a source is missing (pod stays Pending)."""
        with self._lock:
            account = spec.get("serviceAccountName", "default")
            if self._key("v1", "ServiceAccount", account, ns) not in self._objects:
                return None
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            container = spec["containers"][0]
            mount_paths: list[str] = []
            for mount in container.get("volumeMounts", []):
                vol = volumes[mount["name"]]
                target = pod_root / mount["mountPath"].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                mount_paths.append(mount["mountPath"])
                if "configMap" in vol:
                    cm_key = self._key("v1", "ConfigMap", vol["configMap"]["name"], ns)
                    cm = self._objects.get(cm_key)
                    if cm is None:
                        return None
                    if "subPath" in mount:
                        target.write_text(cm["data"][mount["subPath"]], encoding="utf-8")
                    else:
                        target.mkdir(exist_ok=True)
                        for k, v in cm.get("data", {}).items():
                            (target / k).write_text(v, encoding="utf-8")
                elif "persistentVolumeClaim" in vol:
                    claim = vol["persistentVolumeClaim"]["claimName"]
                    if self._key("v1", "PersistentVolumeClaim", claim, ns) not in self._objects:
                        return None
                    store = self.volume_dir(ns, claim)
                    store.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(store, target_is_directory=True)
                elif "secret" in vol:
                    target.mkdir(exist_ok=True)
                    for item in vol["secret"].get("items", []):
                        value = self._secret_value(ns, vol["secret"]["secretName"], item["key"])
                        if value is None:
                            return None
                        (target / item["path"]).write_text(value, encoding="utf-8")
                elif "emptyDir" in vol:
                    target.mkdir(exist_ok=True)
            # The kubelet's termination message file: the container writes its result there.
            term = container.get("terminationMessagePath") or "/dev/termination-log"
            (pod_root / term.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            mount_paths.append(term)
            env: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            for item in container.get("env", []):
                if "value" in item:
                    env[item["name"]] = item["value"]
                else:
                    ref = item["valueFrom"]["secretKeyRef"]
                    value = self._secret_value(ns, ref["name"], ref["key"])
                    if value is None:
                        return None
                    env[item["name"]] = value

        def inside(value: str) -> str:
            for path in sorted(mount_paths, key=len, reverse=True):
                if value == path or value.startswith(path + "/"):
                    return str(pod_root) + value
            return value

        env = {k: inside(v) for k, v in env.items()}
        env["GIT_MIRROR_SECRETS_DIR"] = str(pod_root) + MOUNT_ROOT
        argv = [inside(a) for a in container["command"]]
        if argv[0] == "git-mirror":
            # As the console script does: import the module (``-m`` would run a second copy of
            # it as __main__, whose click context type the follower commands do not share).
            argv = [sys.executable, "-c", "import sys; from git_mirror.cli.main import main; "
                    "sys.exit(main(sys.argv[1:]))", *argv[1:]]
        return argv, env, pod_root


def _quantity(text: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in SYSTEM_META}
    return out
