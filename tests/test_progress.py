"""Progress on a terminal: ``sync``, ``flush`` and ``apply`` under a real pseudo-terminal.

The command runs as its own process with stderr on a pty (what a person's terminal is) and
stdout on a pipe. Progress is git's own, each line named by the repository, and one summary
line per repository; none of it with ``--json``, with ``-q``, or when stderr is a pipe.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.gitutil import Repo, run_git

TIMEOUT = 120.0


def run_on_pty(config: Path, *args: str, stderr_tty: bool = True) -> tuple[int, str, str]:
    """Run ``git-mirror --config CONFIG ARGS``; stderr on a pty (or a pipe). Bounded in time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    argv = [sys.executable, "-m", "git_mirror.cli.main", "--config", str(config), *args]
    if not stderr_tty:
        proc = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, env=env,
                              stdin=subprocess.DEVNULL, check=False)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    master, slave = pty.openpty()
    proc2 = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=slave, env=env)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no end of output within {TIMEOUT}s: {bytes(seen)[-500:]!r}")
            ready, _, _ = select.select([master], [], [], min(left, 5.0))
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has gone
                break
            if not data:
                break
            seen += data
        out, _ = proc2.communicate(timeout=TIMEOUT)
    finally:
        os.close(master)
        if proc2.poll() is None:
            proc2.kill()
            proc2.wait()
    return proc2.returncode, out.decode(), seen.decode("utf-8", "replace")


@pytest.fixture
def big_upstream(upstream: Repo, tmp_path: Path) -> Repo:
    """The upstream, with a main branch big enough that git reports its transfer (more
    objects than ``fetch.unpackLimit``, so that index-pack receives them)."""
    work = tmp_path / "work"
    run_git("clone", "-q", "--branch", "main", str(upstream.path), str(work))
    for i in range(150):
        (work / f"blob{i}.bin").write_bytes(os.urandom(8 << 10))
    run_git("add", ".", cwd=work)
    run_git("commit", "-qm", "big", cwd=work)
    run_git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=work)
    return upstream


def test_sync_on_a_terminal_shows_gits_progress_named_and_a_summary(
        config: Path, big_upstream: Repo) -> None:
    code, out, term = run_on_pty(config, "sync", "--confirm")
    assert code == 0, term
    received = re.search(r"hwlab: Receiving objects: 100% \(\d+/\d+\)", term)
    assert received, term
    assert "hwlab: remote: Enumerating objects" in term
    assert "hwlab: synced in " in term and "mirror created" in term
    assert received.start() < term.index("hwlab: synced in")
    # stdout stays the result, untouched.
    assert out.startswith("sync\n") and "Receiving" not in out


def test_flush_and_apply_on_a_terminal_say_per_repository_what_they_did(
        config: Path, big_upstream: Repo, tmp_path: Path) -> None:
    code, _, term = run_on_pty(config, "apply", "--confirm")
    assert code == 0, term
    assert "hwlab: created " in term
    code, _, term = run_on_pty(config, "apply", "--confirm")
    assert code == 0 and "hwlab: unchanged" in term
    assert run_on_pty(config, "-q", "sync", "--confirm")[0] == 0
    mirror = Repo.at(config.parent / ".git-mirror" / "repos" / "hwlab.git")
    lane = mirror.commit("gitops/v03", "deploy", files={
        f"deploy{i}.bin": os.urandom(16 << 10).hex() for i in range(20)})
    code, out, term = run_on_pty(config, "flush", "--confirm")
    assert code == 0, term
    assert "hwlab: Writing objects: 100%" in term
    assert "hwlab: flushed in " in term and "pushed gitops/v03" in term
    assert "pendingFlush=false" in out
    assert big_upstream.rev("refs/heads/gitops/v03") == lane


@pytest.mark.parametrize("flags", [["--json"], ["-q"], ["--quiet"]])
def test_json_and_quiet_show_no_progress_on_a_terminal(config: Path, big_upstream: Repo,
                                                       flags: list[str]) -> None:
    code, out, term = run_on_pty(config, *flags, "sync", "--confirm")
    assert code == 0, term
    assert "Receiving objects" not in term and "hwlab:" not in term
    assert term.strip() == ""
    if "--json" in flags:
        assert json.loads(out)["ok"] is True


def test_a_pipe_gets_no_progress(config: Path, big_upstream: Repo) -> None:
    code, out, err = run_on_pty(config, "sync", "--confirm", stderr_tty=False)
    assert code == 0, err
    assert err == ""
    assert out.startswith("sync\n")


def test_a_failure_on_a_terminal_says_why_once_per_repository(config: Path, upstream: Repo,
                                                             tmp_path: Path) -> None:
    upstream.path.rename(tmp_path / "away.git")
    code, _, term = run_on_pty(config, "sync", "--confirm")
    assert code == 1
    assert re.search(r"hwlab: sync FAILED after [\d.]+s \[upstream-unreachable\] ", term), term
    assert term.count("hwlab: sync FAILED") == 1
    assert re.search(r"hint: .*git-mirror sync --repo hwlab --confirm --wait", term), term


def test_repositories_in_threads_get_their_own_names_and_whole_lines() -> None:
    """Repositories worked on at once: each line named by the repository whose git wrote it,
    a line split over reads written whole, and no line of git's other chatter."""
    import io
    import threading

    from git_mirror.git.progress import TerminalProgress, without_progress

    seen = io.StringIO()
    sink = TerminalProgress(seen)
    chunks = [b"remote: Counting objects:  50% (1/2)\r", b"Receiving obj",
              b"ects: 100% (2/2), done.\nFrom file:///up\n", b" * [new ref] main -> main\n"]
    started = threading.Barrier(2, timeout=30)

    def work(rid: str) -> None:
        sink.begin(rid)
        relay = sink.relay()
        started.wait()
        for chunk in chunks:
            relay(chunk)
        sink.done(f"synced {rid}")

    threads = [threading.Thread(target=work, args=(rid,)) for rid in ("alpha", "beta")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    text = seen.getvalue()
    for rid in ("alpha", "beta"):
        assert f"{rid}: remote: Counting objects:  50% (1/2)\x1b[K\r" in text
        assert f"{rid}: Receiving objects: 100% (2/2), done.\n" in text
        assert f"{rid}: synced {rid}\n" in text
    assert "From" not in text and "new ref" not in text
    assert without_progress(b"".join(chunks)) == b"From file:///up\n * [new ref] main -> main\n"
