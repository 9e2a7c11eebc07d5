"""The built container image, run for real with ``runc`` as the rendered pods run it.

:func:`build_image` runs ``scripts/build-image.sh`` (or takes the archive named by
``GIT_MIRROR_IMAGE_ARCHIVE``, which ``.ci/run`` builds once for the whole run);
:func:`unpack` turns the OCI archive into one read-only root filesystem that every container
of the session shares; :class:`Container` writes a bundle's ``config.json`` the way the pod's
``securityContext`` asks for it (uid/gid 10001, read-only root, no capabilities, no new
privileges, ``/tmp`` a tmpfs, the cache a writable bind mount) and runs it with ``runc run``.

A container has its own network namespace (no network at all) unless ``host_network`` is set:
then it shares this machine's, so that it reaches the test rig's sshd and proxy on 127.0.0.1
and its ``serve`` is reachable from here.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
UID = 10001
BUILD_TIMEOUT = 1800


def build_image(out: Path) -> Path:
    """The OCI archive: the prebuilt one of ``GIT_MIRROR_IMAGE_ARCHIVE``, else one built into
    ``out``."""
    given = os.environ.get("GIT_MIRROR_IMAGE_ARCHIVE")
    if given:
        path = Path(given)
        if not path.is_file():
            raise RuntimeError(f"GIT_MIRROR_IMAGE_ARCHIVE={given} is not a file")
        return path
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "build-image.sh"), str(out)],
                          capture_output=True, timeout=BUILD_TIMEOUT, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace")[-4000:]
        raise RuntimeError(f"scripts/build-image.sh failed ({proc.returncode}):\n{tail}")
    return out / "git-mirror-oci.tar"


@dataclass
class Image:
    """An unpacked image: its rootfs, the runtime spec umoci derived from its config, its tag."""

    rootfs: Path
    spec: dict[str, Any]
    tag: str
    index: dict[str, Any]


def unpack(archive: Path, into: Path) -> Image:
    layout = into / "layout"
    layout.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="tar")
    index = json.loads((layout / "index.json").read_text())
    tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    bundle = into / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)],
                   check=True, capture_output=True, timeout=600)
    spec = json.loads((bundle / "config.json").read_text())
    return Image(bundle / "rootfs", spec, tag, index)


@dataclass
class Mount:
    source: Path
    destination: str
    readonly: bool = False


@dataclass
class Container:
    """One container of ``image``: ``run`` (to completion) or ``start`` (in the background)."""

    image: Image
    state: Path  # runc --root
    workdir: Path
    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    name: str = field(default_factory=lambda: "gm-test-" + secrets.token_hex(4))
    proc: subprocess.Popen[bytes] | None = None

    def _bundle(self, args: list[str]) -> Path:
        spec = copy.deepcopy(self.image.spec)
        proc = spec["process"]
        proc["terminal"] = False
        # The image's entrypoint is git-mirror: the args are what the pod's command adds.
        proc["args"] = ["git-mirror", *args]
        proc["user"] = {"uid": UID, "gid": UID}
        proc["noNewPrivileges"] = True
        proc["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable",
                                                "permitted", "ambient")}
        env = {k: v for k, v in (e.split("=", 1) for e in proc.get("env", []))}
        env.update({"HOME": "/tmp", **self.env})
        proc["env"] = [f"{k}={v}" for k, v in env.items()]
        spec["root"] = {"path": str(self.image.rootfs), "readonly": True}
        spec["hostname"] = "git-mirror"
        spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "mode=1777", "size=64m"]})
        for m in self.mounts:
            spec["mounts"].append({"destination": m.destination, "type": "bind",
                                   "source": str(m.source),
                                   "options": ["rbind", "ro" if m.readonly else "rw"]})
        if self.host_network:
            spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                           if n["type"] != "network"]
        bundle = self.workdir / f"bundle-{self.name}"
        bundle.mkdir(parents=True)
        (bundle / "config.json").write_text(json.dumps(spec, indent=1))
        return bundle

    def _runc(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.state), *args]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        """Run ``git-mirror ARGS`` in a fresh container; its exit code and output."""
        bundle = self._bundle(list(args))
        name = f"{self.name}-{bundle.name[-4:]}-{secrets.token_hex(2)}"
        try:
            return subprocess.run(self._runc("run", "--bundle", str(bundle), name),
                                  stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, check=False)
        finally:
            subprocess.run(self._runc("delete", "--force", name), capture_output=True,
                           timeout=60, check=False)
            shutil.rmtree(bundle, ignore_errors=True)

    def start(self, *args: str, log: Path) -> None:
        """Start ``git-mirror ARGS`` in the background (stdout and stderr to ``log``)."""
        bundle = self._bundle(list(args))
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(self._runc("run", "--bundle", str(bundle), self.name),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (as the kubelet sends), then wait; the exit code (None: it had to be killed)."""
        if self.proc is None:
            return None
        code: int | None = None
        subprocess.run(self._runc("kill", self.name, "TERM"), capture_output=True, timeout=30,
                       check=False)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            subprocess.run(self._runc("kill", self.name, "KILL"), capture_output=True,
                           timeout=30, check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        subprocess.run(self._runc("delete", "--force", self.name), capture_output=True,
                       timeout=60, check=False)
        self.proc = None
        return code


def owned_copy(src: Path, dst: Path) -> Path:
    """A copy of ``src`` owned by the image's user (git refuses repositories of another owner)."""
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)
    chown_tree(dst)
    return dst


def chown_tree(path: Path) -> None:
    os.chown(path, UID, UID)
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in [*dirnames, *filenames]:
                os.chown(os.path.join(dirpath, name), UID, UID, follow_symlinks=False)
