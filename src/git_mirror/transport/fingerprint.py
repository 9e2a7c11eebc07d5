"""Redacted fingerprints of secrets: enough to tell which value is in use, never the value.

SSH keys and host keys get the OpenSSH ``SHA256:`` fingerprint of the public key; anything
else (tokens, passwords) a short sha256 prefix.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path


def openssh_fingerprint(public_key_b64: str) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -l`` prints it."""
    raw = base64.b64decode(public_key_b64)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def _public_blob_from_private(text: str) -> str | None:
    """The public key blob of an unencrypted OpenSSH private key (``openssh-key-v1``)."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if not lines or "BEGIN OPENSSH PRIVATE KEY" not in lines[0]:
        return None
    try:
        data = base64.b64decode("".join(ln for ln in lines[1:] if not ln.startswith("-----")))
    except ValueError:
        return None
    magic = b"openssh-key-v1\0"
    if not data.startswith(magic):
        return None
    pos = len(magic)

    def read_string(p: int) -> tuple[bytes, int]:
        n = int.from_bytes(data[p:p + 4], "big")
        return data[p + 4:p + 4 + n], p + 4 + n

    _cipher, pos = read_string(pos)
    _kdf, pos = read_string(pos)
    _kdfopts, pos = read_string(pos)
    pos += 4  # number of keys
    pub, _ = read_string(pos)
    return base64.b64encode(pub).decode()


def key_fingerprint(text: str) -> str:
    """The fingerprint of an SSH private or public key, else a sha256 prefix of the text."""
    blob = _public_blob_from_private(text)
    if blob is None:
        parts = text.strip().split()
        if len(parts) >= 2 and parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
            blob = parts[1]
    if blob is not None:
        try:
            return openssh_fingerprint(blob)
        except ValueError:
            pass
    return value_fingerprint(text)


def known_hosts_fingerprints(text: str) -> list[str]:
    """One ``SHA256:`` fingerprint per host key line of a known_hosts file."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        # Like ``ssh-keygen -lf``: comments and marker lines (@cert-authority, @revoked) are
        # not host keys of their own.
        if len(parts) >= 3 and not parts[0].startswith(("#", "@")):
            try:
                out.append(openssh_fingerprint(parts[2]))
            except ValueError:
                continue
    return out


def value_fingerprint(value: str) -> str:
    """``sha256:`` and 12 hex digits of ``value`` (stripped): tells values apart, reveals none."""
    return "sha256:" + hashlib.sha256(value.strip().encode()).hexdigest()[:12]


def file_fingerprint(path: Path, role: str) -> str:
    """The fingerprint of the secret in ``path`` as status shows it for ``role``."""
    from git_mirror.config.secrets import read_secret_file

    try:
        text = read_secret_file(path)
    except UnicodeDecodeError:
        text = path.read_bytes().decode("utf-8", "replace")  # a regular file of bounded size
    return text_fingerprint(text, role)


def text_fingerprint(text: str, role: str) -> str:
    """The fingerprint of a secret's value for ``role`` (identity, knownHosts, token, ...)."""
    if role == "identity":
        return key_fingerprint(text)
    if role == "knownHosts":
        fps = known_hosts_fingerprints(text)
        return ",".join(fps) if fps else value_fingerprint(text)
    return value_fingerprint(text)
