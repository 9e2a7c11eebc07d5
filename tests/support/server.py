"""Starting ``serve`` for tests: in a thread (fast, inspectable) or as a real process.

Both bind 127.0.0.1 only. The config written here declares two tokens (``ci`` may push,
``ro`` may not) and a webhook secret, all as files beside the config.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.configs import HWLAB_REPOSITORY
from tests.support.gitutil import Repo

CI_TOKEN = "ci-token-7f3a9c1e5b2d4f60"
RO_TOKEN = "ro-token-0b1c2d3e4f5a6b7c"
HOOK_SECRET = "webhook-secret-5e6f7a8b"

SERVER_CONFIG = """\
version: 1
snapshots:
  namespace: unidesk
server:
  listen: 127.0.0.1:{port}
  tokens:
    ci: {{secretRef: {{file: ci-token}}, push: true}}
    ro: {{secretRef: {{file: ro-token}}}}
  webhookSecret: {{file: webhook-secret}}
  anonymousRead: {anonymous}
  syncIntervalSeconds: {interval}
  readyGraceSeconds: {grace}
  shutdownGraceSeconds: {shutdown}
  flushBackoffSeconds: 0.2
  flushBackoffMaxSeconds: 0.8
  flushMaxAttempts: {attempts}
  maintenanceIntervalSeconds: {maintenance}
""" + HWLAB_REPOSITORY

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_server_config(directory: Path, url: str, *, port: int = 0, anonymous: bool = True,
                        interval: int = 0, grace: int = 0, shutdown: int = 30,
                        attempts: int = 4, maintenance: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ci-token").write_text(CI_TOKEN + "\n")
    (directory / "ro-token").write_text(RO_TOKEN + "\n")
    (directory / "webhook-secret").write_text(HOOK_SECRET + "\n")
    path = directory / "git-mirror.yaml"
    path.write_text(SERVER_CONFIG.format(
        port=port, url=url, anonymous=str(anonymous).lower(), interval=interval, grace=grace,
        shutdown=shutdown, attempts=attempts, maintenance=maintenance))
    return path


def prepare_mirror(config: Path) -> None:
    """apply (mirror, settings, ref protection hook) and one sync, through the CLI."""
    from tests.support.cli import run_cli

    res = run_cli("--config", config, "apply", "--confirm")
    assert res.code == 0, res.stdout + res.stderr
    assert (config.parent / ".git-mirror" / "hooks" / "pre-receive").exists()
    res = run_cli("--config", config, "sync", "--confirm", "--wait")
    assert res.code == 0, res.stdout + res.stderr


def sign(body: bytes, secret: str = HOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_payload(full_name: str, name: str | None = None) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "repository": {
        "full_name": full_name, "name": name or full_name.rsplit("/", 1)[-1]}}).encode()


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def sync_runs(config: Path, rid: str = "hwlab") -> list[dict[str, Any]]:
    """The sync records of the journal (every sync, whoever ran it)."""
    runs = config.parent / ".git-mirror" / "state" / rid / "runs.jsonl"
    if not runs.exists():
        return []
    return [r for r in (json.loads(ln) for ln in runs.read_text().splitlines() if ln.strip())
            if r.get("kind") == "sync"]


@dataclass
class Served:
    url: str
    server: Any
    log_path: Path

    @property
    def runtime(self) -> Any:
        return self.server.runtime

    def repo_url(self, rid: str = "hwlab", auth: str | None = None) -> str:
        if auth:
            return self.url.replace("http://", f"http://{auth}@") + f"/{rid}.git"
        return f"{self.url}/{rid}.git"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def mirror(self, rid: str = "hwlab") -> Repo:
        return Repo.at(self.runtime.cfg.cache_dir / "repos" / f"{rid}.git")

    def logs(self) -> str:
        return self.log_path.read_text()


@contextlib.contextmanager
def serve_in_thread(config: Path, **ops: Any) -> Iterator[Served]:
    """``serve`` on a free port in a thread of this process; stopped on exit."""
    from git_mirror import logs
    from git_mirror.config import load_config
    from git_mirror.server.run import make_server

    cfg = load_config(config)
    log_path = config.parent / "serve.log"
    stream = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    logs.configure(stream=stream)
    server = make_server(cfg, host="127.0.0.1", port=0, **ops)
    thread = threading.Thread(target=server.run, name="serve", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started and server.port, timeout=20)
        yield Served(f"http://127.0.0.1:{server.port}", server, log_path)
    finally:
        server.should_exit = True
        thread.join(timeout=40)
        logs.configure()   # later loggers must not write to the closed file
        stream.close()
        assert not thread.is_alive(), "serve did not stop"


def start_process(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``git-mirror serve`` as a real process (signals, exit code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    err = open(log_path, "wb")  # noqa: SIM115
    try:
        return subprocess.Popen([sys.executable, "-m", "git_mirror.cli.main", "--config",
                                 str(config), "serve"], stdout=subprocess.PIPE, stderr=err,
                                env=env)
    finally:
        err.close()
