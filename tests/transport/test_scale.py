"""Many repositories over SSH behind CONNECT proxies: shared connections, bounded parallelism,
one upstream session per sync, and a slow link on loopback (the delaying proxy)."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from git_mirror.config import load_config
from git_mirror.mirror import journal
from git_mirror.mirror.sync import sync
from git_mirror.transport import ssh
from tests.support.cli import run_cli
from tests.support.gitutil import Repo
from tests.support.proxy import ConnectProxy
from tests.support.sshd import Sshd

REPO = """\
  {rid}:
    upstream: {url}
    transport:
      mode: ssh
      identity: {{file: keys/id_ed25519}}
      knownHosts: {{file: keys/{known_hosts}}}
      proxy: {proxy}
    sources:
      - branch: main
      - branch: release/*
    tags: true
    lanes:
      v03: {{ref: gitops/v03}}
"""


def write_config(tmp_path: Path, sshd: Sshd, proxies: dict[str, str],
                 repos: list[tuple[str, str, str, str]], jobs: int | None = None,
                 cache: Path | None = None) -> Path:
    """``repos``: (id, upstream path under the sshd root, proxy name, known_hosts file name)."""
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    shutil.copy(sshd.client_key, keys / "id_ed25519")
    (keys / "known_hosts").write_text(sshd.known_hosts_line)
    # The same pin, written differently: a different set of trust inputs.
    (keys / "known_hosts_b").write_text("# pinned by hand\n" + sshd.known_hosts_line)
    text = ("version: 1\n" + (f"jobs: {jobs}\n" if jobs else "")
            + (f"cache: {cache}\n" if cache else ""))
    text += "proxies:\n"
    text += "".join(f'  {name}: {{mode: http-connect, url: "{url}"}}\n'
                    for name, url in proxies.items())
    text += "repositories:\n" + "".join(
        REPO.format(rid=rid, url=sshd.url(path), proxy=proxy, known_hosts=kh)
        for rid, path, proxy, kh in repos)
    config = tmp_path / "git-mirror.yaml"
    config.write_text(text)
    return config


def copies(upstream: Repo, tmp_path: Path, n: int) -> list[Repo]:
    out = []
    for i in range(n):
        dest = tmp_path / f"up-{i:02d}.git"
        shutil.copytree(upstream.path, dest, symlinks=True)
        out.append(Repo(dest))
    return out


@pytest.fixture
def stalling_proxy() -> Iterator[ConnectProxy]:
    p = ConnectProxy(stall=True).start()
    try:
        yield p
    finally:
        p.close()


def close_masters(config: Path) -> None:
    cfg = load_config(config)
    for rid in cfg.model.repositories:
        ssh.close_shared(cfg, rid)


def test_one_failing_and_one_hanging_repository_hold_back_no_other(
        tmp_path: Path, sshd: Sshd, upstream: Repo, proxy: ConnectProxy,
        stalling_proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stalled CONNECT is given up after this long (the tunnel's and ssh's timeout).
    monkeypatch.setattr(ssh, "CONNECT_TIMEOUT_SECONDS", 10)
    ups = copies(upstream, tmp_path, 8)
    repos = [(f"app{i:02d}", f"up-{i:02d}.git", "corp", "known_hosts") for i in range(8)]
    # Declared early, so that a run in order would make every later repository wait.
    repos.insert(0, ("stuck", "up-00.git", "stall", "known_hosts"))
    repos.insert(3, ("broken", "no-such-repo.git", "corp", "known_hosts"))
    repos.insert(5, ("stuck2", "up-01.git", "stall", "known_hosts"))
    config = write_config(tmp_path, sshd, {"corp": proxy.url, "stall": stalling_proxy.url}, repos)
    finished: dict[str, float] = {}
    real_record = journal.record

    def record(state_dir: Path, kind: str, entry: dict[str, object]) -> None:
        finished[state_dir.name] = time.monotonic()
        real_record(state_dir, kind, entry)

    monkeypatch.setattr(journal, "record", record)
    started = time.monotonic()
    try:
        res = sync(load_config(config), confirm=True, jobs=4)
    finally:
        close_masters(config)
    data = res.to_json()
    assert [r["id"] for r in data["repositories"]] == [rid for rid, *_ in repos]
    by_id = {r["id"]: r for r in data["repositories"]}
    assert res.ok is False
    for i, up in enumerate(ups):
        r = by_id[f"app{i:02d}"]
        assert r["ok"] is True, r
        main = up.rev("refs/heads/main")
        assert {"ref": f"refs/git-mirror/snapshots/app{i:02d}/main/{main}",
                "commit": main} in r["snapshots"]
    for rid in ("stuck", "stuck2"):
        stuck = by_id[rid]["error"]
        assert stuck["code"] == "transport"
        assert "proxy stall" in stuck["message"] and "timed out" in stuck["message"]
        assert "no direct connection" in stuck["message"]
        assert stuck["hint"].endswith(f"git-mirror sync --repo {rid} --confirm --wait")
    # The two share their trust inputs: the one that waited got the same error, at once.
    assert stalling_proxy.stalled == 1 and stalling_proxy.tunnels == []
    assert by_id["broken"]["ok"] is False
    assert by_id["broken"]["error"]["code"] == "upstream-unreachable"
    assert "broken" in by_id["broken"]["error"]["hint"]
    # Every healthy repository was done before the hanging one was given up.
    assert max(finished[f"app{i:02d}"] for i in range(8)) < finished["stuck"]
    assert finished["stuck"] - started >= 9


@pytest.fixture
def short_cache() -> Iterator[Path]:
    """A cache whose socket paths fit a unix socket name (the usual case in production)."""
    path = Path(tempfile.mkdtemp(prefix="gm-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_one_connection_per_set_of_trust_inputs_kept_between_runs(
        tmp_path: Path, sshd: Sshd, upstream: Repo, proxy: ConnectProxy, short_cache: Path) -> None:
    copies(upstream, tmp_path, 4)
    repos = [(f"app{i}", f"up-{i:02d}.git", "corp", "known_hosts") for i in range(3)]
    repos.append(("other", "up-03.git", "corp", "known_hosts_b"))
    config = write_config(tmp_path, sshd, {"corp": proxy.url}, repos, jobs=4, cache=short_cache)
    try:
        first = run_cli("--config", config, "--json", "sync", "--confirm")
        assert first.code == 0, first.stdout
        # Three repositories with the same inputs rode one tunnel; the fourth, pinned by a
        # different known_hosts file, had its own.
        assert len(proxy.tunnels) == 2
        cfg = load_config(config)
        paths = {rid: ssh.prepare(cfg, rid, "corp", cfg.model.proxies["corp"]).control_path
                 for rid, *_ in repos}
        assert paths["app0"] == paths["app1"] == paths["app2"] != paths["other"]
        for path in paths.values():
            assert path is not None and path.is_socket()
            assert path.parent == short_cache / "transport" / "shared"
            assert path.parent.stat().st_mode & 0o777 == 0o700
        again = run_cli("--config", config, "--json", "sync", "--confirm", "--jobs", "2")
        assert again.code == 0, again.stdout
        assert len(proxy.tunnels) == 2  # the next run found both connections warm
    finally:
        close_masters(config)


def test_incremental_and_noop_syncs_are_one_upstream_session_each(
        tmp_path: Path, sshd: Sshd, upstream: Repo, proxy: ConnectProxy) -> None:
    config = write_config(tmp_path, sshd, {"corp": proxy.url},
                          [("hwlab", "upstream.git", "corp", "known_hosts")])
    try:
        assert run_cli("--config", config, "sync", "--confirm").code == 0
        before = len(sshd.services())
        new = upstream.commit("main", "one more")
        res = run_cli("--config", config, "--json", "sync", "--confirm")
        assert res.code == 0, res.stdout
        assert len(sshd.services()) == before + 1  # one git-upload-pack: list and fetch
        assert {"repository": "hwlab", "ref": "refs/heads/main",
                "from": res.json["updated"][0]["from"], "to": new} in res.json["updated"]
        noop = run_cli("--config", config, "--json", "sync", "--confirm")
        assert noop.code == 0 and noop.json["updated"] == []
        assert len(sshd.services()) == before + 2
    finally:
        close_masters(config)


def test_jobs_must_be_a_positive_number(tmp_path: Path, sshd: Sshd, proxy: ConnectProxy) -> None:
    config = write_config(tmp_path, sshd, {"corp": proxy.url},
                          [("hwlab", "upstream.git", "corp", "known_hosts")])
    res = run_cli("--config", config, "--json", "sync", "--jobs", "0")
    assert res.code == 2
    config.write_text(config.read_text().replace("version: 1\n", "version: 1\njobs: 0\n"))
    res = run_cli("--config", config, "--json", "validate")
    assert res.code == 2 and "jobs" in res.json["error"]["message"]


def test_the_delaying_proxy_delays_each_direction() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    proxy = ConnectProxy(delay_up=0.15, delay_down=0.1).start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            assert head.startswith(b"HTTP/1.1 200")
            turns = []
            for _ in range(3):
                t = time.monotonic()
                s.sendall(b"ping")
                assert s.recv(16) == b"ping"
                turns.append(time.monotonic() - t)
        assert min(turns) >= 0.25  # 0.15 s up, 0.1 s down, every turn
    finally:
        proxy.close()
        server.close()
