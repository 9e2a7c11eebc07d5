"""FAKE Tekton and Argo CD for the FAKE API server (:class:`tests.support.fakekube.FakeKube`).

These are fakes, not Tekton or Argo CD. What they do like the real controllers:

- ``tekton.dev/v1`` PipelineRun: checked on create like the CRD's schema would (v1 field names
  only: ``pipelineRef``, ``params`` of string values, ``timeouts.pipeline``,
  ``taskRunTemplate``, ``workspaces``; a v1beta1 field such as ``serviceAccountName`` or
  ``timeout`` is a 422). A created run gets ``Succeeded: Unknown`` and is then "run": the
  Pipeline named by ``pipelineRef`` is looked up (missing: ``False``, ``CouldntGetPipeline``),
  its declared params are resolved (a param without default that the run does not pass:
  ``False``, ``ParameterMissing``), and each task, in order, gets a TaskRun
  ``<run>-<task>`` and a pod ``<run>-<task>-pod`` carrying the run's labels plus
  ``tekton.dev/pipelineRun``/``pipelineTask``/``taskRun``, as Tekton propagates them. Each
  step's ``script`` runs here with ``/bin/sh``, after ``$(params.NAME)`` substitution of the
  task's params (which may themselves name the Pipeline's) and of
  ``$(context.pipelineRun.name)``. Exit 0 of every step:
  ``Succeeded: True``; else ``False`` (``Failed``); past ``timeouts.pipeline``:
  ``False`` (``PipelineRunTimeout``). ``startTime``, ``completionTime`` and
  ``childReferences`` are set.
- In-cluster Service URLs: a step reaches ``http://<service>.<ns>.svc:<port>/<id>.git`` (the
  mirror's serve) through a git ``insteadOf`` rewrite to the cache PVC's
  ``repos/<id>.git`` (Service -> Deployment selector -> cache volume). So clones and pushes
  are real git against the mirror the Jobs wrote, and pushes meet the mirror's own
  ref-protection hook.
- ``argoproj.io/v1alpha1`` Application: stored as given; :meth:`argo_sync` plays Argo CD's
  sync: it reads ``spec.source.targetRevision`` of ``spec.source.repoURL`` (a local upstream)
  and records ``status.sync.revision``, ``status.sync.status: Synced``.

What they do not do: serve's HTTP, its tokens and its receive-pack (pushes go straight into
the bare repository, hook included), images, ``runAfter`` graphs (tasks run in order),
``when``, results, ``finally``, workspaces' storage (bindings are only checked), sidecars,
owner references (a deleted PipelineRun leaves its TaskRuns and pods: git-mirror deletes them
itself), retries and cancellation.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

TEKTON = "tekton.dev/v1"
ARGO = "argoproj.io/v1alpha1"
CUSTOM = {(TEKTON, "Pipeline"), (TEKTON, "PipelineRun"), (TEKTON, "TaskRun"), (ARGO, "Application")}
PIPELINERUN_SPEC = {"pipelineRef", "pipelineSpec", "params", "status", "timeouts",
                    "taskRunTemplate", "workspaces", "taskRunSpecs", "managedBy"}
WORKSPACE_SOURCES = {"emptyDir", "persistentVolumeClaim", "volumeClaimTemplate", "secret",
                     "configMap", "projected", "csi"}
DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _label_value_ok(text: str) -> bool:
    from tests.support.fakekube import _label_value_ok as ok

    return ok(text)


def validate_custom(manifest: dict[str, Any]) -> str | None:
    """What the CRDs' schemas (and Tekton's webhook) would refuse; None when fine."""
    meta = manifest.get("metadata") or {}
    name = str(meta.get("name") or "")
    if not DNS.match(name) or len(name) > 63:
        return f"metadata.name: {name!r} is not a DNS-1123 label"
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or not _label_value_ok(value):
            return f"metadata.labels.{key}: invalid label value {value!r}"
    if manifest["kind"] != "PipelineRun":
        return None
    spec = manifest.get("spec") or {}
    unknown = set(spec) - PIPELINERUN_SPEC
    if unknown:
        return f"spec: unknown field(s) {sorted(unknown)} (tekton.dev/v1 PipelineRun)"
    if ("pipelineRef" in spec) == ("pipelineSpec" in spec):
        return "spec: expected exactly one of pipelineRef, pipelineSpec"
    names = set()
    for p in spec.get("params") or []:
        if set(p) != {"name", "value"} or not isinstance(p["value"], str):
            return f"spec.params: {p!r} is not {{name, value: string}}"
        if p["name"] in names:
            return f"spec.params: duplicate param {p['name']!r}"
        names.add(p["name"])
    if set(spec.get("timeouts") or {}) - {"pipeline", "tasks", "finally"}:
        return "spec.timeouts: unknown field"
    if set(spec.get("taskRunTemplate") or {}) - {"serviceAccountName", "podTemplate"}:
        return "spec.taskRunTemplate: unknown field"
    for ws in spec.get("workspaces") or []:
        if len(set(ws) & WORKSPACE_SOURCES) != 1 or "name" not in ws:
            return f"spec.workspaces: {ws!r} needs a name and exactly one source"
    return None


class TektonFake:
    """Mixed into FakeKube: PipelineRuns that really run, Application objects."""

    root: Path
    autorun: bool
    job_timeout: float
    threads: list[threading.Thread]
    _objects: dict[Any, dict[str, Any]]
    _logs: dict[tuple[str, str], str]
    _lock: Any
    # False: PipelineRuns stay "Started" (running) until a test sets their status; Jobs run.
    run_pipelines = True

    def _key(self, api_version: str, kind: str, name: str, namespace: str | None) -> Any:
        raise NotImplementedError

    def _store(self, key: Any, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    def volume_dir(self, namespace: str, claim: str) -> Path:
        raise NotImplementedError

    def _spawn(self, target: Any, *args: Any) -> None:
        raise NotImplementedError

    # -- what tests use -------------------------------------------------------------------
    def set_status(self, api_version: str, kind: str, name: str, namespace: str,
                   status: dict[str, Any]) -> None:
        """Replace an object's status, as its controller would."""
        with self._lock:
            obj = self._objects[self._key(api_version, kind, name, namespace)]
            obj["status"] = copy.deepcopy(status)
            obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)

    def argo_sync(self, namespace: str, name: str) -> str:
        """Argo CD's sync of an Application whose repoURL is a local bare repository."""
        with self._lock:
            app = copy.deepcopy(self._objects[self._key(ARGO, "Application", name, namespace)])
        source = app["spec"]["source"]
        path = source["repoURL"].removeprefix("file://")
        target = source.get("targetRevision") or "HEAD"
        ref = target if target.startswith("refs/") or target == "HEAD" else f"refs/heads/{target}"
        rev = subprocess.run(["git", f"--git-dir={path}", "rev-parse", "--verify", ref],
                             capture_output=True, check=True, timeout=30).stdout.decode().strip()
        self.set_status(ARGO, "Application", name, namespace, {
            "sync": {"status": "Synced", "revision": rev},
            "health": {"status": "Healthy"}, "operationState": {"phase": "Succeeded"}})
        return rev

    # -- PipelineRuns ---------------------------------------------------------------------
    def _created_custom(self, obj: dict[str, Any]) -> None:
        if (obj["apiVersion"], obj["kind"]) != (TEKTON, "PipelineRun"):
            return
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        self.set_status(TEKTON, "PipelineRun", name, ns, {
            "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Started"}]})
        if not (self.autorun and self.run_pipelines):
            return
        self._spawn(self._run_pipeline, ns, name)

    def _finish(self, ns: str, name: str, ok: bool, reason: str, message: str,
                children: list[dict[str, Any]], started: str) -> None:
        with self._lock:
            if self._key(TEKTON, "PipelineRun", name, ns) not in self._objects:
                return
        self.set_status(TEKTON, "PipelineRun", name, ns, {
            "conditions": [{"type": "Succeeded", "status": "True" if ok else "False",
                            "reason": reason, "message": message}],
            "startTime": started, "completionTime": _now(), "childReferences": children})

    def _run_pipeline(self, ns: str, name: str) -> None:
        started = _now()
        with self._lock:
            run = copy.deepcopy(self._objects[self._key(TEKTON, "PipelineRun", name, ns)])
            ref = run["spec"]["pipelineRef"]["name"]
            pipeline = copy.deepcopy(self._objects.get(self._key(TEKTON, "Pipeline", ref, ns)))
        self.set_status(TEKTON, "PipelineRun", name, ns, {
            "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}],
            "startTime": started})
        if pipeline is None:
            self._finish(ns, name, False, "CouldntGetPipeline",
                         f"Error retrieving pipeline for pipelinerun {ns}/{name}: "
                         f'pipelines.tekton.dev "{ref}" not found', [], started)
            return
        given = {p["name"]: p["value"] for p in run["spec"].get("params") or []}
        params: dict[str, str] = {}
        for decl in pipeline["spec"].get("params") or []:
            if decl["name"] in given:
                params[decl["name"]] = given[decl["name"]]
            elif "default" in decl:
                params[decl["name"]] = decl["default"]
            else:
                self._finish(ns, name, False, "ParameterMissing",
                             f"PipelineRun {ns}/{name} is missing parameter {decl['name']!r}",
                             [], started)
                return
        timeout = min(self.job_timeout, _seconds(run["spec"].get("timeouts", {}).get("pipeline")))
        deadline = time.monotonic() + timeout
        children: list[dict[str, Any]] = []
        tasks = pipeline["spec"].get("tasks") or []
        for task in tasks:
            ok, reason = self._run_task(ns, run, task, params, children, deadline)
            if not ok:
                message = (f"PipelineRun \"{name}\" failed to finish within \"{timeout:g}s\""
                           if reason == "PipelineRunTimeout" else
                           f"Tasks Completed: {len(children)} (Failed: 1, Cancelled 0), Skipped: "
                           f"{len(tasks) - len(children)}")
                self._finish(ns, name, False, reason, message, children, started)
                return
        self._finish(ns, name, True, "Succeeded",
                     f"Tasks Completed: {len(children)} (Failed: 0, Cancelled 0), Skipped: 0",
                     children, started)

    def _run_task(self, ns: str, run: dict[str, Any], task: dict[str, Any],
                  pipeline_params: dict[str, str], children: list[dict[str, Any]],
                  deadline: float) -> tuple[bool, str]:
        run_name = run["metadata"]["name"]
        tr_name = f"{run_name}-{task['name']}"[:63]
        pod_name = f"{tr_name}-pod"[:63]
        task_params = {d["name"]: d["default"] for d in task["taskSpec"].get("params") or []
                       if "default" in d}
        for p in task.get("params") or []:
            task_params[p["name"]] = _subst(p["value"], pipeline_params)
        labels = {**(run["metadata"].get("labels") or {}), "tekton.dev/pipelineRun": run_name,
                  "tekton.dev/pipeline": run["spec"]["pipelineRef"]["name"],
                  "tekton.dev/pipelineTask": task["name"]}
        with self._lock:
            self._store(self._key(TEKTON, "TaskRun", tr_name, ns),
                        {"apiVersion": TEKTON, "kind": "TaskRun",
                         "metadata": {"name": tr_name, "namespace": ns, "labels": labels},
                         "spec": {"taskSpec": copy.deepcopy(task["taskSpec"]),
                                  "params": [{"name": k, "value": v}
                                             for k, v in task_params.items()]},
                         "status": {"podName": pod_name}}, None)
            self._store(self._key("v1", "Pod", pod_name, ns),
                        {"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": pod_name, "namespace": ns,
                                      "labels": {**labels, "tekton.dev/taskRun": tr_name}},
                         "spec": {"containers": []}, "status": {"phase": "Running"}}, None)
        children.append({"apiVersion": TEKTON, "kind": "TaskRun", "name": tr_name,
                         "pipelineTaskName": task["name"]})
        work = self.root / "tekton" / tr_name
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", **self._cluster_git(ns)}
        log: list[str] = []
        ok, reason = True, "Succeeded"
        for i, step in enumerate(task["taskSpec"].get("steps") or []):
            script = work / f"step-{i}.sh"
            text = step.get("script", "").replace("$(context.pipelineRun.name)", run_name)
            script.write_text(_subst(text, task_params), encoding="utf-8")
            step_env = {**env, **{e["name"]: _subst(e["value"], task_params)
                                  for e in step.get("env") or []}}
            left = deadline - time.monotonic()
            try:
                proc = subprocess.run(["/bin/sh", str(script)], cwd=work, env=step_env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      timeout=max(left, 0.1), check=False)
                log.append(proc.stdout.decode("utf-8", "replace"))
                if proc.returncode != 0:
                    ok, reason = False, "Failed"
            except subprocess.TimeoutExpired as exc:
                log.append((exc.stdout or b"").decode("utf-8", "replace"))
                ok, reason = False, "PipelineRunTimeout"
            if not ok:
                break
        with self._lock:
            self._logs[(ns, pod_name)] = "".join(log)
            for api, kind, obj_name in ((TEKTON, "TaskRun", tr_name), ("v1", "Pod", pod_name)):
                obj = self._objects.get(self._key(api, kind, obj_name, ns))
                if obj is not None:
                    if kind == "Pod":
                        obj["status"] = {"phase": "Succeeded" if ok else "Failed"}
                    else:
                        obj["status"]["conditions"] = [
                            {"type": "Succeeded", "status": "True" if ok else "False",
                             "reason": "Succeeded" if ok else reason}]
        return ok, reason

    def _cluster_git(self, ns: str) -> dict[str, str]:
        """git ``insteadOf`` rewrites from each Service URL to the cache PVC it serves."""
        rewrites: list[tuple[str, str]] = []
        with self._lock:
            objects = list(self._objects.values())
        for svc in (o for o in objects if o["kind"] == "Service"):
            selector = svc["spec"].get("selector") or {}
            sns = svc["metadata"]["namespace"]
            for dep in (o for o in objects if o["kind"] == "Deployment"
                        and o["metadata"].get("namespace") == sns):
                tmpl = dep["spec"]["template"]
                have = tmpl["metadata"].get("labels") or {}
                if not selector or any(have.get(k) != v for k, v in selector.items()):
                    continue
                claims = [v["persistentVolumeClaim"]["claimName"] for v in tmpl["spec"]["volumes"]
                          if "persistentVolumeClaim" in v]
                for port in svc["spec"]["ports"]:
                    url = f"http://{svc['metadata']['name']}.{sns}.svc:{port['port']}/"
                    for claim in claims[:1]:
                        rewrites.append((f"file://{self.volume_dir(sns, claim)}/repos/", url))
        env = {"GIT_CONFIG_COUNT": str(len(rewrites))}
        for i, (base, url) in enumerate(rewrites):
            env[f"GIT_CONFIG_KEY_{i}"] = f"url.{base}.insteadOf"
            env[f"GIT_CONFIG_VALUE_{i}"] = url
        return env


def _subst(text: str, params: dict[str, str]) -> str:
    return re.sub(r"\$\(params\.([A-Za-z0-9_.-]+)\)",
                  lambda m: params.get(m.group(1), m.group(0)), text)


def _seconds(text: str | None) -> float:
    if not text:
        return 3600.0
    total = 0.0
    for amount, unit in re.findall(r"(\d+)([hms])", text):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total or 3600.0
