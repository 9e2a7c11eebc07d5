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
from git_mirror.errors import GitError, GitMirrorError, TransportError, UpstreamUnreachable
from git_mirror.git.remote import RemoteEnv
from git_mirror.redact import remember
from git_mirror.transport.files import private_dir, write_private
from git_mirror.transport.hints import retry_command

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


def https_remote(cfg: LoadedConfig, rid: str, proxy_name: str | None, proxy: Proxy | None) -> RemoteEnv:
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


def explain_https(exc: GitError, *, rid: str, url: str, proxy_name: str | None,
                  proxy_url: str | None, token_ref: str | None) -> GitMirrorError:
    """Turn a failed git-over-https process into an error that says what to fix."""
    text = exc.stderr or ""
    retry = retry_command(exc, rid)
    details = {"stderr": text[-2000:], "exitCode": exc.returncode}

    def fail(message: str, hint: str) -> TransportError:
        return TransportError(f"{rid}: {message}", hint=hint, details=details)

    low = text.lower()
    proxy_port = f"port {parse_proxy_url(proxy_url).port}" if proxy_url else None
    proxy_failed = ("from proxy" in low or "connect tunnel failed" in low
                    or "could not resolve proxy" in low
                    or (proxy_port is not None and proxy_port in low and "failed to connect" in low))
    if proxy_name and proxy_failed:
        return fail(f"upstream {url} is reached only through the declared proxy {proxy_name} "
                    f"({proxy_url}), and the proxy failed or refused; no direct connection was tried",
                    f"make proxy {proxy_name} ({proxy_url}) reachable and allow the upstream host "
                    f"(or change proxies.{proxy_name} in the YAML), then run: {retry}")
    if "authentication failed" in low or "returned error: 401" in low or "returned error: 403" in low \
            or "could not read username" in low or "could not read password" in low:
        what = f"the declared token ({token_ref})" if token_ref else "anonymous access (no token declared)"
        return fail(f"upstream {url} rejected {what}",
                    "check that the token is valid and may read (and, for flush, write) the "
                    f"repository; git-mirror status shows its fingerprint; then run: {retry}")
    if ("ssl certificate" in low or "certificate verif" in low or "ssl_connect" in low
            or "no alternative certificate subject name" in low):
        return fail(f"the TLS certificate of {url} could not be verified",
                    "declare the issuing CA as transport.caBundle if it is a private CA, "
                    f"then run: {retry}")
    scheme = url_kind(url)

    def unreachable(message: str, hint: str) -> UpstreamUnreachable:
        return UpstreamUnreachable(f"{rid}: {message} (transport {scheme})", hint=hint,
                                   details={**details, "transport": scheme, "url": url})

    if "failed to connect" in low or "couldn't connect" in low or "connection refused" in low:
        return unreachable(f"upstream {url} cannot be reached",
                           f"check that the host accepts HTTPS (or fix repositories.{rid}."
                           f"upstream), then run: {retry}")
    if "could not resolve host" in low:
        return unreachable(f"the upstream host of {url} cannot be resolved",
                           f"fix repositories.{rid}.upstream (or DNS), then run: {retry}")
    if "returned error: 404" in low or "repository not found" in low \
            or ("not found" in low and "repository" in low):
        return unreachable(f"upstream {url} has no repository there (or none this token "
                           "may read: a forge answers 'not found' for a private one)",
                           f"fix repositories.{rid}.upstream, or check what the token may "
                           f"read, then run: {retry}")
    if exc.hint is None:
        exc.hint = retry
    return exc
