"""The git layer: scrubbed environment, atomic ref transactions, O(1) processes per sync."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from git_mirror.errors import GitError
from git_mirror.git import run as gitrun
from git_mirror.git.oid import ZERO
from git_mirror.git.refs import RefTransaction, list_refs
from git_mirror.git.remote import parse_push_porcelain
from git_mirror.redact import Secret, scrub
from tests.conftest import BASE_CONFIG, mirror_repo
from tests.support.cli import run_cli
from tests.support.gitutil import Repo


def test_environment_is_built_from_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in {"GIT_DIR": "/tmp/x", "HTTPS_PROXY": "http://evil:1", "ALL_PROXY": "socks5://evil:2",
                       "GIT_SSH_COMMAND": "evil-ssh", "SSH_AUTH_SOCK": "/tmp/agent",
                       "GIT_CONFIG_PARAMETERS": "'core.hooksPath'='/evil'", "http_proxy": "http://evil:3"}.items():
        monkeypatch.setenv(var, value)
    env = gitrun.git_env()
    assert "GIT_DIR" not in env and "HTTPS_PROXY" not in env and "ALL_PROXY" not in env
    assert "SSH_AUTH_SOCK" not in env
    assert "GIT_CONFIG_PARAMETERS" not in env
    assert "http_proxy" not in env
    assert env["GIT_SSH_COMMAND"] == "/bin/false"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["LC_ALL"] == "C"


def test_hostile_environment_does_not_change_sync(config: Path, upstream: Repo,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "gitconfig").write_text("[url \"file:///nonexistent/\"]\n\tinsteadOf = file://\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(evil / "gitconfig"))
    monkeypatch.setenv("GIT_DIR", str(evil))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'url.file:///nowhere/.insteadof'='file://'")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    res = run_cli("--config", config, "--json", "sync", "--confirm")
    assert res.code == 0, res.stdout
    assert mirror_repo(config).rev("refs/heads/main") == upstream.rev("refs/heads/main")


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "r.git")
    a = repo.commit("main", "a", parent=None)
    b = repo.commit(None, "b", parent=a)
    txn = RefTransaction(repo.path)
    txn.create("refs/new/one", b)
    txn.update("refs/heads/main", b, ZERO[:-1] + "1")  # wrong expected old value
    with pytest.raises(GitError) as info:
        txn.commit()
    assert info.value.code == "conflict"
    assert repo.rev("refs/new/one") is None
    assert repo.rev("refs/heads/main") == a


def test_create_never_moves_an_existing_ref(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "r.git")
    a = repo.commit("main", "a", parent=None)
    b = repo.commit(None, "b", parent=a)
    repo.set_ref("refs/snap/x", a)
    txn = RefTransaction(repo.path)
    txn.create("refs/snap/x", b)
    with pytest.raises(GitError) as info:
        txn.commit()
    assert info.value.code == "conflict"
    assert info.value.message.startswith("the ref transaction was refused, nothing changed: ")
    assert info.value.hint == "run the command again; the refs moved under it"
    assert repo.rev("refs/snap/x") == a


def test_git_failure_keeps_command_exit_code_and_redacted_stderr(tmp_path: Path) -> None:
    secret = Secret("hunter2-canary-value", "env:TEST")
    with pytest.raises(GitError) as info:
        gitrun.git(["rev-parse", "--verify", secret.reveal()], git_dir=tmp_path / "missing.git")
    err = info.value
    assert err.returncode == 128
    assert "hunter2-canary-value" not in str(err.to_json())
    assert "***" in " ".join(err.argv)
    assert scrub("x hunter2-canary-value y") == "x *** y"
    assert "hunter2" not in str(secret) and "hunter2" not in repr(secret)


def test_push_porcelain_parser_rejects_garbage() -> None:
    refs = parse_push_porcelain("To file:///x\n \trefs/heads/a:refs/heads/a\tab..cd\n"
                                "!\trefs/heads/b:refs/heads/b\t[rejected] (stale info)\nDone\n")
    assert [(r.flag, r.dst, r.ok, r.reason) for r in refs] == [
        (" ", "refs/heads/a", True, ""), ("!", "refs/heads/b", False, "stale info")]
    with pytest.raises(GitError, match="unexpected push --porcelain line") as info:
        parse_push_porcelain("something unexpected\n")
    assert info.value.code == "git"


def _sync_process_counts(write_config: Callable[..., Path], upstream: Repo, name: str) -> list[int]:
    """git processes of: the first sync, a no-op sync, a sync after one new commit."""
    cfg = write_config(BASE_CONFIG.format(url=upstream.url), name=name)
    counts = []
    for step in ("first", "noop", "incremental"):
        if step == "incremental":
            upstream.commit("main", "one more")
        before = gitrun.spawned()
        assert run_cli("--config", cfg, "sync", "--confirm").code == 0
        counts.append(gitrun.spawned() - before)
    return counts


def test_git_process_count_does_not_grow_with_refs(write_config: Callable[..., Path],
                                                   tmp_path: Path) -> None:
    small = Repo(tmp_path / "small.git")
    small.commit("main", "a", parent=None)
    small.commit("gitops/v03", "lane", parent=None)
    big = Repo(tmp_path / "big.git")
    big_base = big.commit("main", "a", parent=None)
    big.commit("gitops/v03", "lane", parent=None)
    lines = "".join(f"create refs/heads/release/{i} {big_base}\ncreate refs/tags/t{i} {big_base}\n"
                    for i in range(300))
    big.git("update-ref", "--stdin", input=lines.encode())
    small_counts = _sync_process_counts(write_config, small, "small/git-mirror.yaml")
    big_counts = _sync_process_counts(write_config, big, "big/git-mirror.yaml")
    # The first sync of a big repository adds exactly one git pack-refs.
    assert big_counts[0] == small_counts[0] + 1
    # no-op: one fetch (listing upstream, nothing to transfer), one for-each-ref of upstream's
    # and the mirror's refs, one for-each-ref of the candidate snapshots
    assert small_counts[1] == big_counts[1] == 3
    # one new commit: the same three (the fetch brings the objects), and one update-ref
    assert small_counts[2] == big_counts[2] == 4
    mirror = mirror_repo(tmp_path / "big" / "git-mirror.yaml")
    assert len(list_refs(mirror.path, ["refs/heads/release/"])) == 300
    assert (mirror.path / "packed-refs").exists()


@pytest.mark.parametrize("count", [3, 450])
def test_existing_refs_answers_the_same_by_name_or_by_prefix(tmp_path: Path, count: int) -> None:
    from git_mirror.git.refs import EXACT_NAMES_LIMIT, existing_refs

    repo = Repo(tmp_path / "r.git")
    oid = repo.commit("main", "a", parent=None)
    present = [f"refs/ns/snapshots/g/b/{i:040x}" for i in range(count)]
    repo.git("update-ref", "--stdin",
             input="".join(f"create {r} {oid}\n" for r in present).encode())
    repo.set_ref("refs/ns/snapshots/g/other/x", oid)  # under the prefix, not asked for
    absent = [f"refs/ns/snapshots/g/b/{i:040x}" for i in range(count, count + 5)]
    names = present[::2] + absent
    assert (len(names) > EXACT_NAMES_LIMIT) == (count > 100)
    before = gitrun.spawned()
    found = existing_refs(repo.path, names, "refs/ns/snapshots/")
    assert gitrun.spawned() - before == 1
    assert found == {r: oid for r in present[::2]}
    assert existing_refs(repo.path, [], "refs/ns/snapshots/") == {}
