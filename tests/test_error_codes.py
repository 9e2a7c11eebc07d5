"""Error codes that say what happened, hints that move forward, and the one registry of codes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from git_mirror.errors import (
    ERROR_CODES,
    WARNING_CODES,
    Code,
    ConfigError,
    GitError,
    GitMirrorError,
    TransportError,
    WarningCode,
)
from tests.support.cli import CliResult
from tests.support.gitutil import Repo

Cli = Callable[..., CliResult]
SRC = Path(__file__).resolve().parent.parent / "src" / "git_mirror"
ERRORS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
# code="x", code = "x" (class attributes), "code": "x" (error objects built as dicts), and
# code") or "x" (a fallback code for an error read back from a Job or a record): every one of
# these spellings is a string literal where a member of the registry belongs.
PATTERNS = [re.compile(r'\bcode\s*[:=]\s*"([a-z][a-z0-9-]*)"'),
            re.compile(r'"code":\s*"([a-z][a-z0-9-]*)"'),
            re.compile(r'code"\)\s*or\s*"([a-z][a-z0-9-]*)"')]


def literal_codes() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                found.setdefault(m.group(1), []).append(f"{path.relative_to(SRC)}:{line}")
    return found


def test_no_code_is_a_string_literal_in_src() -> None:
    found = literal_codes()
    assert not found, f"codes spelled as strings instead of Code/WarningCode members: {found}"


def test_every_member_of_the_registry_is_raised_somewhere_and_has_a_meaning() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SRC.rglob("*.py"))
                     if p.name != "errors.py")
    errors_py = (SRC / "errors.py").read_text(encoding="utf-8")
    for member in Code:
        assert ERROR_CODES[member], member
        used = f"Code.{member.name}" in text or errors_py.count(f"Code.{member.name}") > 1
        assert used, f"{member} is in the registry but nothing raises it"
    for warning in WarningCode:
        assert WARNING_CODES[warning], warning
        assert f"WarningCode.{warning.name}" in text, f"{warning} is never emitted"
    for cls in _subclasses(GitMirrorError):
        assert isinstance(cls.code, Code), cls


def test_a_code_read_back_from_a_job_is_parsed_into_the_registry() -> None:
    assert Code.parse("run-failed", Code.JOB_FAILED) is Code.RUN_FAILED
    assert Code.parse(None, Code.JOB_FAILED) is Code.JOB_FAILED
    assert Code.parse("no-such-code", Code.JOB_FAILED) is Code.JOB_FAILED
    assert GitMirrorError("x", code=Code.BUSY).to_json()["code"] == "busy"


def test_the_errors_page_documents_every_error_and_warning_code() -> None:
    text = ERRORS_PAGE.read_text(encoding="utf-8")
    errors = text[text.index("<!-- BEGIN GENERATED error-codes"):
                  text.index("<!-- END GENERATED error-codes")]
    warnings = text[text.index("<!-- BEGIN GENERATED warning-codes"):
                    text.index("<!-- END GENERATED warning-codes")]
    for code, meaning in ERROR_CODES.items():
        assert f"| `{code}` | {2 if code in (Code.CONFIG, Code.USAGE) else 1} | {meaning} |" \
            in errors, code
    for warning, meaning in WARNING_CODES.items():
        assert f"| `{warning}` | {meaning} |" in warnings, warning


def _subclasses(cls: type[GitMirrorError]) -> list[type[GitMirrorError]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def test_an_unreachable_file_upstream_is_upstream_unreachable(
        cli: Cli, upstream: Repo, mirror: Repo) -> None:
    assert cli("--json", "sync", "--confirm").code == 0
    before = mirror.refs()
    upstream.path.rename(upstream.path.with_name("moved.git"))
    res = cli("--json", "sync", "--confirm")
    assert res.code == 1, res.stdout
    err = res.json["error"]
    assert err["code"] == "upstream-unreachable"
    assert upstream.url in err["message"] and "transport file" in err["message"]
    assert err["transport"] == "file" and err["url"] == upstream.url
    # the hint says what to fix before the retry, not only the same failing command
    assert err["hint"].startswith(f"restore {upstream.path}")
    assert "repositories.hwlab.upstream" in err["hint"]
    assert err["hint"].endswith("git-mirror sync --repo hwlab --confirm --wait")
    assert mirror.refs() == before


@pytest.mark.parametrize(("stderr", "code"), [
    ("ssh: connect to host h port 443: Connection refused", "upstream-unreachable"),
    ("ssh: Could not resolve hostname h: Name or service not known", "upstream-unreachable"),
    ("kex_exchange_identification: Connection closed by remote host", "upstream-unreachable"),
    ("fatal: '/x.git' does not appear to be a git repository", "upstream-unreachable"),
    ("git@h: Permission denied (publickey).", "transport"),
    ("Host key verification failed.", "transport"),
])
def test_ssh_failures_say_whether_upstream_or_the_declared_path_failed(stderr: str,
                                                                       code: str) -> None:
    from git_mirror.transport import ssh

    exc = GitError("git ls-remote failed", stderr=stderr, returncode=128)
    out = ssh.explain_ssh(exc, rid="r", target=ssh.SshTarget("git", "h", 443), proxy_name=None,
                          proxy_url=None, identity_ref="file:id", known_hosts_ref="file:kh",
                          url="ssh://git@h:443/x.git")
    assert isinstance(out, TransportError) and out.code == code
    if code == "upstream-unreachable":
        assert "upstream ssh://git@h:443/x.git, transport ssh" in out.message
        assert out.hint and out.hint.endswith("git-mirror sync --repo r --confirm --wait")


def test_https_upstream_unreachable_names_url_and_transport() -> None:
    from git_mirror.transport.https import explain_https

    exc = GitError("git ls-remote failed", returncode=128,
                   stderr="fatal: unable to access 'https://h/r.git/': Failed to connect to h "
                          "port 443 after 3 ms: Couldn't connect to server")
    out = explain_https(exc, rid="r", url="https://h/r.git", proxy_name=None, proxy_url=None,
                        token_ref=None)
    assert out.code == "upstream-unreachable"
    assert "https://h/r.git" in out.message and "transport https" in out.message


def test_before_the_first_sync_no_flag_says_in_sync(cli: Cli, mirror: Repo) -> None:
    assert cli("--json", "apply", "--confirm").code == 0
    st = cli("--json", "status").json
    repo = st["repositories"][0]
    assert st["githubInSync"] is False and repo["githubInSync"] is False
    assert repo["lanes"] and all(ln["githubInSync"] is False for ln in repo["lanes"])
    assert all(s["githubInSync"] is False for s in repo["sources"])
    assert cli("--json", "sync", "--confirm").code == 0
    st = cli("--json", "status").json
    repo = st["repositories"][0]
    assert st["githubInSync"] is True
    assert all(ln["githubInSync"] is True for ln in repo["lanes"])
    assert all(s["githubInSync"] is True for s in repo["sources"])


def test_with_hint_gives_a_copy_and_leaves_the_raised_error_as_it_was() -> None:
    raised = GitError("fetch failed", argv=["git", "fetch"], returncode=128, stderr="fatal: x")
    hinted = raised.with_hint("git-mirror sync --repo hwlab --confirm --wait")
    assert raised.hint is None
    assert type(hinted) is GitError and hinted is not raised
    assert hinted.to_json() == {**raised.to_json(),
                                "hint": "git-mirror sync --repo hwlab --confirm --wait"}
    config = ConfigError("bad key", file="g.yaml", line=3, key="a.b").with_hint("fix it")
    assert (config.message, config.file, config.line, config.hint) == (
        "g.yaml:3: a.b: bad key", "g.yaml", 3, "fix it")
