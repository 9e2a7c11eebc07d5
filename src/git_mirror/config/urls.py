"""Upstream and proxy URLs, parsed in one place with one set of rules.

An upstream is written in one of three forms, each one git itself accepts:

- a URL ``scheme://[user[:password]@]host[:port]/path`` (``ssh``, ``https``, ``http``,
  ``file``); the host as ``urllib.parse`` reads it (lower case, ``[...]`` brackets off); the
  path of an ssh or file URL as git reads it (%-decoded, ``?`` and ``#`` in it; ``/~user``
  on a remote host as ``~user``), of an http(s) one as curl does (no query, no fragment);
- scp-like ``user@host:path`` (ssh), user and host of letters, digits, ``.``, ``_`` and ``-``;
  the path is what follows the first colon (``git@github.com:org/repo.git`` -> ``org/repo.git``),
  the host as written (ssh is given it so);
- an absolute local path ``/srv/git/repo.git`` (file).

:func:`parse_url` returns a :class:`GitUrl` or raises :class:`UrlError`, whose message says
which part is wrong. What a *declared* upstream must also be (a host for ssh and http(s), a
scheme that agrees with ``transport.mode``) is a rule of :mod:`git_mirror.config.checks`.

A proxy is ``http://HOST:PORT``: :func:`parse_proxy_url`. Where serve listens,
``server.listen``, is ``HOST:PORT`` (``[::1]:8080`` too): :func:`parse_listen`.

Pure functions of the text: no I/O and no import from the rest of the package, so that every
layer (config checks, transports, the server's webhook matching, kubernetes rendering) uses
the same parse. The CONNECT tunnel (:mod:`git_mirror.transport.tunnel`) is the one exception:
it runs as a standalone script, so it reads the proxy URL (validated here first) itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, unquote, urlsplit

# user@host:path, as config checks have always accepted it (git accepts more: no user, a
# [bracketed] host; git-mirror asks for the explicit form).
_SCP = re.compile(r"^([A-Za-z0-9._-]+)@([A-Za-z0-9._-]+):(.*)$", re.DOTALL)
# Schemes git reads itself (connect.c): it %-decodes the URL, and "?" and "#" are part of
# the path. http(s) goes through curl, which reads them as any URL's query and fragment.
GIT_NATIVE = frozenset({"ssh", "git+ssh", "ssh+git", "git", "file"})
DEFAULT_PORTS = {"ssh": 22, "https": 443, "http": 80}
# The schemes whose URL must name a host (a file:// URL names none).
NEEDS_HOST = frozenset(DEFAULT_PORTS)


class UrlError(ValueError):
    """The text is none of the accepted forms, or a part of it cannot be read.

    The message says which, and never repeats the URL (it may carry a password): callers
    name it as they see fit, e.g. ``f"the upstream URL {exc}"``.
    """


@dataclass(frozen=True)
class GitUrl:
    """One upstream URL, taken apart.

    ``form`` is ``url`` (``scheme://...``), ``scp`` (``user@host:path``) or ``path`` (an
    absolute local path). ``scheme`` is lower case: the URL's own, ``ssh`` for the scp-like
    form, ``file`` for a path. ``host`` is None when the URL names none (``file:///...``).
    ``path`` is what git asks the server for: with its leading ``/`` in a URL (but see the
    module doc for ssh and file URLs), as written after the colon in the scp-like form.
    """

    form: Literal["url", "scp", "path"]
    scheme: str
    path: str
    user: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def kind(self) -> str:
        """How config checks name the form: the scheme, but ``scp`` for ``user@host:path``."""
        return "scp" if self.form == "scp" else self.scheme

    @property
    def effective_port(self) -> int | None:
        """The port named, else the scheme's default (22, 443, 80); None for ``file``."""
        return self.port if self.port is not None else DEFAULT_PORTS.get(self.scheme)


def parse_url(url: str) -> GitUrl:
    """Take an upstream URL apart; :class:`UrlError` when it is none of the three forms."""
    if is_url(url):
        parts = _split(url)
        scheme = parts.scheme.lower()
        path = _native_path(url, scheme) if scheme in GIT_NATIVE else parts.path
        return GitUrl("url", scheme, path, user=parts.username, password=parts.password,
                      host=parts.hostname, port=parts.port)
    if url.startswith("/"):
        return GitUrl("path", "file", url)
    m = _SCP.match(url)
    if m is None:
        raise UrlError("is neither scheme://host/path, user@host:path nor an absolute path")
    return GitUrl("scp", "ssh", _home(m.group(3)), user=m.group(1), host=m.group(2))


def is_url(text: str) -> bool:
    """True when ``text`` is of the URL form: it has ``://`` (whether or not it parses).

    git itself reads ``git@host:a://b`` as scp-like, path ``a://b``; git-mirror has always
    taken such text for a URL (with no valid scheme, so no transport's), and still does.
    """
    return "://" in text


def url_kind(url: str) -> str:
    """:attr:`GitUrl.kind` of ``url`` (``ssh``, ``https``, ``http``, ``file``, ``scp``, ...),
    or ``unknown`` when it cannot be parsed."""
    try:
        return parse_url(url).kind
    except UrlError:
        return "unknown"


def url_path(url: str) -> str:
    """The path of ``url`` without leading or trailing slashes; the text itself (stripped the
    same way) when it is none of the forms.

    ``ssh://git@host:443/org/repo.git`` -> ``org/repo.git``; ``git@host:org/repo`` ->
    ``org/repo``; ``/srv/git/repo.git`` -> ``srv/git/repo.git``.
    """
    try:
        path = parse_url(url).path
    except UrlError:
        path = url
    return path.strip("/")


def file_url(url: str) -> str:
    """``url`` as a ``file://`` URL when it is a local path, else as it is."""
    return url if is_url(url) else "file://" + url


@dataclass(frozen=True)
class ProxyUrl:
    """A declared ``http://HOST:PORT`` proxy; ``user``/``password`` only to refuse them."""

    host: str
    port: int
    user: str | None = None
    password: str | None = None

    @property
    def hostport(self) -> str:
        """``HOST:PORT`` as written after ``http://`` (what git's ``http.proxy`` takes); an IPv6
        host in brackets, ``[::1]:3128``, as a URL has it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_proxy_url(url: str) -> ProxyUrl:
    """Take ``http://HOST:PORT`` apart; :class:`UrlError` for anything else (another scheme,
    no host, no port, a port that is not a number from 1 to 65535)."""
    parts = _split(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise UrlError("is not http://HOST:PORT")
    return ProxyUrl(parts.hostname, parts.port, parts.username, parts.password)


@dataclass(frozen=True)
class Listen:
    """An address to listen on: its host (without ``[...]``) and port."""

    host: str
    port: int


def parse_listen(text: str) -> Listen:
    """``HOST:PORT`` (an IPv6 host in brackets, ``[::1]:8080``) as a :class:`Listen`; a
    :class:`UrlError` when there is no host or the port is not a number."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UrlError("expected HOST:PORT, e.g. 127.0.0.1:8080")
    return Listen(host.strip("[]"), int(port))


def _native_path(url: str, scheme: str) -> str:
    """The path of a URL git reads itself: all after the host, %-decoded, ``?`` and ``#``
    included (and ``/~`` read as ``~`` on a remote host, see :func:`_home`)."""
    rest = url.split("://", 1)[1]
    slash = rest.find("/")
    path = unquote(rest[slash:]) if slash >= 0 else ""
    return path if scheme == "file" else _home(path)


def _home(path: str) -> str:
    """``/~user/x`` on a remote host is ``~user/x``, relative to a home directory, as git
    hands it to the server."""
    return path[1:] if path.startswith("/~") else path


def _split(url: str) -> SplitResult:
    """``urlsplit`` with its port read once: every error of either is a :class:`UrlError`."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise UrlError(f"cannot be parsed: {exc}") from None
    return parts
