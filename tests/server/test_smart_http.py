"""Real git clients over HTTP against a real uvicorn: clone, fetch, push, auth."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import httpx
import pytest

from tests.support.gitutil import Repo, run_git
from tests.support.server import (
    CI_TOKEN,
    RO_TOKEN,
    Served,
    prepare_mirror,
    serve_in_thread,
    write_server_config,
)


def bearer(token: str) -> dict[str, str]:
    """git config through the environment: the token stays out of argv and URLs."""
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {token}"}


def lane_commit(tmp_path: Path, served: Served, name: str = "work") -> Path:
    """A clone with one new commit on top of the lane."""
    work = tmp_path / name
    run_git("clone", "-q", "--branch", "gitops/v03", served.repo_url(), str(work))
    (work / "deploy.yaml").write_text(f"image: {name}\n")
    run_git("add", "deploy.yaml", cwd=work)
    run_git("commit", "-qm", f"deploy {name}", cwd=work)
    return work


@pytest.mark.parametrize("protocol", ["2", "0"])
def test_clone_and_fetch_see_the_mirror(tmp_path: Path, served: Served, upstream: Repo,
                                        protocol: str) -> None:
    dest = tmp_path / "clone"
    run_git("-c", f"protocol.version={protocol}", "clone", "-q", served.repo_url(), str(dest))
    mirror = served.mirror()
    head = run_git("rev-parse", "HEAD", cwd=dest).stdout.decode().strip()
    assert head == mirror.rev("refs/heads/main")
    # New upstream work reaches the clone through the mirror only after a sync.
    new = upstream.commit("main", "third")
    from tests.support.cli import run_cli

    assert run_cli("--config", served.runtime.cfg.path, "sync", "--confirm", "--wait").code == 0
    run_git("-c", f"protocol.version={protocol}", "fetch", "-q", "origin", cwd=dest)
    assert run_git("rev-parse", "origin/main", cwd=dest).stdout.decode().strip() == new


def test_shallow_and_partial_clones(tmp_path: Path, served: Served) -> None:
    shallow = tmp_path / "shallow"
    run_git("clone", "-q", "--depth", "1", served.repo_url(), str(shallow))
    assert run_git("rev-list", "--count", "HEAD", cwd=shallow).stdout.decode().strip() == "1"
    assert (shallow / ".git" / "shallow").exists()

    partial = tmp_path / "partial"
    run_git("clone", "-q", "--filter=blob:none", "--no-checkout", served.repo_url(), str(partial))
    spec = run_git("config", "remote.origin.partialclonefilter", cwd=partial).stdout
    assert spec.decode().strip() == "blob:none"
    missing = run_git("rev-list", "--objects", "--all", "--missing=print",
                      cwd=partial).stdout.decode()
    assert any(ln.startswith("?") for ln in missing.splitlines()), "blobs were sent anyway"
    run_git("checkout", "-q", "main", cwd=partial)  # fetches the blobs it needs on demand
    assert any(p.name.startswith("file") for p in partial.iterdir())


def test_unknown_repository_is_404(served: Served) -> None:
    res = served.client().get("/nope.git/info/refs", params={"service": "git-upload-pack"})
    assert res.status_code == 404


def test_dumb_protocol_is_refused(served: Served) -> None:
    assert served.client().get("/hwlab.git/info/refs").status_code == 403


def test_token_push_to_a_lane_lands(tmp_path: Path, served: Served) -> None:
    work = lane_commit(tmp_path, served)
    tip = run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
    run_git("push", "-q", served.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work,
            env=bearer(CI_TOKEN))
    assert served.mirror().rev("refs/heads/gitops/v03") == tip
    # HTTP Basic with the token as password works as well.
    (work / "deploy.yaml").write_text("image: two\n")
    run_git("commit", "-qam", "two", cwd=work)
    tip2 = run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
    run_git("push", "-q", served.repo_url(auth=f"ci:{CI_TOKEN}"), "HEAD:refs/heads/gitops/v03",
            cwd=work)
    assert served.mirror().rev("refs/heads/gitops/v03") == tip2


def test_anonymous_and_read_only_pushes_are_refused(tmp_path: Path, served: Served) -> None:
    work = lane_commit(tmp_path, served)
    before = served.mirror().rev("refs/heads/gitops/v03")
    anon = run_git("push", served.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work, check=False)
    assert anon.returncode != 0
    ro = run_git("push", served.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work,
                 env=bearer(RO_TOKEN), check=False)
    assert ro.returncode != 0
    assert b"may not push" in ro.stderr
    wrong = run_git("push", served.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work,
                    env=bearer("not-a-token-at-all"), check=False)
    assert wrong.returncode != 0
    assert served.mirror().rev("refs/heads/gitops/v03") == before

    with served.client() as c:
        res = c.get("/hwlab.git/info/refs", params={"service": "git-receive-pack"})
        assert res.status_code == 401
        assert res.headers["www-authenticate"] == 'Basic realm="git-mirror"'
        res = c.get("/hwlab.git/info/refs", params={"service": "git-receive-pack"},
                    headers={"Authorization": f"Bearer {RO_TOKEN}"})
        assert res.status_code == 403
        res = c.post("/hwlab.git/git-receive-pack", content=b"0000",
                     headers={"Content-Type": "application/x-git-receive-pack-request"})
        assert res.status_code == 401


def test_push_outside_lanes_is_refused_with_the_reason(tmp_path: Path, served: Served) -> None:
    work = lane_commit(tmp_path, served)
    main_before = served.mirror().rev("refs/heads/main")
    # Forced, so that the refusal comes from the server, not from the client's own check.
    cases = {"refs/heads/main": b"read-only",
             "refs/unidesk/snapshots/hwlab-node-runtime/main/x": b"immutable"}
    for ref, why in cases.items():
        res = run_git("push", "--force", served.repo_url(), f"HEAD:{ref}", cwd=work,
                      env=bearer(CI_TOKEN), check=False)
        assert res.returncode != 0
        # The hook's reason reaches the client on git's side band.
        assert b"remote: git-mirror: refused " + ref.encode() in res.stderr, res.stderr
        assert why in res.stderr, res.stderr
    assert served.mirror().rev("refs/heads/main") == main_before
    assert not served.mirror().refs("refs/unidesk/snapshots/hwlab-node-runtime/main/x")


def test_tokens_never_reach_the_logs(tmp_path: Path, served: Served) -> None:
    work = lane_commit(tmp_path, served)
    run_git("push", "-q", served.repo_url(auth=f"ci:{CI_TOKEN}"), "HEAD:refs/heads/gitops/v03",
            cwd=work)
    run_git("push", served.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work, env=bearer(RO_TOKEN),
            check=False)
    run_git("ls-remote", served.repo_url(), cwd=work, env=bearer(CI_TOKEN))
    text = served.logs()
    assert "git-receive-pack" in text and '"user": "ci"' in text  # the log did see the pushes
    assert CI_TOKEN not in text
    assert RO_TOKEN not in text


def test_reads_need_a_token_when_anonymous_read_is_off(tmp_path: Path, upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url, anonymous=False)
    prepare_mirror(config)
    with serve_in_thread(config) as s:
        res = run_git("clone", "-q", s.repo_url(), str(tmp_path / "a"), check=False)
        assert res.returncode != 0
        run_git("clone", "-q", s.repo_url(), str(tmp_path / "b"), env=bearer(RO_TOKEN))
        assert (tmp_path / "b" / ".git").is_dir()


def test_gzip_request_bodies_are_inflated(served: Served) -> None:
    # A protocol v2 ls-refs command, gzip-compressed as git does for large requests.
    def pkt(s: str) -> bytes:
        return f"{len(s) + 4:04x}{s}".encode()
    body = pkt("command=ls-refs\n") + b"0001" + pkt("ref-prefix refs/heads/\n") + b"0000"
    headers = {"Content-Type": "application/x-git-upload-pack-request", "Git-Protocol": "version=2"}
    with served.client() as c:
        res = c.post("/hwlab.git/git-upload-pack", content=gzip.compress(body),
                     headers={**headers, "Content-Encoding": "gzip"})
        assert res.status_code == 200
        assert res.headers["content-type"] == "application/x-git-upload-pack-result"
        assert b"refs/heads/main" in res.content
        bad = c.post("/hwlab.git/git-upload-pack", content=b"\x1f\x8bnot gzip at all",
                     headers={**headers, "Content-Encoding": "gzip"})
        assert bad.status_code == 400
        assert "gzip request body is corrupt" in bad.text


def test_a_client_that_goes_away_ends_its_git_process(tmp_path: Path, upstream: Repo) -> None:
    big = os.urandom(24 << 20)
    blob = upstream.git("hash-object", "-w", "--stdin", input=big)
    tree = upstream.git("mktree", input=f"100644 blob {blob}\tbig.bin\n".encode())
    upstream.set_ref("refs/heads/main", upstream.git("commit-tree", tree, "-m", "big",
                                                     "-p", upstream.rev("refs/heads/main") or ""))
    config = write_server_config(tmp_path / "srv", upstream.url)
    prepare_mirror(config)
    with serve_in_thread(config) as s:
        want = s.mirror().rev("refs/heads/main")
        body = f"0032want {want}\n00000009done\n".encode()
        with httpx.Client(base_url=s.url, timeout=30) as c, c.stream(
                "POST", "/hwlab.git/git-upload-pack", content=body,
                headers={"Content-Type": "application/x-git-upload-pack-request"}) as res:
            assert res.status_code == 200
            # The iterator is kept: an unreferenced one is collected at once, and closing it
            # closes the connection, so the client would be gone before the next line.
            chunks = res.iter_raw(65536)
            first = next(chunks)
            assert first
            assert s.runtime.http.in_flight == 1
        # The connection is closed with most of the pack unread: git must not linger.
        from tests.support.server import wait_for
        wait_for(lambda: s.runtime.http.in_flight == 0, timeout=30)


def test_without_the_protection_hook_pushes_are_refused(tmp_path: Path, served: Served) -> None:
    work = lane_commit(tmp_path, served)
    before = served.mirror().rev("refs/heads/gitops/v03")
    hooks = Path(run_git(f"--git-dir={served.mirror().path}", "config", "core.hooksPath")
                 .stdout.decode().strip())
    (hooks / "pre-receive").unlink()
    res = run_git("push", served.repo_url(), "HEAD:refs/heads/gitops/v03", cwd=work,
                  env=bearer(CI_TOKEN), check=False)
    assert res.returncode != 0
    assert b"git-mirror apply --confirm" in res.stderr
    assert served.mirror().rev("refs/heads/gitops/v03") == before


def test_serve_logs_where_it_listens(served: Served) -> None:
    assert f'"port": {served.server.port}' in served.logs()


@pytest.mark.parametrize(("service", "body", "protocol"), [
    ("git-upload-pack", b"garbage!", None),                       # not pkt-line framed
    ("git-upload-pack", b"0014command=nonsense\n0000", "version=2"),  # no such v2 command
    ("git-receive-pack", b"garbage!", None),
])
def test_a_malformed_git_request_is_400_not_500(served: Served, service: str, body: bytes,
                                                protocol: str | None) -> None:
    headers = {"Content-Type": f"application/x-{service}-request",
               "Authorization": f"Bearer {CI_TOKEN}"}
    if protocol:
        headers["Git-Protocol"] = protocol
    with served.client() as c:
        res = c.post(f"/hwlab.git/{service}", content=body, headers=headers)
        assert res.status_code == 400, res.text
        assert res.text.startswith(f"git {service} refused the request: fatal: ")
        assert c.get("/healthz").status_code == 200
