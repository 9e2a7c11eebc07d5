"""The config file's models (docs/config.md): frozen dataclasses, validated by pydantic.

YAML keys are camelCase (``snapshotGroup``); attributes are snake_case. Unknown keys are
errors. The classes are plain frozen dataclasses so that a config validated once can be
loaded again without importing pydantic (see :mod:`git_mirror.config.loader`); pydantic reads
the annotations, constraints included, only when :func:`adapter` builds the validator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

if TYPE_CHECKING:
    from pydantic import Field, StringConstraints, TypeAdapter

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(p.title() for p in rest)


# Read by pydantic for every dataclass below.
CONFIG: Any = {"extra": "forbid", "alias_generator": _camel, "populate_by_name": False,
               "validate_default": True, "frozen": True}

if TYPE_CHECKING:
    Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    RefPart = Annotated[str, StringConstraints(min_length=1, max_length=250)]


@dataclass(frozen=True)
class KubernetesSecretKey:
    """A key of a Kubernetes Secret: ``{name: N, key: K}``, mounted read-only into the pods."""

    __pydantic_config__ = CONFIG
    name: Name
    key: Annotated[str, StringConstraints(min_length=1)]


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives. Exactly one of file, env, kubernetes."""

    __pydantic_config__ = CONFIG
    file: str | None = None
    env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    kubernetes: KubernetesSecretKey | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("file", "env", "kubernetes") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a secretRef names exactly one of file, env, kubernetes"
                             + (f" (it names {', '.join(given)})" if given else " (it names none)"))

    def describe(self) -> str:
        """The ``sourceRef`` shown in status: ``file:PATH``, ``env:NAME``, ``kubernetes:N/K``."""
        if self.file is not None:
            return f"file:{self.file}"
        if self.env is not None:
            return f"env:{self.env}"
        assert self.kubernetes is not None
        return f"kubernetes:{self.kubernetes.name}/{self.kubernetes.key}"


@dataclass(frozen=True)
class Retention:
    """What ``snapshots prune --confirm`` keeps per group and branch: the ``keepLast`` newest
    snapshots and every one created less than ``maxAgeDays`` ago."""

    __pydantic_config__ = CONFIG
    keep_last: Annotated[int, Field(strict=True, ge=1)] = 50
    max_age_days: Annotated[int, Field(strict=True, ge=1)] | None = 30


@dataclass(frozen=True)
class Snapshots:
    """``snapshots:``: the namespace of snapshot refs (``refs/<namespace>/snapshots/...``) and
    their retention."""

    __pydantic_config__ = CONFIG
    namespace: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$")] = "git-mirror"
    retention: Retention = field(default_factory=Retention)


@dataclass(frozen=True)
class Proxy:
    """A proxy under ``proxies:``, named by ``transport.proxy`` or a node's ``egressProxy``."""

    __pydantic_config__ = CONFIG
    mode: Literal["none", "http-connect"]
    url: str | None = None
    auth: SecretRef | None = None  # proxy Basic auth, "user:password"


@dataclass(frozen=True)
class Token:
    """A token of ``server.tokens``: the HTTP Basic password or Bearer token, and whether it may
    push to lanes."""

    __pydantic_config__ = CONFIG
    secret_ref: SecretRef
    push: Annotated[bool, Field(strict=True)] = False


@dataclass(frozen=True)
class Server:
    """``server:``, what ``serve`` does: listen address, tokens, webhook secret, schedule and
    retries."""

    __pydantic_config__ = CONFIG
    listen: str = "127.0.0.1:8080"
    tokens: dict[Name, Token] = field(default_factory=dict)
    webhook_secret: SecretRef | None = None
    anonymous_read: Annotated[bool, Field(strict=True)] = True
    sync_interval_seconds: Annotated[int, Field(strict=True, ge=0)] = 300
    ready_grace_seconds: Annotated[int, Field(strict=True, ge=0)] = 0
    shutdown_grace_seconds: Annotated[int, Field(strict=True, ge=0)] = 30
    # Flush after a lane push: first retry after flushBackoffSeconds, doubling up to
    # flushBackoffMaxSeconds, at most flushMaxAttempts in a row (the next interval tick or
    # push starts a new round).
    flush_backoff_seconds: Annotated[float, Field(strict=True, gt=0)] = 5.0
    flush_backoff_max_seconds: Annotated[float, Field(strict=True, gt=0)] = 300.0
    flush_max_attempts: Annotated[int, Field(strict=True, ge=1)] = 8
    # 0: no maintenance
    maintenance_interval_seconds: Annotated[int, Field(strict=True, ge=0)] = 3600


@dataclass(frozen=True)
class Transport:
    """How upstream is reached: the mode, its secrets and the proxy; nothing of the host
    decides."""

    __pydantic_config__ = CONFIG
    mode: Literal["ssh", "https", "file"]
    identity: SecretRef | None = None
    known_hosts: SecretRef | None = None
    token: SecretRef | None = None
    username: str | None = None  # https only; default "x-access-token"
    ca_bundle: str | None = None  # https only
    proxy: Name | None = None


@dataclass(frozen=True)
class Source:
    """A source branch (or glob) the mirror follows, and the group of its snapshot refs."""

    __pydantic_config__ = CONFIG
    branch: RefPart
    snapshot_group: Name | None = None


@dataclass(frozen=True)
class Lane:
    """A lane: the GitOps ref clients may push in the mirror and flush sends upstream."""

    __pydantic_config__ = CONFIG
    ref: RefPart


