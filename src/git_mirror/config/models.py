"""Pydantic v2 models of the config file (CONTRACT section 2). Frozen; unknown keys are errors.

YAML keys are camelCase (``snapshotGroup``); Python attributes are snake_case.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
RefPart = Annotated[str, StringConstraints(min_length=1, max_length=250)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel,
                              populate_by_name=True, validate_default=True)


class KubernetesSecretKey(Model):
    name: Name
    key: Annotated[str, StringConstraints(min_length=1)]


class SecretRef(Model):
    """Where a secret lives. Exactly one of file, env, kubernetes."""

    file: str | None = None
    env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    kubernetes: KubernetesSecretKey | None = None

    def describe(self) -> str:
        """The ``sourceRef`` shown in status: ``file:PATH``, ``env:NAME``, ``kubernetes:N/K``."""
        if self.file is not None:
            return f"file:{self.file}"
        if self.env is not None:
            return f"env:{self.env}"
        assert self.kubernetes is not None
        return f"kubernetes:{self.kubernetes.name}/{self.kubernetes.key}"


class Retention(Model):
    keep_last: Annotated[int, Field(ge=1)] = 50
    max_age_days: Annotated[int, Field(ge=1)] | None = 30


class Snapshots(Model):
    namespace: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$")] = "git-mirror"
    retention: Retention = Retention()


class Proxy(Model):
    mode: Literal["none", "http-connect"]
    url: str | None = None
    auth: SecretRef | None = None  # proxy Basic auth, "user:password"


class Token(Model):
    secret_ref: SecretRef
    push: bool = False


class Server(Model):
    listen: str = "127.0.0.1:8080"
    tokens: dict[Name, Token] = {}
    webhook_secret: SecretRef | None = None
    anonymous_read: bool = True
    sync_interval_seconds: Annotated[int, Field(ge=0)] = 300
    ready_grace_seconds: Annotated[int, Field(ge=0)] = 0
    shutdown_grace_seconds: Annotated[int, Field(ge=0)] = 30
    # Flush after a lane push: first retry after flushBackoffSeconds, doubling up to
    # flushBackoffMaxSeconds, at most flushMaxAttempts in a row (the next interval tick or
    # push starts a new round).
    flush_backoff_seconds: Annotated[float, Field(gt=0)] = 5.0
    flush_backoff_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    flush_max_attempts: Annotated[int, Field(ge=1)] = 8
    maintenance_interval_seconds: Annotated[int, Field(ge=0)] = 3600  # 0: no maintenance


class Transport(Model):
    mode: Literal["ssh", "https", "file"]
    identity: SecretRef | None = None
    known_hosts: SecretRef | None = None
    token: SecretRef | None = None
    username: str | None = None  # https only; default "x-access-token"
    ca_bundle: str | None = None  # https only
    proxy: Name | None = None


class Source(Model):
    branch: RefPart
    snapshot_group: Name | None = None


class Lane(Model):
    ref: RefPart


class Repository(Model):
    upstream: Annotated[str, StringConstraints(min_length=1)]
    transport: Transport
    sources: list[Source] = []
    tags: bool = False
    lanes: dict[Name, Lane] = {}


class KubernetesTarget(Model):
    context: str | None = None
    namespace: Name = "git-mirror"
    image: str | None = None
    storage_class: str | None = None
    storage_size: str = "10Gi"


class Node(Model):
    executor: Literal["local", "kubernetes"] = "local"
    kubernetes: KubernetesTarget | None = None
    egress_proxy: Name | None = None


class ExecTrigger(Model):
    exec: Annotated[list[str], Field(min_length=1)]


class TektonTrigger(Model):
    tekton: dict[str, object]


class Follower(Model):
    repository: Name
    branch: RefPart
    lane: Name
    trigger: ExecTrigger | TektonTrigger


class Config(Model):
    version: Literal[1]
    cache: str | None = None
    snapshots: Snapshots = Snapshots()
    proxies: dict[Name, Proxy] = {}
    server: Server = Server()
    repositories: dict[Name, Repository] = {}
    nodes: dict[Name, Node] = {}
    followers: dict[Name, Follower] = {}


GLOB_CHARS = re.compile(r"[*?\[]")
