"""``transport.mode: ssh``: git reaches upstream through a GIT_SSH wrapper of ours (R13).

For each repository a small shell script ``<cache>/transport/<id>/ssh`` is written; git runs
it through ``GIT_SSH_COMMAND`` (which also beats a ``core.sshCommand`` in any config). It
execs OpenSSH with:

- ``-F none``: no system or user ssh config, so nothing of the host decides anything;
- ``BatchMode``, ``StrictHostKeyChecking=yes`` against the declared ``knownHosts`` only
  (``GlobalKnownHostsFile=/dev/null``, ``UpdateHostKeys=no``);
- ``IdentitiesOnly`` with the declared identity, ``IdentityAgent=none`` (no agent);
- ``ProxyCommand`` = our CONNECT tunnel (:mod:`git_mirror.transport.tunnel`) when a proxy
  is declared, else ``ProxyCommand=none``: never an undeclared hop;
- ``ControlMaster=auto`` with a bounded ``ControlPersist``: consecutive git operations share
  one connection, across repositories too. The socket is ``<cache>/transport/shared/cm-KEY``
  (a 0700 directory) where KEY is a hash of everything that decides trust (host, port, user,
  identity, known_hosts, proxy URL and credentials): repositories that agree on all of them
  share one connection, and a changed pin or proxy never rides an old connection.

Key material goes by file path only: the identity is copied to a 0600 file under the cache
(OpenSSH refuses group-readable keys, and an ``{env: NAME}`` identity needs a file anyway);
the proxy credentials go to the tunnel in a 0600 JSON file. No secret is ever in argv.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from git_mirror.config.secrets import resolve_secret
from git_mirror.config.urls import UrlError, parse_url
from git_mirror.errors import GitError, GitMirrorError, TransportError
from git_mirror.git.remote import RemoteEnv
from git_mirror.transport import tunnel
from git_mirror.transport.failures import (
    Failure,
    Where,
    explain,
    failure_error,
    git_error_like,
    retry_command,
)
from git_mirror.transport.files import private_dir, write_private

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Proxy

# The ssh binary; resolved on PATH when None. Tests point it at a recording wrapper.
SSH_BINARY: str | None = None
CONTROL_PERSIST_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 20
# sun_path holds 108 bytes; OpenSSH binds "<ControlPath>.<16 random chars>" first.
MAX_SOCKET_PATH = 86
TUNNEL_ERROR = "tunnel.err"
OPTIONS_VERSION = "1"  # bump when the option set changes, so old masters are not reused


@dataclass(frozen=True)
class SshTarget:
    """Who ssh connects as, to which host and port (from the upstream URL)."""

    user: str | None
    host: str
    port: int

    def known_hosts_name(self) -> str:
        """How OpenSSH names this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def parse_target(url: str) -> SshTarget:
    """User, host and port of an ``ssh://`` or scp-style (``user@host:path``) URL."""
    try:
        parsed = parse_url(url)
    except UrlError:
        parsed = None
    if parsed is None or parsed.form == "path":
        raise TransportError(f"ssh upstream {url} is neither ssh://... nor user@host:path",
                             hint="git-mirror validate")
    if not parsed.host:
        raise TransportError(f"ssh upstream {url} has no host", hint="git-mirror validate")
    return SshTarget(parsed.user, parsed.host, parsed.port or 22)


def _ssh_binary() -> str:
    found = SSH_BINARY or shutil.which("ssh")
    if not found:
        raise TransportError("the OpenSSH client (ssh) is not installed, but transport.mode is ssh",
                             hint="install openssh-client, then run: git-mirror sync --confirm")
    return os.path.abspath(found)


def _opt_path(path: Path | str) -> str:
    """A path as an ssh -o value: % escaped (token expansion), quoted if it has spaces."""
    text = str(path).replace("%", "%%")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _socket_path(cache_dir: Path, shared_dir: Path, key: str) -> Path | None:
    """Where the shared connection's socket lives, or None when no private place fits.

    ``shared_dir`` is one 0700 directory for the whole cache: the name is the trust key, so
    every repository with the same trust inputs finds the same connection, and no other."""
    direct = shared_dir / f"cm-{key}"
    if len(str(direct)) <= MAX_SOCKET_PATH:
        return direct
    # A deep cache path does not fit in a unix socket name: use a short private directory
    # of this user instead, the name still keyed by the cache and the trust key.
    short = Path("/tmp") / f"git-mirror-{os.getuid()}"
    try:
        short.mkdir(mode=0o700, exist_ok=True)
        st = short.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None  # someone else's directory: do without connection reuse
    return short / _sha(f"{cache_dir}\0{key}")[:20]


@dataclass(frozen=True)
class SshSetup:
    """The wrapper for one repository and what it was built from."""

    wrapper: Path
    target: SshTarget
    key: str
    control_path: Path | None
    proxy_name: str | None

    def tunnel_reason(self) -> str:
        """What the CONNECT tunnel wrote when it failed in this run (empty when nothing)."""
        try:
            return (self.wrapper.parent / TUNNEL_ERROR).read_text(encoding="utf-8")
        except OSError:
            return ""


