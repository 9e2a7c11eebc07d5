"""From a failed git process to the error that says what to fix: every transport builds a NEW
error with its code and hint, and leaves the git error it was given as it was."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from git_mirror.errors import GitError, GitMirrorError, GitTimeout
from git_mirror.transport import explain_file, ssh
from git_mirror.transport.failures import Failure
from git_mirror.transport.https import explain_https

Explain = Callable[[GitError], GitMirrorError]


def _ssh(exc: GitError) -> GitMirrorError:
    return ssh.explain_ssh(exc, rid="r", target=ssh.SshTarget("git", "h", 22), proxy_name=None,
                           proxy_url=None, identity_ref="file:id", known_hosts_ref="file:kh",
                           url="ssh://git@h/r.git")


def _https(exc: GitError) -> GitMirrorError:
    return explain_https(exc, rid="r", url="https://h/r.git", proxy_name=None, proxy_url=None,
                         token_ref=None)


def _file(exc: GitError) -> GitMirrorError:
    return explain_file(exc, rid="r", url="file:///srv/r.git", config="c.yaml")


EXPLAINERS = pytest.mark.parametrize("explain", [_ssh, _https, _file], ids=["ssh", "https", "file"])


@EXPLAINERS
@pytest.mark.parametrize("kind", [GitError, GitTimeout])
def test_an_unknown_failure_is_a_new_error_of_its_kind_with_the_retry_hint(
        explain: Explain, kind: type[GitError]) -> None:
    exc = kind("git fetch failed (exit 128): fatal: something else", argv=["git", "fetch"],
               returncode=128, stderr="fatal: something else\n")
    before = exc.to_json()
    out = explain(exc)
    assert out is not exc
    assert type(out) is kind
    assert out.hint == "git-mirror sync --repo r --confirm --wait"
    assert out.to_json() == {**before, "hint": out.hint}
    assert exc.to_json() == before  # the error git raised is unchanged
    assert exc.hint is None


@EXPLAINERS
def test_a_failure_that_has_a_hint_keeps_it(explain: Explain) -> None:
    exc = GitError("git fetch failed", argv=["git", "fetch"], returncode=128,
                   stderr="fatal: something else\n", hint="free space, then run it again")
    assert explain(exc) is exc


@EXPLAINERS
def test_a_recognised_failure_leaves_the_git_error_as_it_was(explain: Explain) -> None:
    stderrs: dict[Explain, str] = {
        _ssh: "ssh: connect to host h port 22: Connection refused\n",
        _https: "fatal: unable to access 'https://h/r.git/': Could not resolve host: h\n",
        _file: "fatal: '/srv/r.git' does not appear to be a git repository\n"}
    stderr = stderrs[explain]
    exc = GitError("git ls-remote failed", argv=["git", "ls-remote"], returncode=128,
                   stderr=stderr)
    before = exc.to_json()
    out = explain(exc)
    assert out.code == "upstream-unreachable"
    assert out.hint is not None
    assert out.hint.endswith("then run: git-mirror sync --repo r --confirm --wait")
    assert exc.to_json() == before


@pytest.mark.parametrize(("stderr", "code", "message"), [
    ("fatal: unable to access 'https://h/r.git/': Failed to connect to h port 443 after 3 ms",
     "upstream-unreachable", "r: upstream https://h/r.git cannot be reached (transport https)"),
    ("fatal: unable to access 'https://h/r.git/': Could not resolve host: h",
     "upstream-unreachable",
     "r: the upstream host of https://h/r.git cannot be resolved (transport https)"),
    ("fatal: unable to access 'https://h/r.git/': The requested URL returned error: 404",
     "upstream-unreachable", "r: upstream https://h/r.git has no repository there"),
    ("remote: Repository not found.\nfatal: repository 'https://h/r.git/' not found",
     "upstream-unreachable", "r: upstream https://h/r.git has no repository there"),
    ("fatal: could not read Username for 'https://h': terminal prompts disabled",
     "transport", "r: upstream https://h/r.git rejected anonymous access (no token declared)"),
])
def test_https_failures_by_kind(stderr: str, code: str, message: str) -> None:
    out = _https(GitError("git ls-remote failed", argv=["git", "ls-remote"], returncode=128,
                          stderr=stderr))
    assert out.code == code
    assert out.message.startswith(message)
    assert out.details["exitCode"] == 128
    if code == "upstream-unreachable":
        assert (out.details["transport"], out.details["url"]) == ("https", "https://h/r.git")


def test_a_failure_row_matches_any_needle_or_all_strings_of_a_tuple() -> None:
    row = Failure(("returned error: 404", ("not found", "repository")), "m", "h")
    assert row.matches("... returned error: 404")
    assert row.matches("repository 'x' not found")
    assert not row.matches("not found")
    assert not row.matches("repository moved")
