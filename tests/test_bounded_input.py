"""Hostile or broken input is refused clearly and quickly: configs, secrets, ref names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult, run_cli
from tests.support.gitutil import Repo
from tests.support.server import write_server_config

Cli = Callable[..., CliResult]

REF_NAMES = [
    "refs/heads/main", "refs/heads/-main", "refs/heads/--upload-pack=x", "main", "refs/heads/a..b",
    "refs/heads/a/.b", "refs/heads/.a", "refs/heads/a.lock", "refs/heads/a.lock/b", "refs/heads/a/",
    "/refs/heads/a", "refs//heads/a", "refs/heads/a.", "refs/heads/a@{b", "refs/heads/a@b", "@",
    "refs/heads/@", "refs/heads/a b", "refs/heads/a~1", "refs/heads/a^", "refs/heads/a:b",
    "refs/heads/a?", "refs/heads/a[", "refs/heads/a\\b", "refs/heads/a*", "refs/heads/a*b*",
    "refs/heads/\x7f", "refs/heads/a\tb", "refs/heads/\u00e9t\u00e9", "refs/heads/a.b",
    "refs/heads/a/b/c", "refs/heads/.lock", "refs/heads/x.lockx", "refs/heads/a/.",
    "refs/heads/a/..", "refs/heads/-", "refs/heads/HEAD", "refs/heads/{x}", "refs/heads/@{",
    "refs/.heads/a", "refs/heads/a/b.lock/c", "refs/heads/a,b", "refs/heads/a#b", "refs/heads/a!b",
    "refs/heads/a;b", "refs/heads/a'b", 'refs/heads/a"b', "refs/heads/a|b", "refs/heads/a<b>",
]
BRANCHES = ["main", "-main", "--upload-pack=x", "HEAD", "a..b", "release/1.0", "a.lock", "x/.y",
            "a b", "feature/x-y", "@", "a@b", "\u00e9", "a/", "-", "x-", "a//b", "a.", "a~b"]


def _git_accepts(*args: str) -> bool:
    return subprocess.run(["git", "check-ref-format", *args], capture_output=True).returncode == 0


def test_ref_names_are_judged_exactly_as_git_check_ref_format_does() -> None:
    from git_mirror.refname import branch_problem, refname_problem

    compared = 0
    for name in REF_NAMES:
        for flags, kwargs in (((), {}), (("--refspec-pattern",), {"pattern": True}),
                              (("--allow-onelevel",), {"allow_onelevel": True})):
            assert (refname_problem(name, **kwargs) is None) == _git_accepts(*flags, name), \
                (name, flags)
            compared += 1
    for branch in BRANCHES:
        assert (branch_problem(branch) is None) == _git_accepts("--branch", branch), branch
        compared += 1
    assert compared == 3 * len(REF_NAMES) + len(BRANCHES)


@pytest.mark.parametrize("branch", ["-main", "--upload-pack=x", "a..b", "HEAD", "x.lock"])
def test_validate_refuses_a_source_branch_git_would_refuse(
        write_config: Callable[..., Path], upstream: Repo, branch: str) -> None:
    config = write_config(f"""\
        version: 1
        repositories:
          hwlab:
            upstream: {upstream.url}
            transport: {{mode: file}}
            sources:
              - branch: main
              - branch: "{branch}"
        """)
    res = run_cli("--config", config, "--json", "validate")
    assert res.code == 2, res.stdout
    err = res.json["error"]
    assert err["code"] == "config" and err["key"] == "repositories.hwlab.sources[1].branch"
    assert "check-ref-format" in err["message"] and err["line"] == 8


@pytest.mark.parametrize("lane", ["-deploy", "--upload-pack=x", "gitops/v03.lock"])
def test_validate_refuses_a_lane_git_would_refuse(
        write_config: Callable[..., Path], upstream: Repo, lane: str) -> None:
    config = write_config(f"""\
        version: 1
        repositories:
          hwlab:
            upstream: {upstream.url}
            transport: {{mode: file}}
            sources: [{{branch: main}}]
            lanes:
              v03: {{ref: "{lane}"}}
        """)
    res = run_cli("--config", config, "--json", "validate")
    assert res.code == 2 and res.json["error"]["key"] == "repositories.hwlab.lanes.v03.ref"


BOMB = """\
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _refused_quickly(config: Path, what: str, *, within: float = 20.0) -> dict[str, object]:
    """validate in a fresh process: exit 2, a config error naming the file, in good time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "git_mirror.cli.main", "--config", str(config),
                           "--json", "validate"], capture_output=True, text=True, env=env,
                          timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    err = json.loads(proc.stdout)["error"]
    assert err["code"] == "config" and err["file"] == str(config)
    assert what in err["message"]
    assert elapsed < within, elapsed
    return dict(err)


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB, encoding="utf-8")
    assert len(BOMB) < 1024
    _refused_quickly(config, "aliases")


def test_many_aliases_past_the_bound_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "loop.yaml"
    config.write_text("version: 1\nx: &x {a: 1}\ny: &y [*x, *x]\n"
                      "z: &z {k: [*y, *y, *y]}\n" + "w: [" + ", ".join(["*z"] * 9000) + "]\n",
                      encoding="utf-8")
    _refused_quickly(config, "aliases")


def test_a_64_mib_config_is_refused_at_once(tmp_path: Path) -> None:
    config = tmp_path / "huge.yaml"
    with open(config, "wb") as fh:
        fh.write(b"version: 1\n# " + b"x" * (64 << 20) + b"\n")
    _refused_quickly(config, "bytes", within=10.0)


def test_deeply_nested_flow_collections_are_refused_quickly(tmp_path: Path) -> None:
    config = tmp_path / "deep.yaml"
    config.write_text("version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    _refused_quickly(config, "nest")
    block = tmp_path / "block.yaml"
    block.write_text("version: 1\nx:\n  " + "- " * 3000 + "a\n", encoding="utf-8")
    _refused_quickly(block, "nest")


def test_brackets_in_quoted_values_and_comments_do_not_count_as_nesting() -> None:
    from git_mirror.config.loader import flow_depth_exceeds

    text = ("a: '" + "[" * 100 + "'\nb: \"" + "{" * 100 + "\\\"\"\n# " + "[" * 100 + "\n"
            "c: don't [x]\n")
    assert not flow_depth_exceeds(text)
    assert flow_depth_exceeds("x: " + "[" * 65 + "]" * 65)
    assert not flow_depth_exceeds("x: " + "[" * 64 + "]" * 64)


def _secret_config(tmp_path: Path, secret: str) -> Path:
    config = write_server_config(tmp_path / "srv", "/nonexistent/upstream.git")
    text = config.read_text(encoding="utf-8").replace("{file: webhook-secret}",
                                                      "{file: " + secret + "}")
    config.write_text(text, encoding="utf-8")
    return config


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "too-big"])
def test_serve_refuses_a_secret_that_is_not_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    """``serve`` neither hangs (FIFO) nor runs out of memory (/dev/zero): exit 2, config error."""
    secret = {"fifo": str(tmp_path / "secret.fifo"), "dev-zero": "/dev/zero",
              "directory": str(tmp_path), "too-big": str(tmp_path / "big-secret")}[kind]
    if kind == "fifo":
        os.mkfifo(secret)
    if kind == "too-big":
        with open(secret, "wb") as fh:
            fh.truncate(64 << 20)
    config = _secret_config(tmp_path, secret)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "git_mirror.cli.main", "--config", str(config),
                           "--json", "serve"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    err = json.loads(proc.stdout)["error"]
    assert err["code"] == "config" and err["key"] == "server.webhookSecret"
    expected = {"fifo": "FIFO", "dev-zero": "device", "directory": "directory",
                "too-big": "bytes"}[kind]
    assert expected in err["message"]
    assert time.monotonic() - started < 60


def test_status_names_an_unreadable_secret_and_does_not_hang(
        tmp_path: Path, write_config: Callable[..., Path], upstream: Repo) -> None:
    fifo = tmp_path / "token.fifo"
    os.mkfifo(fifo)
    config = write_config(f"""\
        version: 1
        repositories:
          hwlab:
            upstream: https://example.invalid/hwlab.git
            transport: {{mode: https, token: {{file: {fifo}}}}}
            sources: [{{branch: main}}]
        """)
    res = run_cli("--config", config, "--json", "status")
    secrets = res.json["repositories"][0]["secrets"]
    assert secrets[0]["fingerprint"] is None and "FIFO" in secrets[0]["error"]
    sync = run_cli("--config", config, "--json", "sync", "--confirm")
    assert sync.code == 2
    assert sync.json["error"]["code"] == "config"
    assert "FIFO" in sync.json["error"]["message"]


def test_a_config_that_is_a_fifo_or_a_device_neither_hangs_nor_floods(tmp_path: Path) -> None:
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    _refused_quickly(fifo, "empty")  # nobody writes to it: read as empty, not waited for
    err = _refused_quickly(Path("/dev/zero"), "bytes")
    assert err["file"] == "/dev/zero"


def test_a_secret_read_that_does_not_finish_in_time_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A regular file whose read blocks (a hung network file system) is given up on."""
    import threading

    from git_mirror.config.secrets import SecretFileError, read_secret_file

    secret = tmp_path / "token"
    secret.write_text("s3cret\n", encoding="utf-8")
    release = threading.Event()
    real_read = os.read

    def hung_read(fd: int, n: int) -> bytes:
        release.wait(30)  # bounded: the test releases it
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", hung_read)
    started = time.monotonic()
    try:
        with pytest.raises(SecretFileError, match="took more than"):
            read_secret_file(secret, timeout=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 10
    monkeypatch.undo()
    assert read_secret_file(secret) == "s3cret\n"
