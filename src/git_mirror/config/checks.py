"""Rules across keys that the models alone cannot state.

Each rule raises :class:`ConfigError` naming the file, line and key path of the offending
value. A transport that disagrees with its URL (R13) is code ``drift`` as well as exit 2.
"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING, Any

from git_mirror.config.urls import (
    NEEDS_HOST,
    GitUrl,
    UrlError,
    is_url,
    parse_listen,
    parse_proxy_url,
    parse_url,
    url_kind,
)
from git_mirror.errors import Code, ConfigError
from git_mirror.refname import branch_problem

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Proxy, Transport

# A Kubernetes label value: what app.kubernetes.io/instance gets on a kubernetes node.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# What the URL of each transport.mode may be (url_kind), and what one looks like.
SCHEMES = {"ssh": ("ssh", "scp"), "https": ("https", "http"), "file": ("file",)}
EXAMPLES = {"ssh": "ssh://git@host:22/org/repo.git", "https": "https://host/org/repo.git",
            "file": "file:///path/to/repo.git"}


def url_scheme(url: str) -> str:
    """``ssh``, ``https``, ``http``, ``file`` or ``scp`` (``user@host:path``) or ``unknown``."""
    return url_kind(url)


class ConfigDrift(ConfigError):
    """A config error that is drift as well (R13): the YAML contradicts itself about how
    upstream is reached (a transport that disagrees with its URL, a key of another mode)."""

    code = Code.DRIFT


def _fail(cfg: LoadedConfig, path: tuple[str | int, ...], message: str, *,
          drift: bool = False, hint: str | None = None) -> ConfigError:
    """The error for the value at ``path``: file, line and key path named; code ``drift``
    (:class:`ConfigDrift`) or ``config``, exit 2 either way."""
    from git_mirror.config.loader import dotted

    kind = ConfigDrift if drift else ConfigError
    return kind(message, file=str(cfg.path), line=cfg.line_of(*path), key=dotted(path),
                hint=hint)


def valid_branch(name: str, *, glob: bool) -> bool:
    """``git check-ref-format --branch`` (``*`` allowed with glob), without a process."""
    return branch_problem(name, glob=glob) is None


def check_transport(cfg: LoadedConfig, rid: str) -> None:
    """``rid``'s upstream URL and transport agree (R13), and each key is for its mode."""
    t = cfg.model.repositories[rid].transport
    _check_upstream(cfg, rid, t.mode)
    base = ("repositories", rid, "transport")
    if t.mode == "ssh":
        _check_ssh_keys(cfg, base, t)
    else:
        _check_non_ssh_keys(cfg, base, t)
    if t.proxy is not None and t.proxy not in cfg.model.proxies:
        raise _fail(cfg, (*base, "proxy"),
                    f"proxy {t.proxy!r} is not declared under proxies: "
                    f"(declared: {', '.join(sorted(cfg.model.proxies)) or 'none'})")


def _check_upstream(cfg: LoadedConfig, rid: str, mode: str) -> GitUrl:
    """The upstream URL: readable, of the mode's scheme (else drift), with a host where the
    scheme needs one, no password, plain http to loopback only."""
    text = cfg.model.repositories[rid].upstream
    where = ("repositories", rid, "upstream")
    try:
        url: GitUrl | None = parse_url(text)
    except UrlError as exc:
        if is_url(text):  # scheme://... that urllib cannot read (port, [host])
            raise _fail(cfg, where, f"the upstream URL {exc}") from None
        url = None
    scheme = url.kind if url is not None else "unknown"
    if url is None or scheme not in SCHEMES[mode]:
        raise _fail(cfg, where,
                    f"transport.mode is {mode!r} but the upstream URL scheme is {scheme!r}; "
                    f"a {mode} upstream looks like {EXAMPLES[mode]}",
                    drift=True)
    if url.form == "url" and url.scheme in NEEDS_HOST and not url.host:
        raise _fail(cfg, where, "the upstream URL names no host")
    if url.password is not None:
        # A password in the URL is an inline secret: it would show in status, logs, argv
        # and the mirror's config. The message does not repeat the URL.
        raise _fail(cfg, where,
                    "the upstream URL carries a password; secrets are never inline: declare "
                    "transport.token (a secretRef) and remove it from the URL")
    if scheme == "http" and (url.host or "") not in LOOPBACK:
        raise _fail(cfg, where,
                    "plain http:// is accepted only for a loopback upstream; use https://",
                    drift=True)
    return url


