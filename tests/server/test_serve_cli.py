"""``git-mirror serve`` from the command line: start-up failures are errors with a hint."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.gitutil import Repo
from tests.support.server import write_server_config


def test_a_missing_token_secret_stops_serve_with_a_config_error(tmp_path: Path,
                                                                upstream: Repo) -> None:
    config = write_server_config(tmp_path / "srv", upstream.url)
    (config.parent / "ci-token").unlink()
    res = run_cli("--config", config, "--json", "serve")
    assert res.code == 2
    err = res.json["error"]
    assert err["code"] == "config" and "file:ci-token" in err["message"]


def test_an_address_in_use_is_an_error_with_a_hint(tmp_path: Path, upstream: Repo) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = write_server_config(tmp_path / "srv", upstream.url, port=port)
        res = run_cli("--config", config, "--json", "serve")
    assert res.code == 1
    assert res.json["error"]["code"] == "serve"
    assert "server.listen" in res.json["error"]["hint"]
