"""The config file: validation errors name file, line and key; init, validate, schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import run_cli

GOOD = """\
version: 1
cache: ./cache
snapshots:
  namespace: unidesk
  retention: {keepLast: 5, maxAgeDays: 7}
proxies:
  corp: {mode: http-connect, url: http://127.0.0.1:3128}
server:
  listen: 127.0.0.1:8080
  tokens:
    ci: {secretRef: {file: ci-token}, push: true}
  webhookSecret: {env: HOOK_SECRET}
repositories:
  hwlab:
    upstream: ssh://git@ssh.github.com:443/example/hwlab.git
    transport:
      mode: ssh
      identity: {file: id_ed25519}
      knownHosts: {file: known_hosts}
      proxy: corp
    sources:
      - branch: main
        snapshotGroup: hwlab-node-runtime
      - branch: release/*
    tags: true
    lanes:
      v03: {ref: gitops/v03}
  web:
    upstream: https://github.com/example/web.git
    transport:
      mode: https
      token: {kubernetes: {name: gh, key: token}}
    sources: [{branch: main}]
nodes:
  local: {executor: local}
  D601:
    executor: kubernetes
    kubernetes: {context: d601, namespace: devops-infra}
    egressProxy: corp
followers:
  hwlab-runtime:
    repository: hwlab
    branch: main
    lane: v03
    trigger: {exec: ["./ci/build.sh"]}
"""


def test_full_contract_example_validates(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD)
    res = run_cli("--config", path, "--json", "validate")
    assert res.code == 0, res.stdout + res.stderr
    data = res.json
    assert data["ok"] is True
    assert data["repositories"] == ["hwlab", "web"]
    assert data["nodes"] == ["D601", "local"]
    assert data["followers"] == ["hwlab-runtime"]


def _error(path: Path) -> dict[str, object]:
    res = run_cli("--config", path, "--json", "validate")
    assert res.code == 2, res.stdout
    err = res.json["error"]
    assert isinstance(err, dict)
    assert res.json["ok"] is False
    return err


@pytest.mark.parametrize(("old", "new", "key", "words"), [
    ("    tags: true\n", "    tags: true\n    tagz: false\n", "repositories.hwlab.tagz",
     "unknown key"),
    ("      mode: ssh\n", "      mode: sftp\n", "repositories.hwlab.transport.mode",
     "'ssh', 'https' or 'file'"),
    ("keepLast: 5", "keepLast: many", "snapshots.retention.keepLast", "integer"),
    ("      proxy: corp\n", "      proxy: elsewhere\n", "repositories.hwlab.transport.proxy",
     "not declared"),
    ("    egressProxy: corp\n", "    egressProxy: nope\n", "nodes.D601.egressProxy",
     "not declared"),
    ("      v03: {ref: gitops/v03}\n", "      v03: {ref: release/x}\n",
     "repositories.hwlab.lanes.v03.ref", "overlaps"),
    ("    lane: v03\n", "    lane: v04\n", "followers.hwlab-runtime.lane", "not declared"),
    ("version: 1\n", "version: 2\n", "version", "expected 1"),
    # a string is not a boolean or a number, even one that reads like it
    ("    tags: true\n", "    tags: \"true\"\n", "repositories.hwlab.tags", "valid boolean"),
    ("keepLast: 5", "keepLast: \"5\"", "snapshots.retention.keepLast", "valid integer"),
    # a secretRef names exactly one place
    ("      identity: {file: id_ed25519}\n", "      identity: {}\n",
     "repositories.hwlab.transport.identity",
     "exactly one of file, env, kubernetes (it names none)"),
    ("  webhookSecret: {env: HOOK_SECRET}\n", "  webhookSecret: {env: HOOK_SECRET, file: x}\n",
     "server.webhookSecret", "(it names file, env)"),
])
def test_bad_config_names_file_line_and_key(write_config: Callable[..., Path], old: str, new: str,
                                            key: str, words: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    needle = new.splitlines()[-1].split("{")[0].strip()
    line = next(i for i, ln in enumerate(text.splitlines(), 1)
                if needle in ln and ln not in GOOD.splitlines())
    path = write_config(text)
    err = _error(path)
    assert err["code"] == "config"
    assert err["key"] == key
    assert err["line"] == line
    assert err["file"] == str(path)
    assert words in str(err["message"])
    assert f"{path}:{line}: {key}:" in str(err["message"])
    assert err["hint"]


def test_transport_that_disagrees_with_url_is_drift(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD.replace("      mode: ssh\n", "      mode: https\n", 1))
    err = _error(path)
    assert err["code"] == "drift"
    assert err["key"] == "repositories.hwlab.upstream"
    assert "ssh" in str(err["message"])


def test_token_on_ssh_repository_is_drift(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD.replace("      proxy: corp\n",
                                     "      proxy: corp\n      token: {env: TOKEN}\n", 1))
    err = _error(path)
    assert err["code"] == "drift"
    assert err["key"] == "repositories.hwlab.transport.token"


def test_yaml_syntax_error_names_line(write_config: Callable[..., Path]) -> None:
    path = write_config("version: 1\nrepositories:\n  a: [unclosed\n")
    err = _error(path)
    assert err["line"] is not None
    assert "not valid YAML" in str(err["message"])


def test_missing_required_key(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD.replace("    upstream: https://github.com/example/web.git\n", ""))
    err = _error(path)
    assert err["key"] == "repositories.web.upstream"
    assert "required" in str(err["message"])


def test_missing_config_file_is_exit_2_with_hint(tmp_path: Path) -> None:
    res = run_cli("--config", tmp_path / "nope.yaml", "--json", "status")
    assert res.code == 2
    assert res.json["error"]["code"] == "config"
    assert "git-mirror init" in res.json["error"]["hint"]


def test_config_from_environment_variable(write_config: Callable[..., Path],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(GOOD)
    monkeypatch.setenv("GIT_MIRROR_CONFIG", str(path))
    res = run_cli("--json", "validate")
    assert res.code == 0
    assert res.json["config"]["path"] == str(path)


def test_init_writes_a_starter_that_validates_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "git-mirror.yaml"
    assert run_cli("--config", path, "init").code == 0
    text = path.read_text()
    assert "#" in text  # commented
    assert run_cli("--config", path, "validate").code == 0
    again = run_cli("--config", path, "--json", "init")
    assert again.code == 2
    assert path.read_text() == text


def test_schema_is_published_and_current() -> None:
    res = run_cli("schema")
    assert res.code == 0
    schema = json.loads(res.stdout)
    assert schema["additionalProperties"] is False
    assert {"version", "repositories", "proxies", "server", "nodes", "followers"} <= set(
        schema["properties"])
    committed = Path(__file__).parent.parent / "schema" / "git-mirror.schema.json"
    assert json.loads(committed.read_text()) == schema, \
        "run: git-mirror schema > schema/git-mirror.schema.json"


def test_a_validated_config_loads_again_without_pydantic_or_ruamel(config: Path) -> None:
    import subprocess
    import sys

    assert run_cli("--config", config, "validate").code == 0
    probe = ("import sys; from git_mirror.config import load_config; c = load_config(sys.argv[1]); "
             "print(sorted(c.model.repositories), 'pydantic' in sys.modules, "
             "'ruamel.yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out == ["['hwlab']", "False", "False"]
    # A changed file is validated again: the cache is keyed by content.
    config.write_text(config.read_text().replace("    tags: true\n",
                                                 "    tags: true\n    bogus: 1\n"))
    res = run_cli("--config", config, "--json", "validate")
    assert res.code == 2 and res.json["error"]["key"] == "repositories.hwlab.bogus"


def test_a_secret_that_cannot_be_read_names_where_the_yaml_declares_it(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIT_MIRROR_TEST_UNSET_TOKEN", raising=False)
    text = """\
version: 1
repositories:
  app:
    upstream: https://127.0.0.1:9/example/app.git
    transport:
      mode: https
      token: {env: GIT_MIRROR_TEST_UNSET_TOKEN}
    sources:
      - branch: main
"""
    path = write_config(text)
    res = run_cli("--config", path, "--json", "sync", "--confirm")
    assert res.code == 2, res.stdout
    err = res.json["repositories"][0]["error"]
    assert err["code"] == "config"
    assert (err["file"], err["line"], err["key"]) == (str(path), 7,
                                                      "repositories.app.transport.token")
    assert "env:GIT_MIRROR_TEST_UNSET_TOKEN" in err["message"] and err["hint"].startswith("export ")


@pytest.mark.parametrize(("upstream", "words"), [
    ("ssh://git@ssh.github.com:4x3/example/hwlab.git", "cannot be parsed: Port could not be cast"),
    ("ssh://git@ssh.github.com:99999/example/hwlab.git", "cannot be parsed: Port out of range"),
    ("ssh://[::1/example/hwlab.git", "cannot be parsed: Invalid IPv6 URL"),
    ("ssh://git@/example/hwlab.git", "names no host"),
])
def test_an_upstream_url_git_could_not_use_is_a_config_error(
        write_config: Callable[..., Path], upstream: str, words: str) -> None:
    path = write_config(GOOD.replace("ssh://git@ssh.github.com:443/example/hwlab.git", upstream))
    err = _error(path)
    assert err["code"] == "config"
    assert err["key"] == "repositories.hwlab.upstream"
    assert words in str(err["message"])


@pytest.mark.parametrize("url", ["http://127.0.0.1:31x8", "http://[::1:3128"])
def test_a_proxy_url_that_cannot_be_parsed_is_a_config_error(
        write_config: Callable[..., Path], url: str) -> None:
    path = write_config(GOOD.replace("url: http://127.0.0.1:3128", f'url: "{url}"'))
    err = _error(path)
    assert err["code"] == "config"
    assert err["key"] == "proxies.corp.url"
    assert "mode http-connect needs url: http://HOST:PORT" in str(err["message"])


@pytest.mark.parametrize("listen", ["8080", "127.0.0.1:http", ":8080"])
def test_a_listen_address_that_is_not_host_and_port_is_a_config_error(
        write_config: Callable[..., Path], listen: str) -> None:
    path = write_config(GOOD.replace("listen: 127.0.0.1:8080", f'listen: "{listen}"'))
    err = _error(path)
    assert err["code"] == "config"
    assert err["key"] == "server.listen"
    assert "expected HOST:PORT, e.g. 127.0.0.1:8080" in str(err["message"])


@pytest.mark.parametrize(("upstream", "scheme"), [
    ("github.com:example/hwlab.git", "unknown"),     # scp-like needs user@
    ("git@[::1]:example/hwlab.git", "unknown"),      # a [host] only in ssh://
    ("example/hwlab.git", "unknown"),                # a relative path
    ("https://github.com/example/hwlab.git", "https"),
    ("/srv/git/hwlab.git", "file"),
])
def test_an_ssh_upstream_in_another_form_is_drift_naming_the_form(
        write_config: Callable[..., Path], upstream: str, scheme: str) -> None:
    path = write_config(GOOD.replace("ssh://git@ssh.github.com:443/example/hwlab.git", upstream))
    err = _error(path)
    assert err["code"] == "drift"
    assert err["key"] == "repositories.hwlab.upstream"
    assert f"transport.mode is 'ssh' but the upstream URL scheme is {scheme!r}" in str(
        err["message"])


def test_an_scp_like_upstream_is_ssh(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD.replace("ssh://git@ssh.github.com:443/example/hwlab.git",
                                     "git@github.com:example/hwlab.git"))
    res = run_cli("--config", path, "--json", "validate")
    assert res.code == 0, res.stdout