def prepare(cfg: LoadedConfig, rid: str, proxy_name: str | None, proxy: Proxy | None) -> SshSetup:
    """Write the identity, known_hosts, tunnel config and wrapper for ``rid``; return them."""
    repo = cfg.model.repositories[rid]
    t = repo.transport
    assert t.identity is not None  # config checks hold these
    assert t.known_hosts is not None
    target = parse_target(repo.upstream)
    where = ("repositories", rid, "transport")
    identity = resolve_secret(t.identity, cfg, role="identity", key=(*where, "identity")).reveal()
    if not identity.endswith("\n"):
        identity += "\n"  # OpenSSH rejects a key file without its final newline
    known_hosts = resolve_secret(t.known_hosts, cfg, role="knownHosts",
                                 key=(*where, "knownHosts")).reveal()
    if not known_hosts.endswith("\n"):
        known_hosts += "\n"
    auth = None
    if proxy is not None and proxy.auth is not None:
        auth = resolve_secret(proxy.auth, cfg, role="proxyAuth",
                              key=("proxies", proxy_name or "", "auth")).reveal()
    key = _sha(json.dumps({
        "v": OPTIONS_VERSION, "host": target.host, "port": target.port, "user": target.user,
        "identity": _sha(identity), "knownHosts": _sha(known_hosts),
        "proxy": proxy.url if proxy is not None else None,
        "proxyAuth": _sha(auth) if auth is not None else None,
    }, sort_keys=True))[:16]

    root = private_dir(cfg.cache_dir / "transport")
    repo_dir = private_dir(root / rid)
    # A tunnel failure from an earlier run must not explain this run's errors.
    (repo_dir / TUNNEL_ERROR).unlink(missing_ok=True)
    identity_file = write_private(repo_dir / "identity", identity)
    known_hosts_file = write_private(repo_dir / "known_hosts", known_hosts)
    ssh = _ssh_binary()
    opts = [
        "-F", "none",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={_opt_path(known_hosts_file)}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", "CheckHostIP=no",
        "-o", "VerifyHostKeyDNS=no",
        "-o", "IdentitiesOnly=yes",
        "-o", f"IdentityFile={_opt_path(identity_file)}",
        "-o", "IdentityAgent=none",
        "-o", "PreferredAuthentications=publickey",
        "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no",
        "-o", "ForwardAgent=no",
        "-o", "ForwardX11=no",
        "-o", "ClearAllForwardings=yes",
        "-o", "PermitLocalCommand=no",
        "-o", "CanonicalizeHostname=no",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT_SECONDS}",
        "-o", "ConnectionAttempts=1",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=4",
        "-o", "LogLevel=ERROR",
    ]
    if proxy is not None:
        conf = write_private(repo_dir / "tunnel.json", json.dumps(
            {"name": proxy_name, "url": proxy.url, "auth": auth,
             "connectTimeout": CONNECT_TIMEOUT_SECONDS,
             "errorFile": str(repo_dir / TUNNEL_ERROR)}, sort_keys=True) + "\n")
        command = " ".join(shlex.quote(str(p)).replace("%", "%%") for p in (
            sys.executable, "-I", tunnel.__file__, "--fdpass", "--config", conf)) + " %h %p"
        # The tunnel hands ssh the connected socket and exits: no relay process of ours
        # stays in the data path (or lingers beside a persisted master).
        opts += ["-o", f"ProxyCommand={command}", "-o", "ProxyUseFdpass=yes"]
    else:
        (repo_dir / "tunnel.json").unlink(missing_ok=True)
        opts += ["-o", "ProxyCommand=none", "-o", "ProxyJump=none"]
    # One place for every repository: repositories with the same trust inputs share one
    # connection (one handshake through the proxy for all of them).
    control = _socket_path(cfg.cache_dir, private_dir(root / "shared"), key)
    if control is not None:
        opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={_opt_path(control)}",
                 "-o", f"ControlPersist={CONTROL_PERSIST_SECONDS}"]
    else:
        opts += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    script = (
        "#!/bin/sh\n"
        f"# Written by git-mirror for repository {rid} as declared in {cfg.path}.\n"
        "# OpenSSH with no user config, pinned host keys, the declared identity and proxy only.\n"
        f"exec {shlex.join([ssh, *opts])} \"$@\"\n"
    )
    wrapper = write_private(repo_dir / "ssh", script, mode=0o700)
    return SshSetup(wrapper, target, key, control, proxy_name)