@dataclass(frozen=True)
class Repository:
    """A repository under ``repositories:``: its upstream, transport, sources, tags and lanes."""

    __pydantic_config__ = CONFIG
    upstream: Annotated[str, StringConstraints(min_length=1)]
    transport: Transport
    sources: list[Source] = field(default_factory=list)
    tags: Annotated[bool, Field(strict=True)] = False
    lanes: dict[Name, Lane] = field(default_factory=dict)


@dataclass(frozen=True)
class KubernetesIngress:
    """An Ingress for ``POST /hooks/github`` only (git, the API and metrics stay in-cluster)."""

    __pydantic_config__ = CONFIG
    host: Annotated[str, StringConstraints(
        pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        max_length=253)]
    class_name: str | None = None
    tls_secret: str | None = None


@dataclass(frozen=True)
class KubernetesTarget:
    """Where a kubernetes node runs: kubeconfig context, namespace, image, storage, ingress."""

    __pydantic_config__ = CONFIG
    context: str | None = None
    namespace: Name = "git-mirror"
    image: str | None = None
    storage_class: str | None = None
    storage_size: str = "10Gi"
    ingress: KubernetesIngress | None = None


@dataclass(frozen=True)
class Node:
    """A node under ``nodes:``: this machine (``local``) or a namespace of a cluster."""

    __pydantic_config__ = CONFIG
    executor: Literal["local", "kubernetes"] = "local"
    kubernetes: KubernetesTarget | None = None
    egress_proxy: Name | None = None


@dataclass(frozen=True)
class ExecTrigger:
    """A follower trigger that runs a command in a fresh checkout of the snapshot commit."""

    __pydantic_config__ = CONFIG
    exec: Annotated[list[str], Field(min_length=1)]


@dataclass(frozen=True)
class TektonWorkspace:
    """One workspace binding of the PipelineRun; exactly one source (checked in checks)."""

    __pydantic_config__ = CONFIG
    empty_dir: Annotated[bool, Field(strict=True)] = False
    persistent_volume_claim: Name | None = None  # an existing claim's name
    volume_claim_template: str | None = None  # a storage size: a fresh claim per run
    secret: Name | None = None
    config_map: Name | None = None

    def binding(self, name: str) -> dict[str, Any]:
        """The ``spec.workspaces[]`` entry of a Tekton v1 PipelineRun."""
        if self.persistent_volume_claim is not None:
            claim = {"claimName": self.persistent_volume_claim}
            return {"name": name, "persistentVolumeClaim": claim}
        if self.volume_claim_template is not None:
            return {"name": name, "volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": self.volume_claim_template}}}}}
        if self.secret is not None:
            return {"name": name, "secret": {"secretName": self.secret}}
        if self.config_map is not None:
            return {"name": name, "configMap": {"name": self.config_map}}
        return {"name": name, "emptyDir": {}}


@dataclass(frozen=True)
class TektonSpec:
    """A Tekton v1 PipelineRun of a declared Pipeline (kubernetes nodes)."""

    __pydantic_config__ = CONFIG
    pipeline: Name
    namespace: Name | None = None  # default: the node's namespace
    service_account_name: Name | None = None
    params: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")], str] = \
        field(default_factory=dict)
    workspaces: dict[Name, TektonWorkspace] = field(default_factory=dict)
    timeout: Annotated[str, StringConstraints(
        min_length=2, pattern=r"^(\d+h)?(\d+m)?(\d+s)?$")] = "1h0m0s"


@dataclass(frozen=True)
class TektonTrigger:
    """A follower trigger that starts a Tekton PipelineRun (kubernetes nodes)."""

    __pydantic_config__ = CONFIG
    tekton: TektonSpec


@dataclass(frozen=True)
class ArgoCD:
    """The Argo CD Application that deploys a follower's lane (closeout's sync revision)."""

    __pydantic_config__ = CONFIG
    application: Name
    namespace: Name = "argocd"


@dataclass(frozen=True)
class Follower:
    """A follower under ``followers:``: builds one branch of a repository and delivers the
    result through a lane."""

    __pydantic_config__ = CONFIG
    repository: Name
    branch: RefPart
    lane: Name
    trigger: ExecTrigger | TektonTrigger
    argocd: ArgoCD | None = None


@dataclass(frozen=True)
class Config:
    """A git-mirror config file (version 1)."""

    __pydantic_config__ = CONFIG
    version: Literal[1]
    cache: str | None = None
    # How many repositories sync, flush, apply and status work on at once (``--jobs``
    # overrides it; serve's scheduler uses it as is).
    jobs: Annotated[int, Field(strict=True, ge=1, le=64)] = 8
    snapshots: Snapshots = field(default_factory=Snapshots)
    proxies: dict[Name, Proxy] = field(default_factory=dict)
    server: Server = field(default_factory=Server)
    repositories: dict[Name, Repository] = field(default_factory=dict)
    nodes: dict[Name, Node] = field(default_factory=dict)
    followers: dict[Name, Follower] = field(default_factory=dict)


@cache
def adapter() -> TypeAdapter[Config]:
    """The pydantic validator of :class:`Config` (built on first use)."""
    import pydantic

    # The annotations above are strings that name pydantic's constraint types; make those
    # names resolvable here, so that importing this module never imports pydantic.
    constraints = pydantic.StringConstraints
    globals().update(
        Field=pydantic.Field, StringConstraints=constraints,
        Name=Annotated[str, constraints(pattern=NAME_PATTERN)],
        RefPart=Annotated[str, constraints(min_length=1, max_length=250)],
    )
    return pydantic.TypeAdapter(Config)

