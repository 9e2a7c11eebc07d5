"""``transport.mode: https``: a token through ``GIT_ASKPASS``, the declared proxy, TLS verified.

- The token reaches git through an askpass script of ours (``<cache>/transport/askpass``,
  no secret in it) that answers git's prompts from variables set only in the environment of
  the git process we start: never argv, the URL, or a config file on disk. The username
  defaults to ``x-access-token`` (what GitHub expects for app and fine-grained tokens).
- The declared proxy goes in as ``-c http.proxy=http://HOST:PORT``; with no proxy declared,
  ``http.proxy`` is set empty, which makes git and curl ignore every proxy variable. Proxy
  credentials, when declared, travel in ``GIT_CONFIG_*`` environment variables instead, so
  they never show in an argument list.
- ``http.sslVerify`` is always on; a declared ``caBundle`` becomes ``http.sslCAInfo``.
- ``http://`` is allowed only for a loopback upstream (the config checks hold that), and only
  that URL's own scheme is in ``GIT_ALLOW_PROTOCOL``, so a redirect cannot change it.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING
from urllib.parse import quote

from git_mirror.config.secrets import resolve_secret
from git_mirror.config.urls import parse_proxy_url, parse_url, url_kind
from git_mirror.errors import GitError, GitMirrorError
from git_mirror.git.remote import RemoteEnv
from git_mirror.redact import remember
from git_mirror.transport.failures import Failure, Where, explain, failure_error, retry_command
from git_mirror.transport.files import private_dir, write_private

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Proxy

DEFAULT_USERNAME = "x-access-token"
USER_VAR = "GIT_MIRROR_HTTP_USERNAME"
TOKEN_VAR = "GIT_MIRROR_HTTP_TOKEN"

# printf is a shell builtin: the token is never in any process's argument list.
ASKPASS = f"""#!/bin/sh
# Written by git-mirror: answers git's credential prompts from the environment git-mirror
# gives the git process it starts. Holds no secret itself.
case "$1" in
  Username*) printf '%s\\n' "${USER_VAR}" ;;
  Password*) printf '%s\\n' "${TOKEN_VAR}" ;;
  *) exit 1 ;;
esac
"""


def https_remote(cfg: LoadedConfig, rid: str, proxy_name: str | None,
                 proxy: Proxy | None) -> RemoteEnv:
    """The :class:`RemoteEnv` for an https repository."""
    repo = cfg.model.repositories[rid]
    t = repo.transport
    scheme = parse_url(repo.upstream).scheme
    config = ["http.sslVerify=true", "credential.helper=", "http.followRedirects=initial"]
    env: dict[str, str] = {}
    if t.ca_bundle:
        config.append(f"http.sslCAInfo={cfg.resolve_path(t.ca_bundle)}")
    if t.token is not None:
        token = resolve_secret(t.token, cfg, role="token",
                               key=("repositories", rid, "transport", "token"))
        root = private_dir(cfg.cache_dir / "transport")
        askpass = write_private(root / "askpass", ASKPASS, mode=0o700)
        env.update({"GIT_ASKPASS": shlex.quote(str(askpass)),
                    USER_VAR: t.username or DEFAULT_USERNAME, TOKEN_VAR: token.reveal()})
    if proxy is not None:
        hostport = parse_proxy_url(proxy.url or "").hostport
        if proxy.auth is not None:
            user, _, password = resolve_secret(proxy.auth, cfg, role="proxyAuth",
                                            key=("proxies", proxy_name or "", "auth")) \
                .reveal().partition(":")
            userinfo = quote(user, safe="") + ":" + quote(password, safe="")
            remember(userinfo)  # the URL-encoded form is scrubbed from stderr as well
            env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.proxy",
                        "GIT_CONFIG_VALUE_0": f"http://{userinfo}@{hostport}"})
            config.append("http.proxyAuthMethod=basic")
        else:
            config.append(f"http.proxy=http://{hostport}")
    else:
        config.append("http.proxy=")

    def explain(exc: GitError) -> GitMirrorError:
        return explain_https(exc, rid=rid, url=repo.upstream, proxy_name=proxy_name,
                             proxy_url=proxy.url if proxy is not None else None,
                             token_ref=t.token.describe() if t.token else None)

    return RemoteEnv(url=repo.upstream, allow_protocol=scheme, env=env, config=config,
                     explain=explain)


# What git-over-https failures look like in (lower-cased) stderr, first match wins
# (failures.explain); the declared proxy's own failure is told apart first (_proxy_failed).
HTTPS_FAILURES = (
    Failure(("authentication failed", "returned error: 401", "returned error: 403",
             "could not read username", "could not read password"),
            "upstream {url} rejected {what}",
            "check that the token is valid and may read (and, for flush, write) the "
            "repository; git-mirror status shows its fingerprint; then run: {retry}"),
    Failure(("ssl certificate", "certificate verif", "ssl_connect",
             "no alternative certificate subject name"),
            "the TLS certificate of {url} could not be verified",
            "declare the issuing CA as transport.caBundle if it is a private CA, then run: "
            "{retry}"),
    Failure(("failed to connect", "couldn't connect", "connection refused"),
            "upstream {url} cannot be reached",
            "check that the host accepts HTTPS (or fix repositories.{rid}.upstream), then run: "
            "{retry}", unreachable=True),
    Failure(("could not resolve host",), "the upstream host of {url} cannot be resolved",
            "fix repositories.{rid}.upstream (or DNS), then run: {retry}", unreachable=True),
    Failure(("returned error: 404", ("not found", "repository")),
            "upstream {url} has no repository there (or none this token may read: a forge "
            "answers 'not found' for a private one)",
            "fix repositories.{rid}.upstream, or check what the token may read, then run: "
            "{retry}", unreachable=True),
)


def _proxy_failed(low: str, proxy_url: str | None) -> bool:
    """True when git's (lower-cased) stderr says a proxy failed (the one at ``proxy_url``)."""
    proxy_port = f"port {parse_proxy_url(proxy_url).port}" if proxy_url else None
    return ("from proxy" in low or "connect tunnel failed" in low
            or "could not resolve proxy" in low
            or (proxy_port is not None and proxy_port in low and "failed to connect" in low))


def explain_https(exc: GitError, *, rid: str, url: str, proxy_name: str | None,
                  proxy_url: str | None, token_ref: str | None) -> GitMirrorError:
    """Turn a failed git-over-https process into an error that says what to fix."""
    low = (exc.stderr or "").lower()
    scheme = url_kind(url)
    at = Where(f"transport {scheme}", {"transport": scheme, "url": url})
    if proxy_name and _proxy_failed(low, proxy_url):
        return failure_error(
            exc, rid, f"upstream {url} is reached only through the declared proxy {proxy_name} "
            f"({proxy_url}), and the proxy failed or refused; no direct connection was tried",
            f"make proxy {proxy_name} ({proxy_url}) reachable and allow the upstream host (or "
            f"change proxies.{proxy_name} in the YAML), then run: {retry_command(exc, rid)}",
            unreachable=False, where=at)
    what = (f"the declared token ({token_ref})" if token_ref
            else "anonymous access (no token declared)")
    return explain(exc, rid, HTTPS_FAILURES, text=low, context={"url": url, "what": what},
                   where=at)