def ssh_remote(cfg: LoadedConfig, rid: str, proxy_name: str | None,
               proxy: Proxy | None) -> RemoteEnv:
    """The :class:`RemoteEnv` for an ssh repository."""
    setup = prepare(cfg, rid, proxy_name, proxy)
    repo = cfg.model.repositories[rid]
    t = repo.transport
    assert t.identity is not None
    assert t.known_hosts is not None

    def explain_as_read(exc: GitError) -> GitMirrorError:
        # exc's stderr already holds the tunnel's reason, if it wrote one.
        return explain_ssh(exc, rid=rid, target=setup.target, proxy_name=proxy_name,
                           proxy_url=proxy.url if proxy is not None else None,
                           identity_ref=t.identity.describe() if t.identity else "",
                           known_hosts_ref=t.known_hosts.describe() if t.known_hosts else "",
                           url=repo.upstream)

    def explain(exc: GitError) -> GitMirrorError:
        # A failed git process: what the tunnel wrote (if it failed) goes before git's stderr.
        reason = setup.tunnel_reason()
        return explain_as_read(git_error_like(exc, stderr=reason + exc.stderr) if reason else exc)

    from git_mirror.transport.shared import ensure_master

    def warm(git_args: Sequence[str]) -> None:
        # Open the shared connection once, before git does, so that repositories starting
        # at the same time (a parallel sync) wait for one handshake instead of each doing
        # its own.
        ensure_master(setup, timeout=2 * CONNECT_TIMEOUT_SECONDS + 5, explain=explain_as_read,
                      operation=git_args)

    return RemoteEnv(
        url=repo.upstream, allow_protocol="ssh",
        env={"GIT_SSH_COMMAND": shlex.quote(str(setup.wrapper)), "GIT_SSH_VARIANT": "ssh"},
        explain=explain, before=warm)


# What git-over-ssh failures look like in stderr, first match wins (failures.explain): the
# declared way failed (host key, identity), or upstream itself cannot be reached.
SSH_FAILURES = (
    Failure(("Host key verification failed", "HOST IDENTIFICATION HAS CHANGED",
             "host key is known for"),
            "the host key of {known_hosts_name} does not match the declared knownHosts "
            "({known_hosts_ref}); the connection was refused",
            "check the server's host key fingerprint and fix knownHosts ({known_hosts_ref}); "
            "git-mirror status shows the declared fingerprints; then run: {retry}"),
    Failure(("Permission denied",),
            "upstream {where} refused the declared identity ({identity_ref})",
            "register the public key of {identity_ref} with the upstream account (git-mirror "
            "status shows its fingerprint), then run: {retry}"),
    Failure(("Connection refused",), "upstream {where} refused the connection{via}",
            "check that {where} accepts SSH (or fix repositories.{rid}.upstream), then run: "
            "{retry}", unreachable=True),
    Failure(("Could not resolve hostname",), "the upstream host {host} cannot be resolved",
            "fix repositories.{rid}.upstream (or DNS), then run: {retry}", unreachable=True),
    Failure(("timed out",), "the connection to upstream {where} timed out",
            "check the network path to {where}, then run: {retry}", unreachable=True),
    Failure(("kex_exchange_identification", "Connection closed by", "Connection reset"),
            "upstream {where} closed the connection during the SSH handshake",
            "check that {where} is an SSH server reachable as declared, then run: {retry}",
            unreachable=True),
    Failure(("does not appear to be a git repository", "Repository not found"),
            "upstream {where} has no repository at the declared path",
            "fix repositories.{rid}.upstream (or create the repository), then run: {retry}",
            unreachable=True),
)


def explain_ssh(exc: GitError, *, rid: str, target: SshTarget, proxy_name: str | None,
                proxy_url: str | None, identity_ref: str, known_hosts_ref: str,
                url: str | None = None) -> GitMirrorError:
    """Turn a failed git-over-ssh process into an error that says what to fix."""
    text = exc.stderr or ""
    where = f"{target.host}:{target.port}"
    named = f"upstream {url}, transport ssh" if url else "transport ssh"
    at = Where(named, {"transport": "ssh", "host": where, "url": url})
    mark = next((ln for ln in text.splitlines() if tunnel.MARK in ln), None)
    if mark is not None:
        detail = mark.split(tunnel.MARK, 1)[1].strip()
        retry = retry_command(exc, rid)
        return failure_error(
            exc, rid, f"upstream {where} is reached only through the declared proxy "
            f"{proxy_name} ({proxy_url}), and the tunnel failed: {detail}; no direct "
            "connection was tried",
            f"make proxy {proxy_name} ({proxy_url}) reachable and allow CONNECT to {where} (or "
            f"change proxies.{proxy_name} in the YAML), then run: {retry}",
            unreachable=False, where=at)
    context = {"where": where, "host": target.host, "known_hosts_name": target.known_hosts_name(),
               "known_hosts_ref": known_hosts_ref, "identity_ref": identity_ref,
               "via": f" (through proxy {proxy_name})" if proxy_name else ""}
    return explain(exc, rid, SSH_FAILURES, text=text, context=context, where=at)


def close_shared(cfg: LoadedConfig, rid: str, timeout: float = 10.0) -> bool:
    """Ask the shared SSH connection of ``rid`` (if any) to exit; True if one was running.

    It is shared by every repository with the same trust inputs: they lose it too."""
    import subprocess

    wrapper = cfg.cache_dir / "transport" / rid / "ssh"
    if not wrapper.exists():
        return False
    target = parse_target(cfg.model.repositories[rid].upstream)
    dest = f"{target.user}@{target.host}" if target.user else target.host
    proc = subprocess.run([str(wrapper), "-O", "exit", "-p", str(target.port), dest],
                          capture_output=True, timeout=timeout, check=False,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    return proc.returncode == 0
