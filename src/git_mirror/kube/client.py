"""The one seam to the Kubernetes API.

Everything in :mod:`git_mirror.kube` talks to a cluster through :class:`KubeClient`, a small
protocol over plain manifest dicts. :class:`LightkubeClient` is the real one (lightkube, the
kubeconfig context named by ``nodes.<n>.kubernetes.context``); tests install another with
:func:`use_client_factory`.

Errors: an API error becomes :class:`KubeError` (code ``kubernetes``, the HTTP status in
``details``); a cluster that cannot be reached, or a missing kubeconfig or context, becomes
code ``kube-unreachable``. ``get`` answers ``None`` for 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from git_mirror.errors import Code, GitMirrorError

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

FIELD_MANAGER = "git-mirror"
Manifest = dict[str, Any]
# Custom resources git-mirror reads or writes: (apiVersion, kind) -> plural. lightkube knows
# only the built-in kinds; these are registered as generic resources on first use.
CUSTOM_RESOURCES = {
    ("tekton.dev/v1", "Pipeline"): "pipelines",
    ("tekton.dev/v1", "PipelineRun"): "pipelineruns",
    ("tekton.dev/v1", "TaskRun"): "taskruns",
    ("argoproj.io/v1alpha1", "Application"): "applications",
}


class KubeError(GitMirrorError):
    """The API server answered with an error."""

    code = Code.KUBERNETES

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint, details={"status": status, "reason": reason})
        self.status = status
        self.reason = reason


class KubeClient(Protocol):
    """What git-mirror needs from an API server; names and namespaces as in the manifests."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> Manifest | None:
        """The object, or None when it does not exist."""

    def list(self, api_version: str, kind: str, namespace: str | None,
             labels: dict[str, str]) -> list[Manifest]:
        """The objects whose labels include ``labels``."""

    def apply(self, manifest: Manifest, *, dry_run: bool = False, force: bool = True) -> Manifest:
        """Server-side apply as field manager ``git-mirror``; ``force`` (the default: the YAML
        is the single authority) takes fields another manager owns, else that is a 409."""

    def create(self, manifest: Manifest) -> Manifest:
        """Create the object (409 if it exists)."""

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        """Delete the object (gone already is fine)."""

    def logs(self, pod: str, namespace: str) -> str:
        """The pod's log (stdout and stderr, as the kubelet keeps them)."""

    def service_proxy_get(self, namespace: str, service: str, port: str, path: str) -> Any:
        """GET ``path`` from the Service through the API server's service proxy; the JSON
        answer (KubeError with the HTTP status otherwise: 503 when nothing serves it)."""


ClientFactory = Callable[["LoadedConfig", str], KubeClient]
_factory: ClientFactory | None = None


def use_client_factory(factory: ClientFactory | None) -> None:
    """Install the factory :func:`client_for` uses (None: the real client)."""
    global _factory
    _factory = factory


def client_for(cfg: LoadedConfig, node: str) -> KubeClient:
    """The client for a kubernetes node: its context and namespace from the YAML."""
    if _factory is not None:
        return _factory(cfg, node)
    from git_mirror.kube.render import kube_node

    target = kube_node(cfg, node)
    return LightkubeClient(context=target.context, namespace=target.namespace)


def unreachable(message: str, context: str | None) -> GitMirrorError:
    """Error ``kube-unreachable``, whose hint checks the kubeconfig context."""
    ctx = f" --context {context}" if context else ""
    return GitMirrorError(message, code=Code.KUBE_UNREACHABLE,
                          hint=f"kubectl{ctx} version  # check the kubeconfig and the cluster")