def _check_ssh_keys(cfg: LoadedConfig, base: tuple[str, ...], t: Transport) -> None:
    """Mode ssh: an identity and known hosts, and none of https's keys."""
    if t.token is not None:
        raise _fail(cfg, (*base, "token"),
                    "a token is declared but transport.mode is ssh: an HTTPS credential "
                    "with an SSH transport is drift (R13); remove it or declare mode: https",
                    drift=True)
    for key in ("identity", "known_hosts"):
        if getattr(t, key) is None:
            yaml_key = "knownHosts" if key == "known_hosts" else key
            raise _fail(cfg, (*base,), f"mode ssh needs {yaml_key}: a secretRef "
                        "({file: PATH} or {env: NAME}); host keys are always verified")
    for key in ("ca_bundle", "username"):
        if getattr(t, key) is not None:
            yaml_key = "caBundle" if key == "ca_bundle" else key
            raise _fail(cfg, (*base, yaml_key), f"{yaml_key} is for mode https only",
                        drift=True)


def _check_non_ssh_keys(cfg: LoadedConfig, base: tuple[str, ...], t: Transport) -> None:
    """Modes https and file: none of ssh's keys; mode file none of https's either."""
    for key, yaml_key in (("identity", "identity"), ("known_hosts", "knownHosts")):
        if getattr(t, key) is not None:
            raise _fail(cfg, (*base, yaml_key),
                        f"{yaml_key} is for mode ssh only, but mode is {t.mode}",
                        drift=True)
    if t.mode == "file":
        for key, yaml_key in (("token", "token"), ("ca_bundle", "caBundle"),
                              ("username", "username"), ("proxy", "proxy")):
            if getattr(t, key) is not None:
                raise _fail(cfg, (*base, yaml_key), f"{yaml_key} has no meaning for mode file")


def _overlap(a: str, b: str) -> bool:
    """True when branch (or glob) ``a`` and ``b`` can name the same ref, or one is below the
    other (git cannot hold ``x`` and ``x/y`` as refs at once)."""
    return (a == b or fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a)
            or (a.startswith(b.rstrip("*") + "/") and "*" in b)
            or b.startswith(a + "/") or a.startswith(b + "/"))


def check_refs(cfg: LoadedConfig, rid: str) -> None:
    """``rid``'s sources and lanes are valid branch names (sources may be globs), and no two
    of them overlap: every ref is a source or a lane, once."""
    repo = cfg.model.repositories[rid]
    seen: list[tuple[str, tuple[str | int, ...]]] = []
    for i, src in enumerate(repo.sources):
        path: tuple[str | int, ...] = ("repositories", rid, "sources", i, "branch")
        problem = branch_problem(src.branch, glob=True)
        if problem:
            raise _fail(cfg, path, f"{src.branch!r} is not a valid branch name or glob: {problem} "
                                   "(git check-ref-format --branch)")
        seen.append((src.branch, path))
    for name, lane in repo.lanes.items():
        path = ("repositories", rid, "lanes", name, "ref")
        ref = lane.ref.removeprefix("refs/heads/")
        problem = "lanes take no globs" if "*" in ref else branch_problem(ref)
        if problem:
            raise _fail(cfg, path, f"{lane.ref!r} is not a valid branch name: {problem} "
                                   "(git check-ref-format --branch)")
        seen.append((ref, path))
    for i, (a, pa) in enumerate(seen):
        for b, pb in seen[:i]:
            if _overlap(a, b):
                from git_mirror.config.loader import dotted
                raise _fail(cfg, pa, f"{a!r} overlaps {b!r} declared at {dotted(pb)} "
                            f"(line {cfg.line_of(*pb)}); every ref may be a source or a lane, once")


def check_config(cfg: LoadedConfig) -> None:
    """Raise ConfigError for the first rule the config breaks."""
    m = cfg.model
    for name, proxy in m.proxies.items():
        _check_proxy(cfg, name, proxy)
    for rid in m.repositories:
        check_transport(cfg, rid)
        check_refs(cfg, rid)
    for name in m.nodes:
        _check_node(cfg, name)
    for fid in m.followers:
        _check_follower(cfg, fid)
    try:
        parse_listen(m.server.listen)
    except UrlError as exc:
        raise _fail(cfg, ("server", "listen"), str(exc)) from None


def _check_proxy(cfg: LoadedConfig, name: str, proxy: Proxy) -> None:
    """An http-connect proxy is ``http://HOST:PORT`` with no credentials in it (they go in
    ``auth``); a ``mode: none`` one has neither url nor auth."""
    if proxy.mode == "http-connect":
        try:
            url = parse_proxy_url(proxy.url or "")
        except UrlError:
            raise _fail(cfg, ("proxies", name, "url"),
                        "mode http-connect needs url: http://HOST:PORT") from None
        if url.user or url.password:
            raise _fail(cfg, ("proxies", name, "url"),
                        "credentials in a proxy URL are not allowed; use auth: {file: PATH}")
    elif proxy.url or proxy.auth:
        raise _fail(cfg, ("proxies", name, "mode"), "mode none takes no url or auth")


