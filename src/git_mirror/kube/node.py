"""A kubernetes node, read from the config: names, labels, secrets, cache path, egress.

Pure functions that :mod:`git_mirror.kube.render` builds on; nothing here calls the Kubernetes API.
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from git_mirror import __version__
from git_mirror.config.urls import UrlError, parse_listen, parse_proxy_url, parse_url
from git_mirror.errors import ConfigError, UsageError, WarningCode

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import KubernetesTarget, SecretRef

# The tag scripts/build-image.sh gives the image (containerd knows it as
# docker.io/library/git-mirror:<version> once loaded: kind load image-archive, ctr import).
DEFAULT_IMAGE = f"git-mirror:{__version__}"
CONFIG_DIR = "/etc/git-mirror"
CONFIG_FILE = "git-mirror.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_FILE}"
SHA_ANNOTATION = "git-mirror/config-sha256"
UID = 10001
JOB_DEADLINE_SECONDS = 1800
JOB_TTL_SECONDS = 86400
L_NAME, L_INSTANCE, L_MANAGED, L_COMPONENT = (
    "app.kubernetes.io/name", "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by", "app.kubernetes.io/component")


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` as a DNS-1123 label of at most ``limit`` characters.

    Lower-casing alone keeps the name readable (``D601`` -> ``d601``); any other change, or a
    cut, adds a short hash of the original so that two nodes never share a name.
    """
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if name == text.lower() and len(name) <= limit:
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{name[: limit - 7].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class Names:
    """Object names of one node; every name fits the 63-character label limit with suffixes."""

    node: str
    namespace: str

    @property
    def base(self) -> str:
        """``git-mirror-<node>``: the Deployment, Service and ServiceAccount's name."""
        # "git-mirror-" starts with a letter, as Service names (DNS-1035) need.
        return "git-mirror-" + dns_label(self.node, 32)

    config = property(lambda self: self.base + "-config")
    cache = property(lambda self: self.base + "-cache")
    env_secret = property(lambda self: self.base + "-env")


def labels(node: str, component: str | None = None) -> dict[str, str]:
    """The ``app.kubernetes.io/*`` labels of the node's objects (of one component)."""
    out = {L_NAME: "git-mirror", L_INSTANCE: node, L_MANAGED: "git-mirror"}
    if component:
        out[L_COMPONENT] = component
    return out


def kube_node(cfg: LoadedConfig, node: str) -> KubernetesTarget:
    """The node's kubernetes block; a usage error for a node that is not a kubernetes one."""
    n = cfg.model.nodes.get(node)
    if n is None or n.executor != "kubernetes" or n.kubernetes is None:
        raise UsageError(f"node {node!r} is not a kubernetes node (executor: "
                         f"{n.executor if n else 'local'})",
                         hint="git-mirror validate  "
                              "# nodes: with executor: kubernetes are rendered")
    return n.kubernetes


@dataclass
class NodeSecrets:
    """The secret refs a node's pods use, by kind."""

    mounts: dict[str, set[str]] = field(default_factory=dict)  # Secret name -> keys
    env: set[str] = field(default_factory=set)
    unmountable: list[dict[str, str]] = field(default_factory=list)


def used_secret_refs(cfg: LoadedConfig, node: str) -> list[tuple[tuple[str, ...], SecretRef]]:
    """Every secretRef the node's processes read, with its key path in the YAML."""
    from git_mirror.mirror.local_apply import effective_proxy_name

    m = cfg.model
    out: list[tuple[tuple[str, ...], SecretRef]] = []
    proxies: set[str] = set()
    for rid, repo in m.repositories.items():
        t = repo.transport
        refs = (("identity", t.identity), ("knownHosts", t.known_hosts), ("token", t.token))
        for key, ref in refs:
            if ref is not None:
                out.append((("repositories", rid, "transport", key), ref))
        name = effective_proxy_name(cfg, rid, node)
        if name:
            proxies.add(name)
    for name in sorted(proxies):
        auth = m.proxies[name].auth
        if auth is not None:
            out.append((("proxies", name, "auth"), auth))
    for tid, token in m.server.tokens.items():
        out.append((("server", "tokens", tid, "secretRef"), token.secret_ref))
    if m.server.webhook_secret is not None:
        out.append((("server", "webhookSecret"), m.server.webhook_secret))
    return out


def node_secrets(cfg: LoadedConfig, node: str) -> NodeSecrets:
    """The secrets the node's pods need: Secret keys to mount, env names, and the ``{file:}``
    ones that cannot be mounted (as warnings)."""
    from git_mirror.config.loader import dotted

    found = NodeSecrets()
    for path, ref in used_secret_refs(cfg, node):
        if ref.kubernetes is not None:
            found.mounts.setdefault(ref.kubernetes.name, set()).add(ref.kubernetes.key)
        elif ref.env is not None:
            found.env.add(ref.env)
        else:
            found.unmountable.append({
                "code": WarningCode.SECRET_NOT_MOUNTABLE, "key": dotted(path),
                "at": cfg.where(*path),
                "line": str(cfg.line_of(*path) or ""),
                "message": f"{dotted(path)}: {ref.describe()} is a file on this machine and "
                           "cannot be mounted into a pod",
                "hint": "use {kubernetes: {name: SECRET, key: KEY}} for a kubernetes node"})
    return found


def pod_cache_dir(cfg: LoadedConfig) -> str:
    """Where the cache is inside the pod: what ``LoadedConfig.cache_dir`` gives there."""
    cache = cfg.model.cache
    if cache and cache.startswith("~"):
        raise ConfigError("a cache under ~ has no meaning in a pod; use an absolute path or "
                          "one relative to the config file", file=str(cfg.path),
                          line=cfg.line_of("cache"), key="cache")
    if cache and cache.startswith("/"):
        return posixpath.normpath(cache)
    return posixpath.normpath(posixpath.join(CONFIG_DIR, cache or ".git-mirror"))


def listen_port(cfg: LoadedConfig) -> tuple[str, int]:
    """``server.listen`` as (host, port); a config error when it is not HOST:PORT."""
    try:
        listen = parse_listen(cfg.model.server.listen)
    except UrlError:
        raise ConfigError("expected HOST:PORT", file=str(cfg.path),
                          line=cfg.line_of("server", "listen"), key="server.listen") from None
    return listen.host, listen.port


def egress_rules(cfg: LoadedConfig, node: str,
                 warnings: list[dict[str, str]]) -> list[dict[str, Any]] | None:
    """NetworkPolicy egress rules, or None when no proxy is in use (nothing declared to hold to).

    Each repository reaches upstream through its effective proxy, else directly (R8); an IP
    endpoint becomes an ipBlock, a host name only its port (NetworkPolicy has no host names),
    plus DNS to resolve it.
    """
    from git_mirror.mirror.local_apply import effective_proxy_name

    endpoints: set[tuple[str, int]] = set()
    any_proxy = False
    loopback: dict[str, str] = {}  # proxy name -> its loopback host
    for rid, repo in cfg.model.repositories.items():
        name = effective_proxy_name(cfg, rid, node)
        proxy = cfg.model.proxies.get(name) if name else None
        if name and proxy is not None and proxy.mode == "http-connect" and proxy.url:
            any_proxy = True
            proxy_url = parse_proxy_url(proxy.url)
            if _is_loopback(proxy_url.host):
                loopback[name] = proxy_url.host
            endpoints.add((proxy_url.host, proxy_url.port))
        elif repo.transport.mode != "file":
            upstream = parse_url(repo.upstream)
            endpoints.add(((upstream.host or "").lower(), upstream.effective_port or 443))
    if not any_proxy:
        return None
    for name, host in sorted(loopback.items()):
        warnings.append(_proxy_loopback(cfg, name, host))
    rules: list[dict[str, Any]] = []
    need_dns = False
    for host, port in sorted(endpoints):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            need_dns = True
            rules.append({"ports": [{"protocol": "TCP", "port": port}]})
            warnings.append({"code": WarningCode.EGRESS_BY_PORT, "message":
                             f"egress to {host}:{port} is allowed by port only: a NetworkPolicy "
                             "cannot name a host; declare the proxy by IP address to pin it",
                             "hint": "proxies: {NAME: {mode: http-connect, url: http://IP:PORT}}"})
            continue
        cidr = f"{ip}/{32 if ip.version == 4 else 128}"
        rules.append({"to": [{"ipBlock": {"cidr": cidr}}],
                      "ports": [{"protocol": "TCP", "port": port}]})
    if need_dns:
        rules.append({"to": [{"namespaceSelector": {},
                              "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                      "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]})
    return rules


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in ("localhost", "localhost.")


def _proxy_loopback(cfg: LoadedConfig, name: str, host: str) -> dict[str, str]:
    """A proxy on loopback is this machine's; in a pod, that address is the pod itself."""
    url = cfg.model.proxies[name].url
    return {"code": WarningCode.PROXY_LOOPBACK, "key": f"proxies.{name}.url",
            "at": cfg.where("proxies", name, "url"),
            "message": f"proxies.{name}.url is {url}: in a pod, {host} is the pod itself, so the "
                       "NetworkPolicy allows egress only to the pod and upstream cannot be reached",
            "hint": f"proxies: {{{name}: {{mode: http-connect, url: http://IP:PORT}}}} with an "
                    "address the pods reach (the proxy's Service or host IP)"}