class LightkubeClient:
    """:class:`KubeClient` over lightkube's synchronous client."""

    def __init__(self, *, context: str | None, namespace: str) -> None:
        from lightkube import Client, KubeConfig
        from lightkube.core.exceptions import ConfigError as LkConfigError

        self.context = context
        try:
            config = KubeConfig.from_env().get(context_name=context)
        except (LkConfigError, OSError) as exc:
            raise unreachable(f"no kubeconfig context {context or '(current)'}: {exc}",
                              context) from None
        self._client = Client(config=config, namespace=namespace, field_manager=FIELD_MANAGER)

    def _call(self, fn: Callable[[], Any]) -> Any:
        import httpx2
        from lightkube import ApiError

        try:
            return fn()
        except ApiError as exc:
            status = exc.status
            raise KubeError(f"the API server refused: {status.message}", status=status.code,
                            reason=status.reason) from None
        except httpx2.HTTPStatusError as exc:
            # An answer that is not a Kubernetes Status (a proxy or load balancer in front).
            code = exc.response.status_code
            raise KubeError(f"the API server answered HTTP {code} {exc.response.reason_phrase}",
                            status=code) from None
        except httpx2.TransportError as exc:
            raise unreachable(f"cannot reach the API server: {exc}", self.context) from None

    @staticmethod
    def _res(api_version: str, kind: str) -> Any:
        from lightkube.core.resource_registry import resource_registry

        register_custom(api_version, kind)
        return resource_registry.load(api_version, kind)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> Manifest | None:
        """The object, or None when the API server has no such object."""
        try:
            obj = self._call(lambda: self._client.get(self._res(api_version, kind), name,
                                                      namespace=namespace))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(obj.to_dict())

    def list(self, api_version: str, kind: str, namespace: str | None,
             labels: dict[str, str]) -> list[Manifest]:
        """The objects of ``kind`` in ``namespace`` whose labels match ``labels``."""
        res = self._res(api_version, kind)
        selector: dict[str, Any] = dict(labels)
        items = self._call(
            lambda: list(self._client.list(res, namespace=namespace, labels=selector)))
        out = []
        for item in items:
            d = dict(item.to_dict())
            # list items carry no apiVersion/kind of their own
            d.setdefault("apiVersion", api_version)
            d.setdefault("kind", kind)
            out.append(d)
        return out

    def apply(self, manifest: Manifest, *, dry_run: bool = False, force: bool = True) -> Manifest:
        """Server-side apply as git-mirror's field manager; the object as the server has it."""
        from lightkube.codecs import from_dict

        register_custom(manifest["apiVersion"], manifest["kind"])
        obj = from_dict(manifest)
        result = self._call(lambda: self._client.apply(obj, field_manager=FIELD_MANAGER,
                                                       force=force, dry_run=dry_run))
        return dict(result.to_dict())

    def create(self, manifest: Manifest) -> Manifest:
        """Create the object (409 when it exists); the object as the server has it."""
        from lightkube.codecs import from_dict

        register_custom(manifest["apiVersion"], manifest["kind"])
        obj = from_dict(manifest)
        return dict(self._call(lambda: self._client.create(obj)).to_dict())

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        """Delete the object; one that is already gone is not an error."""
        try:
            self._call(lambda: self._client.delete(self._res(api_version, kind), name,
                                                   namespace=namespace))
        except KubeError as exc:
            if exc.status != 404:
                raise

    def logs(self, pod: str, namespace: str) -> str:
        """The pod's log."""
        return "".join(self._call(lambda: list(self._client.log(pod, namespace=namespace))))

    def service_proxy_get(self, namespace: str, service: str, port: str, path: str) -> Any:
        """GET ``path`` of a Service through the API server's service proxy; its JSON."""
        from urllib.parse import quote

        # lightkube has no call for the service proxy: its own HTTP client (the kubeconfig's
        # server, credentials and TLS settings) sends the GET.
        http = self._client._client._client
        url = (f"/api/v1/namespaces/{quote(namespace, safe='')}/services/"
               f"{quote(service, safe='')}:{quote(port, safe='')}/proxy{path}")

        def get() -> Any:
            resp = http.get(url)
            if resp.status_code >= 400:
                try:
                    body = resp.json()
                except ValueError:
                    body = {}
                if isinstance(body, dict) and "ok" in body:
                    return body  # serve's own answer (a failed status), not the API server's
                message = body.get("message") if isinstance(body, dict) else None
                raise KubeError(f"the service proxy answered HTTP {resp.status_code}: "
                                f"{message or resp.text[:200]}", status=resp.status_code,
                                reason=body.get("reason") if isinstance(body, dict) else None)
            try:
                return resp.json()
            except ValueError:
                raise KubeError("the service proxy's answer is not JSON",
                                status=resp.status_code) from None

        return self._call(get)


def register_custom(api_version: str, kind: str) -> None:
    """Make a custom resource of :data:`CUSTOM_RESOURCES` known to lightkube (idempotent)."""
    plural = CUSTOM_RESOURCES.get((api_version, kind))
    if plural is None:
        return
    from lightkube.generic_resource import create_namespaced_resource

    group, _, version = api_version.partition("/")
    create_namespaced_resource(group, version, kind, plural)