def _check_node(cfg: LoadedConfig, name: str) -> None:
    """A node's egress proxy is declared; a kubernetes node has its block and a name that
    is a valid label value."""
    m = cfg.model
    node = m.nodes[name]
    if node.egress_proxy is not None and node.egress_proxy not in m.proxies:
        raise _fail(cfg, ("nodes", name, "egressProxy"),
                    f"proxy {node.egress_proxy!r} is not declared under proxies: "
                    f"(declared: {', '.join(sorted(m.proxies)) or 'none'})")
    if node.executor == "kubernetes" and node.kubernetes is None:
        raise _fail(cfg, ("nodes", name, "executor"),
                    "executor kubernetes needs a kubernetes: {context, namespace} block")
    if node.executor == "kubernetes" and not (LABEL_VALUE.match(name) and len(name) <= 63):
        # The node's objects carry its name as is, so that selectors and kubectl -l
        # find them by the name the YAML gives; an API server refuses a bad label value.
        raise _fail(cfg, ("nodes", name),
                    f"a kubernetes node's name is the label value app.kubernetes.io/instance "
                    f"of its objects, so it must begin and end with a letter or digit "
                    f"(letters, digits, '-', '_' and '.' in between; at most 63 characters); "
                    f"{name!r} does not",
                    hint=f"rename the node (e.g. {name.strip('-_.') or 'D601'!r}), "
                         "then run: git-mirror validate")


def _check_follower(cfg: LoadedConfig, fid: str) -> None:
    """A follower names a declared repository, one of its lanes, and a valid branch that is
    one of its sources; a tekton trigger's own rules (:func:`_check_tekton`)."""
    m = cfg.model
    f = m.followers[fid]
    base = ("followers", fid)
    if f.repository not in m.repositories:
        raise _fail(cfg, (*base, "repository"),
                    f"repository {f.repository!r} is not declared under repositories: "
                    f"(declared: {', '.join(sorted(m.repositories)) or 'none'})")
    repo = m.repositories[f.repository]
    if f.lane not in repo.lanes:
        raise _fail(cfg, (*base, "lane"),
                    f"lane {f.lane!r} is not declared in repositories.{f.repository}.lanes "
                    f"(declared: {', '.join(sorted(repo.lanes)) or 'none'})")
    problem = branch_problem(f.branch)
    if problem:
        raise _fail(cfg, (*base, "branch"), f"{f.branch!r} is not a valid branch name: "
                                            f"{problem} (git check-ref-format --branch)")
    if not any(fnmatch.fnmatchcase(f.branch, s.branch) for s in repo.sources):
        raise _fail(cfg, (*base, "branch"),
                    f"branch {f.branch!r} is not a declared source of {f.repository} "
                    f"(sources: {', '.join(s.branch for s in repo.sources) or 'none'})")
    _check_tekton(cfg, fid, f)


# Params git-mirror itself passes to every PipelineRun: the snapshot is the run's only source.
TEKTON_PARAMS = ("snapshot-ref", "commit", "repo-url", "lane-ref", "push-url")


def _check_tekton(cfg: LoadedConfig, fid: str, f: Any) -> None:
    """A tekton trigger's own params may not shadow git-mirror's; one source per workspace."""
    from git_mirror.config.models import TektonTrigger

    if not isinstance(f.trigger, TektonTrigger):
        return
    # Its PipelineRuns carry the follower id and lane name as label values.
    for value, where, what in ((fid, ("followers", fid), "follower id"),
                               (f.lane, ("followers", fid, "lane"), "lane name")):
        if not LABEL_VALUE.match(value):
            raise _fail(cfg, where,
                        f"a tekton follower's {what} is a label value of its PipelineRuns, so it "
                        f"must begin and end with a letter or digit; {value!r} does not",
                        hint=f"rename it (e.g. {value.strip('-_.') or 'x'!r}), then run: "
                             "git-mirror validate")
    base = ("followers", fid, "trigger", "tekton")
    spec = f.trigger.tekton
    for name in spec.params:
        if name in TEKTON_PARAMS:
            raise _fail(cfg, (*base, "params", name),
                        f"param {name!r} is set by git-mirror for every run "
                        f"({', '.join(TEKTON_PARAMS)}); remove it")
    for name, ws in spec.workspaces.items():
        given = [ws.empty_dir or None, ws.persistent_volume_claim, ws.volume_claim_template,
                 ws.secret, ws.config_map]
        if sum(v is not None for v in given) != 1:
            raise _fail(cfg, (*base, "workspaces", name),
                        "expected exactly one of emptyDir: true, persistentVolumeClaim, "
                        "volumeClaimTemplate, secret, configMap")
