"""SIGTERM to a real ``git-mirror serve`` process while a clone is in flight."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.support.gitutil import Repo, run_git
from tests.support.server import (
    free_port,
    prepare_mirror,
    start_process,
    wait_for,
    write_server_config,
)
from tests.support.throttle import ThrottledRelay

PACK_MB = 6


def test_sigterm_lets_a_clone_finish_and_exits_0(tmp_path: Path, upstream: Repo) -> None:
    blob = upstream.git("hash-object", "-w", "--stdin", input=os.urandom(PACK_MB << 20))
    tree = upstream.git("mktree", input=f"100644 blob {blob}\tbig.bin\n".encode())
    parent = upstream.rev("refs/heads/main") or ""
    tip = upstream.git("commit-tree", tree, "-m", "big", "-p", parent)
    upstream.set_ref("refs/heads/main", tip)
    port = free_port()
    config = write_server_config(tmp_path / "srv", upstream.url, port=port, shutdown=60)
    prepare_mirror(config)
    log = tmp_path / "serve.log"
    proc = start_process(config, log)
    relay = None
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(base + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(up, timeout=30)
        relay = ThrottledRelay(port, bytes_per_second=2 << 20)   # about 3 s for the pack
        dest = tmp_path / "clone"
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        clone = subprocess.Popen(["git", "clone", "-q", f"http://127.0.0.1:{relay.port}/hwlab.git",
                                  str(dest)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=env)
        wait_for(lambda: relay is not None and relay.down_bytes > (1 << 20), timeout=30)
        assert clone.poll() is None, "the clone finished before the signal: nothing was tested"
        proc.send_signal(signal.SIGTERM)
        _, err = clone.communicate(timeout=60)
        assert clone.returncode == 0, err.decode()
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert run_git("rev-parse", "HEAD", cwd=dest).stdout.decode().strip() == tip
        assert (dest / "big.bin").stat().st_size == PACK_MB << 20
        assert "shutdown requested" in log.read_text()
    finally:
        if relay is not None:
            relay.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
