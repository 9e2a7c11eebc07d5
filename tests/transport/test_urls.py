"""The one URL parser (:mod:`git_mirror.config.urls`): every form, its errors, and agreement
with git's own reading of the same text (``git fetch-pack --diag-url``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from git_mirror.config.urls import (
    GitUrl,
    Listen,
    UrlError,
    file_url,
    parse_listen,
    parse_proxy_url,
    parse_url,
    url_kind,
    url_path,
)


@pytest.mark.parametrize(("text", "want"), [
    ("ssh://git@ssh.github.com:443/example/hwlab.git",
     GitUrl("url", "ssh", "/example/hwlab.git", user="git", host="ssh.github.com", port=443)),
    ("ssh://host/x.git", GitUrl("url", "ssh", "/x.git", host="host")),
    ("SSH://git@[::1]:2222/x.git", GitUrl("url", "ssh", "/x.git", user="git", host="::1",
                                          port=2222)),
    ("git@github.com:example/hwlab.git",
     GitUrl("scp", "ssh", "example/hwlab.git", user="git", host="github.com")),
    ("git@GitHub.com:/abs/x.git", GitUrl("scp", "ssh", "/abs/x.git", user="git",
                                         host="GitHub.com")),
    ("git@h:/~u/x.git", GitUrl("scp", "ssh", "~u/x.git", user="git", host="h")),
    ("ssh://h/~u/x%20y.git#1", GitUrl("url", "ssh", "~u/x y.git#1", host="h")),
    ("https://h/x%20y.git?q#f", GitUrl("url", "https", "/x%20y.git", host="h")),
    ("file:///srv/~x/a%23b", GitUrl("url", "file", "/srv/~x/a#b")),
    # Text with "://" is taken for a URL (git would read it as scp-like): no scheme here.
    ("git@host:a://b", GitUrl("url", "", "git@host:a://b")),
    ("https://github.com/example/web.git", GitUrl("url", "https", "/example/web.git",
                                                  host="github.com")),
    ("https://u:p@h.example:8443/r", GitUrl("url", "https", "/r", user="u", password="p",
                                            host="h.example", port=8443)),
    ("http://127.0.0.1:9/x.git", GitUrl("url", "http", "/x.git", host="127.0.0.1", port=9)),
    ("file:///srv/git/x.git", GitUrl("url", "file", "/srv/git/x.git")),
    ("/srv/git/x.git", GitUrl("path", "file", "/srv/git/x.git")),
])
def test_every_form_is_taken_apart(text: str, want: GitUrl) -> None:
    assert parse_url(text) == want


@pytest.mark.parametrize(("text", "kind", "port"), [
    ("ssh://h/x", "ssh", 22), ("ssh://h:2222/x", "ssh", 2222), ("git@h:x", "scp", 22),
    ("https://h/x", "https", 443), ("http://h/x", "http", 80), ("file:///x", "file", None),
    ("/x", "file", None),
])
def test_kind_and_effective_port(text: str, kind: str, port: int | None) -> None:
    url = parse_url(text)
    assert (url.kind, url.effective_port) == (kind, port)
    assert url_kind(text) == kind


@pytest.mark.parametrize(("text", "words"), [
    ("host:org/repo", "is neither"),           # git reads it as ssh; git-mirror wants user@
    ("git@[::1]:org/repo", "is neither"),      # a bracketed host only in ssh://
    ("repo.git", "is neither"),                # a relative path
    ("", "is neither"),
    ("ssh://u:s3cret@h:4x3/r", "cannot be parsed: Port could not be cast"),
    ("ssh://h:99999/r", "cannot be parsed: Port out of range"),
    ("ssh://[::1/r", "cannot be parsed: Invalid IPv6 URL"),
])
def test_what_is_not_a_url_is_a_named_error_without_the_text(text: str, words: str) -> None:
    with pytest.raises(UrlError, match=words) as info:
        parse_url(text)
    assert "s3cret" not in str(info.value)
    assert url_kind(text) == "unknown"


@pytest.mark.parametrize(("text", "path"), [
    ("ssh://git@ssh.github.com:443/example/hwlab.git", "example/hwlab.git"),
    ("git@github.com:example/hwlab", "example/hwlab"),
    ("https://github.com/example/hwlab/", "example/hwlab"),
    ("file:///srv/git/hwlab.git", "srv/git/hwlab.git"),
    ("/srv/git/hwlab.git", "srv/git/hwlab.git"),
    ("relative/repo.git/", "relative/repo.git"),  # none of the forms: the text, stripped
])
def test_url_path(text: str, path: str) -> None:
    assert url_path(text) == path


def test_file_url() -> None:
    assert file_url("/srv/x.git") == "file:///srv/x.git"
    assert file_url("file:///srv/x.git") == "file:///srv/x.git"


def test_proxy_url() -> None:
    proxy = parse_proxy_url("http://127.0.0.1:3128")
    assert (proxy.host, proxy.port, proxy.user, proxy.password) == ("127.0.0.1", 3128, None, None)
    assert proxy.hostport == "127.0.0.1:3128"
    with_auth = parse_proxy_url("http://u:p@proxy.example:8080")
    assert (with_auth.user, with_auth.password) == ("u", "p")


@pytest.mark.parametrize(("text", "words"), [
    ("https://p:3128", "is not http://HOST:PORT"), ("http://p", "is not http://HOST:PORT"),
    ("http://:3128", "is not http://HOST:PORT"), ("http://p:0", "is not http://HOST:PORT"),
    ("p:3128", "is not http://HOST:PORT"), ("", "is not http://HOST:PORT"),
    ("http://p:31x8", "cannot be parsed: Port could not be cast"),
    ("http://[::1:3128", "cannot be parsed: Invalid IPv6 URL"),
])
def test_a_proxy_url_is_http_host_port_only(text: str, words: str) -> None:
    with pytest.raises(UrlError, match=words):
        parse_proxy_url(text)


# --- agreement with git ------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
users = st.builds(lambda a, b: a + b, st.sampled_from(_ALNUM),
                  st.text(_ALNUM + "._-", max_size=8))
labels = st.builds(lambda a, b: a + b, st.sampled_from(_ALNUM), st.text(_ALNUM + "-", max_size=6))
hosts = st.lists(labels, min_size=1, max_size=3).map(".".join)
segments = st.builds(lambda a, b: a + b, st.sampled_from(_ALNUM + "._-"),
                     st.text(_ALNUM + "._-", max_size=8))
# Characters whose reading differs between git and a generic URL parser: git %-decodes an
# ssh:// or file:// URL, and "?" and "#" are part of its path.
odd_segments = st.lists(st.sampled_from([*"ghijkl", "#", "?", "%20", "%41", "%7e", "%", " ",
                                         "~"]),
                        min_size=1, max_size=6).map("".join)
# git refuses a path (or host) that begins with "-" ("strange pathname blocked"): an option
# in disguise. Both forms here are ones git reads.
paths = st.lists(segments, min_size=1, max_size=4).map("/".join).filter(
    lambda p: not p.startswith("-"))
ports = st.none() | st.integers(min_value=1, max_value=65535)


@pytest.fixture(scope="module")
def git_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("diag") / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, timeout=30)
    return path


def git_reading(git_dir: Path, text: str) -> dict[str, str]:
    """What git itself makes of ``text``: the ``Diag:`` lines of ``fetch-pack --diag-url``."""
    out = subprocess.run(["git", "--git-dir", str(git_dir), "fetch-pack", "--diag-url", text],
                         capture_output=True, text=True, timeout=30, check=True,
                         env={"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1",
                              "HOME": str(git_dir)}).stdout
    fields = dict(line.removeprefix("Diag: ").split("=", 1) for line in out.splitlines())
    assert fields["url"] == text
    return fields


@settings(max_examples=40, deadline=None)
@given(user=st.none() | users, host=hosts, port=ports, path=paths)
def test_an_ssh_url_round_trips_and_git_reads_it_the_same(
        git_dir: Path, user: str | None, host: str, port: int | None, path: str) -> None:
    text = f"ssh://{user + '@' if user else ''}{host}{f':{port}' if port else ''}/{path}"
    url = parse_url(text)
    assert url == GitUrl("url", "ssh", "/" + path, user=user, host=host.lower(), port=port)
    git = git_reading(git_dir, text)
    assert git["protocol"] == "ssh"
    assert git["userandhost"].lower() == (f"{user}@{host}" if user else host).lower()
    assert git["port"] == (str(port) if port else "NONE")
    assert git["path"] == url.path


@settings(max_examples=40, deadline=None)
@given(user=users, host=hosts, path=paths, absolute=st.booleans(), home=st.booleans())
def test_an_scp_url_round_trips_and_git_reads_it_the_same(
        git_dir: Path, user: str, host: str, path: str, absolute: bool, home: bool) -> None:
    path = ("/" if absolute else "") + ("~" if home else "") + path
    text = f"{user}@{host}:{path}"
    url = parse_url(text)
    # A home directory (~) is relative to it: git drops the "/" before it.
    want = path.removeprefix("/") if absolute and home else path
    assert url == GitUrl("scp", "ssh", want, user=user, host=host)
    git = git_reading(git_dir, text)
    assert git["protocol"] == "ssh"
    assert git["userandhost"] == f"{user}@{host}"
    assert git["port"] == "NONE"
    assert git["path"] == url.path


@settings(max_examples=20, deadline=None)
@given(path=paths, as_url=st.booleans())
def test_a_local_path_or_file_url_is_read_as_git_reads_it(
        git_dir: Path, path: str, as_url: bool) -> None:
    text = f"file:///{path}" if as_url else f"/{path}"
    url = parse_url(text)
    assert (url.scheme, url.path, url.host) == ("file", "/" + path, None)
    git = git_reading(git_dir, text)
    assert (git["protocol"], git["path"]) == ("file", url.path)


@settings(max_examples=40, deadline=None)
@given(scheme=st.sampled_from(["ssh://git@h", "file://"]), path=st.lists(
    odd_segments, min_size=1, max_size=3).map("/".join))
def test_the_path_of_an_ssh_or_file_url_is_the_one_git_reads(
        git_dir: Path, scheme: str, path: str) -> None:
    text = f"{scheme}/{path}"
    git = git_reading(git_dir, text)
    assert git["path"] == parse_url(text).path
    assert url_path(text) == git["path"].strip("/")


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:8080", Listen("127.0.0.1", 8080)), ("0.0.0.0:80", Listen("0.0.0.0", 80)),
    ("[::1]:8080", Listen("::1", 8080)), ("mirror.internal:9000", Listen("mirror.internal", 9000)),
])
def test_a_listen_address_is_host_and_port(text: str, want: Listen) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["8080", ":8080", "127.0.0.1:", "127.0.0.1:http", "h:80x", ""])
def test_a_listen_address_without_host_or_numeric_port_is_refused(text: str) -> None:
    with pytest.raises(UrlError, match=r"expected HOST:PORT, e\.g\. 127\.0\.0\.1:8080"):
        parse_listen(text)


@pytest.mark.parametrize(("url", "hostport"), [
    ("http://127.0.0.1:3128", "127.0.0.1:3128"), ("http://proxy.corp:8080", "proxy.corp:8080"),
    ("http://[::1]:3128", "[::1]:3128"), ("http://[fd00::5]:80", "[fd00::5]:80"),
])
def test_a_proxy_is_given_to_git_as_a_url_would_write_it(url: str, hostport: str) -> None:
    proxy = parse_proxy_url(url)
    assert proxy.hostport == hostport
    assert parse_proxy_url(f"http://{proxy.hostport}") == proxy  # it reads back the same
