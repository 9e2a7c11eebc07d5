"""The built image, run with runc as the rendered pods run it (CONTRACT 6).

Every container runs as uid/gid 10001 with a read-only root filesystem, no capabilities, no
new privileges, ``/tmp`` a tmpfs and the cache a writable mount: a missing passwd entry, a
write outside the cache and ``/tmp``, or a binary missing from the image fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from git_mirror import __version__
from git_mirror.config import load_config
from git_mirror.kube.render import render_node
from tests.kube.conftest import KUBE_CONFIG
from tests.support.gitutil import Repo, run_git
from tests.support.oci import UID, Container, Image, Mount, owned_copy
from tests.support.proxy import ConnectProxy
from tests.support.server import free_port
from tests.support.sshd import Sshd

SOURCES = """\
    sources:
      - branch: main
        snapshotGroup: hwlab-node-runtime
      - branch: release/*
    tags: true
    lanes:
      v03: {ref: gitops/v03}
"""


def _json(out: bytes) -> dict:
    return json.loads(out.decode())


def test_image_is_the_contracts(image: Image) -> None:
    """Tag, entrypoint and user; a passwd entry for 10001; git, ssh; no pip, tests or docs."""
    assert image.tag == f"git-mirror:{__version__}"
    proc = image.spec["process"]
    assert proc["args"] == ["git-mirror"]
    assert proc["user"]["uid"] == UID and proc["user"]["gid"] == UID
    root = image.rootfs
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    assert any(line.split(":")[2] == str(UID) for line in passwd)
    for binary in ("usr/bin/git", "usr/bin/ssh", "usr/bin/python3", "usr/local/bin/git-mirror"):
        assert (root / binary).exists(), binary
    site = root / "usr" / "lib" / "python3" / "dist-packages"
    assert (site / "git_mirror").is_dir() and (site / "lightkube").is_dir()
    for absent in ("pip", "pytest", "kubernetes_validate", "hypothesis", "mypy"):
        assert not (site / absent).exists(), absent
    assert not list((root / "usr" / "share" / "man").rglob("*.gz"))
    assert not (root / "usr" / "bin" / "apt-get").exists()


def test_the_rendered_pods_run_this_image_as_its_user(
        image: Image, write_config: Callable[..., Path], upstream: Repo) -> None:
    """CONTRACT 6: the manifests render prints run that image, with the same uid."""
    cfg = load_config(write_config(KUBE_CONFIG.format(url=upstream.url)))
    data = render_node(cfg, node="D601")
    deploy = next(m for m in data["manifests"] if m["kind"] == "Deployment")
    job_pod = data["jobTemplate"]["spec"]["template"]["spec"]
    for pod in (deploy["spec"]["template"]["spec"], job_pod):
        assert pod["securityContext"]["runAsUser"] == image.spec["process"]["user"]["uid"]
        assert pod["securityContext"]["runAsGroup"] == image.spec["process"]["user"]["gid"]
        for c in [*(pod.get("initContainers") or []), *pod["containers"]]:
            assert c["image"] == image.tag
            assert c["command"][0] == image.spec["process"]["args"][0] == "git-mirror"
            assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_version_demo_and_status_as_uid_10001_on_a_read_only_root(
        container: Container, cache_dir: Path, tmp_path: Path) -> None:
    container.mounts = [Mount(cache_dir, "/var/lib/git-mirror")]
    res = container.run("--version", timeout=120)
    assert res.returncode == 0, res.stderr
    assert __version__ in res.stdout.decode()

    # The root filesystem is read-only: a write outside the cache volume and /tmp fails, and
    # says so as a JSON error, not a traceback.
    res = container.run("--json", "demo", "--dir", "/opt/demo")
    assert res.returncode != 0
    refused = _json(res.stdout)
    assert refused["ok"] is False and "Read-only file system" in refused["error"]["message"]
    assert "Traceback" not in res.stderr.decode()

    res = container.run("--json", "demo", "--dir", "/var/lib/git-mirror/demo")
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    demo = _json(res.stdout)
    assert demo["ok"] is True
    assert demo["sync"]["snapshots"], demo["sync"]
    # Every file the demo wrote is in the cache volume, owned by the image's user.
    assert (cache_dir / "demo" / ".git-mirror" / "repos" / "app.git").is_dir()
    assert (cache_dir / "demo" / "git-mirror.yaml").stat().st_uid == UID

    # As a Job's pod: the result also goes to the termination message file the kubelet
    # mounts at /dev/termination-log (here a bind-mounted file, as the kubelet does).
    message = tmp_path / "termination-log"
    message.write_text("")
    os.chown(message, UID, UID)
    container.mounts.append(Mount(message, "/dev/termination-log"))
    container.env = {"GIT_MIRROR_RESULT_FILE": "/dev/termination-log"}
    res = container.run("--config", "/var/lib/git-mirror/demo/git-mirror.yaml", "--json",
                        "status")
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    status = _json(res.stdout)
    assert json.loads(message.read_text()) == status
    assert status["ok"] is True and status["githubInSync"] is True
    main = next(s for s in status["repositories"][0]["sources"] if s["branch"] == "main")
    assert main["mirrorCommit"] == main["githubCommit"]


def test_ssh_sync_through_the_connect_proxy(
        container: Container, cache_dir: Path, tmp_path: Path, sshd: Sshd,
        proxy: ConnectProxy, upstream: Repo) -> None:
    """OpenSSH as uid 10001 (a passwd entry), through the declared proxy, host key checked."""
    etc = tmp_path / "etc"
    keys = etc / "keys"
    keys.mkdir(parents=True)
    (keys / "known_hosts").write_text(sshd.known_hosts_line)
    owned_copy(sshd.client_key, keys / "id_ed25519").chmod(0o600)
    (etc / "git-mirror.yaml").write_text(f"""\
version: 1
cache: /var/lib/git-mirror
snapshots:
  namespace: unidesk
proxies:
  corp: {{mode: http-connect, url: "{proxy.url}"}}
repositories:
  hwlab:
    upstream: {sshd.url("upstream.git")}
    transport:
      mode: ssh
      identity: {{file: /etc/git-mirror/keys/id_ed25519}}
      knownHosts: {{file: /etc/git-mirror/keys/known_hosts}}
      proxy: corp
""" + SOURCES)
    container.mounts = [Mount(cache_dir, "/var/lib/git-mirror"),
                        Mount(etc, "/etc/git-mirror", True)]
    container.host_network = True
    config = ("--config", "/etc/git-mirror/git-mirror.yaml")
    res = container.run(*config, "--json", "apply", "--confirm")
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    res = container.run(*config, "--json", "sync", "--confirm")
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    synced = _json(res.stdout)
    updated = {u["ref"]: u["to"] for u in synced["updated"]}
    assert updated["refs/heads/main"] == upstream.rev("refs/heads/main")
    assert proxy.tunnels == [f"127.0.0.1:{sshd.port}"]
    assert any(s.startswith("git-upload-pack '/upstream.git'") for s in sshd.services())
    key_body = (keys / "id_ed25519").read_text().splitlines()[1]
    assert key_body not in res.stdout.decode() + res.stderr.decode()


def _wait_ready(url: str, container: Container, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert container.proc is not None and container.proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"serve not ready within {timeout} s:\n{log.read_text()}")


def test_serve_answers_a_clone_and_stops_on_sigterm(
        container: Container, cache_dir: Path, tmp_path: Path, upstream: Repo) -> None:
    srv = tmp_path / "srv"
    srv.mkdir()
    owned_copy(upstream.path, srv / "upstream.git")
    etc = tmp_path / "etc"
    etc.mkdir()
    port = free_port()
    (etc / "git-mirror.yaml").write_text(f"""\
version: 1
cache: /var/lib/git-mirror
snapshots:
  namespace: unidesk
server:
  listen: 127.0.0.1:{port}
repositories:
  hwlab:
    upstream: file:///srv/upstream.git
    transport: {{mode: file}}
""" + SOURCES)
    container.mounts = [Mount(cache_dir, "/var/lib/git-mirror"),
                        Mount(etc, "/etc/git-mirror", True), Mount(srv, "/srv", True)]
    container.host_network = True
    config = ("--config", "/etc/git-mirror/git-mirror.yaml")
    for step in (("apply", "--confirm"), ("sync", "--confirm")):
        res = container.run(*config, "--json", *step)
        assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    log = tmp_path / "serve.log"
    container.start(*config, "serve", log=log)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, container, log)
    status = httpx.get(url + "/api/status", timeout=30).json()
    assert status["ok"] is True
    clone = tmp_path / "clone"
    run_git("clone", "--quiet", f"{url}/hwlab.git", str(clone))
    head = run_git("rev-parse", "HEAD", cwd=clone).stdout.decode().strip()
    assert head == upstream.rev("refs/heads/main")
    assert container.stop() == 0, log.read_text()
    shutil.rmtree(clone)


def test_archive_is_an_oci_layout(image: Image) -> None:
    """index.json names the tag for skopeo/podman and for containerd's import."""
    ann = image.index["manifests"][0]["annotations"]
    assert ann["org.opencontainers.image.ref.name"] == f"git-mirror:{__version__}"
    assert ann["io.containerd.image.name"] == f"docker.io/library/git-mirror:{__version__}"
