"""A real OpenSSH ``sshd`` on 127.0.0.1 serving bare repositories through a forced command.

The forced command (``authorized_keys`` ``command="..."``) sees the git service in
``$SSH_ORIGINAL_COMMAND``: it logs every service to ``services.log``, serves only
``git-upload-pack`` / ``git-receive-pack`` on paths under ``root``, and injects faults
exactly where real ones happen:

- ``fail-upload-after-push`` present: after the next receive-pack, the first upload-pack
  fails (the "push succeeded, post-push fetch failed" case of flush).
- ``fail-all`` present: every service fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

FORCED = r"""#!/bin/sh
# Test forced command: log the service, inject faults, run git on a path under ROOT.
set -f
dir=@DIR@
cmd="$SSH_ORIGINAL_COMMAND"
printf '%s\n' "$cmd" >> "$dir/services.log"
case "$cmd" in
  "git-upload-pack '"*"'") svc=git-upload-pack; path=${cmd#git-upload-pack \'} ;;
  "git-receive-pack '"*"'") svc=git-receive-pack; path=${cmd#git-receive-pack \'} ;;
  *) echo "forced command: service not allowed: $cmd" >&2; exit 1 ;;
esac
path=${path%\'}
case "$path" in *..*) echo "forced command: bad path" >&2; exit 1 ;; esac
if [ -e "$dir/fail-all" ]; then echo "forced command: injected failure" >&2; exit 1; fi
if [ "$svc" = git-receive-pack ] && [ -e "$dir/fail-upload-after-push" ]; then
  rm -f "$dir/fail-upload-after-push"; : > "$dir/fail-next-upload"
fi
if [ "$svc" = git-upload-pack ] && [ -e "$dir/fail-next-upload" ]; then
  rm -f "$dir/fail-next-upload"
  echo "forced command: injected upload-pack failure after push" >&2; exit 1
fi
exec $svc "@ROOT@/${path#/}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, comment: str = "test") -> str:
    """An unencrypted ed25519 key pair at ``path`` (+ ``.pub``); returns the public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    return Path(str(path) + ".pub").read_text().strip()


def _children(pid: int) -> list[int]:
    """Every process whose parent is ``pid`` (one level), from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


@dataclass
class Sshd:
    """A running sshd; ``known_hosts_line`` pins its host key for 127.0.0.1:port."""

    dir: Path
    root: Path
    port: int
    user: str
    client_key: Path
    host_pub: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def known_hosts_line(self) -> str:
        kind, blob = self.host_pub.split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}/{name}"

    def services(self) -> list[str]:
        log = self.dir / "services.log"
        return log.read_text().splitlines() if log.exists() else []

    def connections(self) -> int:
        """How many TCP connections sshd has accepted (its own log, LogLevel VERBOSE)."""
        log = self.dir / "sshd.log"
        if not log.exists():
            return 0
        return sum("Connection from" in ln for ln in log.read_text().splitlines())

    def inject(self, name: str) -> None:
        (self.dir / name).write_text("")

    def stop(self) -> None:
        if self.proc is None:
            return
        # Per-connection sshd processes (and the sessions of ControlPersist masters) outlive
        # the listener; end them by their id first.
        for child in _children(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def start_sshd(base: Path, root: Path) -> Sshd:
    """Start sshd (``sshd -D -e -f FILE``) on a free 127.0.0.1 port, serving ``root``."""
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    base.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    host_key = base / "host_ed25519"
    keygen(host_key, "host")
    host_pub = Path(str(host_key) + ".pub").read_text().strip()
    client_key = base / "id_ed25519"
    client_pub = keygen(client_key, "client")
    forced = base / "forced.sh"
    forced.write_text(FORCED.replace("@DIR@", str(base)).replace("@ROOT@", str(root)))
    forced.chmod(0o755)
    # sshd runs the forced command with the user's login shell; bash started by sshd reads
    # ~/.bashrc, which on a developer machine can cost hundreds of milliseconds per session.
    # An empty HOME keeps the server's per-session cost at what git itself needs.
    home = base / "home"
    home.mkdir(exist_ok=True)
    opts = (f'environment="HOME={home}",no-pty,no-port-forwarding,no-agent-forwarding,'
            'no-X11-forwarding')
    (base / "authorized_keys").write_text(f'command="{forced}",{opts} {client_pub}\n')
    user = os.environ.get("USER") or __import__("getpass").getuser()
    last_err = ""
    for _attempt in range(5):
        port = free_port()
        config = base / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
            f"PidFile {base / 'sshd.pid'}", f"AuthorizedKeysFile {base / 'authorized_keys'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "StrictModes no",
            "UsePAM no", "AcceptEnv GIT_PROTOCOL", "PermitUserEnvironment HOME", "LogLevel VERBOSE",
            "MaxStartups 100",
            "MaxSessions 100", "PrintMotd no", "",
        ]))
        log = open(base / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stdout=log,
                                stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    s.close()
                    server = Sshd(base, root, port, user, client_key, host_pub, proc)
                    # The probe is logged as a connection: wait for that line, so that tests
                    # comparing counts before and after see a settled baseline.
                    settle = time.monotonic() + 5
                    while server.connections() < 1 and time.monotonic() < settle:
                        time.sleep(0.02)
                    return server
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        last_err = (base / "sshd.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"sshd did not start: {last_err}")
