"""Resolving ``secretRef`` values into :class:`~git_mirror.redact.Secret` objects.

``{file: PATH}`` (relative to the config file), ``{env: NAME}`` (declared, so allowed) and
``{kubernetes: {name, key}}`` (mounted by apply under ``/var/run/git-mirror/secrets``, or
``$GIT_MIRROR_SECRETS_DIR``, as ``NAME/KEY``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from git_mirror.config.models import SecretRef
from git_mirror.errors import ConfigError
from git_mirror.redact import Secret

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

MOUNT_ROOT = "/var/run/git-mirror/secrets"
# A secret file is a key, a token or a known_hosts list: small. Bigger is a mistake (or
# /dev/zero), and so is anything but a regular file: a FIFO would block the reader for ever.
MAX_SECRET_BYTES = 1 << 20
SECRET_READ_TIMEOUT = 10.0


class SecretFileError(OSError):
    """A secret file that is refused unread, or whose read did not finish in time."""


def read_secret_file(path: Path, *, limit: int = MAX_SECRET_BYTES,
                     timeout: float = SECRET_READ_TIMEOUT) -> str:
    """The text of the regular file ``path``, at most ``limit`` bytes, read within ``timeout``.

    Opened without blocking (a FIFO with no writer does not stall the open), checked with
    ``fstat`` before a byte is read: FIFOs, devices, sockets and directories are refused.
    Raises OSError (:class:`SecretFileError` for a refusal), never the value.
    """
    import errno
    import stat
    import threading

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else
                    "a directory" if stat.S_ISDIR(st.st_mode) else
                    "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                    "not a regular file")
            raise SecretFileError(errno.EINVAL, f"it is {kind}; a secret must be a regular file")
        if st.st_size > limit:
            raise SecretFileError(errno.EFBIG, f"it is {st.st_size} bytes; a secret file may be "
                                               f"{limit} bytes at most")
        box: list[bytes | BaseException] = []

        def read() -> None:
            try:
                chunks: list[bytes] = []
                got = 0
                while got <= limit and (chunk := os.read(fd, limit + 1 - got)):
                    chunks.append(chunk)
                    got += len(chunk)
                box.append(b"".join(chunks))
            # The thread's boundary: whatever the read raised is re-raised by the caller, in
            # its own thread, below; nothing is swallowed.
            except BaseException as exc:  # noqa: BLE001
                box.append(exc)

        reader = threading.Thread(target=read, name="secret-read", daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            # The descriptor stays open for the blocked reader; closing it under a read
            # could hand the number to another file meanwhile.
            fd = -1
            raise SecretFileError(errno.ETIMEDOUT, f"reading it took more than {timeout:g}s")
        data = box[0]
        if isinstance(data, BaseException):
            raise data
        if len(data) > limit:
            raise SecretFileError(errno.EFBIG, f"it holds more than {limit} bytes, the most a "
                                               "secret file may")
        return data.decode("utf-8")
    finally:
        if fd >= 0:
            os.close(fd)


def secret_path(ref: SecretRef, base_dir: Path) -> Path | None:
    """The file that holds the secret, for file and kubernetes refs."""
    if ref.file is not None:
        p = Path(os.path.expanduser(ref.file))
        return p if p.is_absolute() else base_dir / p
    if ref.kubernetes is not None:
        root = Path(os.environ.get("GIT_MIRROR_SECRETS_DIR", MOUNT_ROOT))
        return root / ref.kubernetes.name / ref.kubernetes.key
    return None


def resolve_secret(ref: SecretRef, cfg: LoadedConfig, *, role: str,
                   key: tuple[str | int, ...]) -> Secret:
    """Read the secret's value now. The error names the reference and where the YAML declares
    it (file, line, key path), never the value."""
    from git_mirror.config.loader import dotted

    source = ref.describe()
    path = secret_path(ref, cfg.base_dir)
    file, line, keypath = str(cfg.path), cfg.line_of(*key), dotted(key)
    if path is not None:
        try:
            value = read_secret_file(path)
        except UnicodeDecodeError:
            raise ConfigError(f"{role} secret {source} is not UTF-8 text",
                              file=file, line=line, key=keypath,
                              hint=f"fix {path} or the secretRef, then run: "
                                   "git-mirror validate") from None
        except OSError as exc:
            raise ConfigError(f"{role} secret {source} cannot be read: {exc.strerror}",
                              file=file, line=line, key=keypath,
                              hint=f"create {path} or fix the secretRef, then run: "
                                   "git-mirror validate") from None
    else:
        assert ref.env is not None
        if ref.env not in os.environ:
            raise ConfigError(f"{role} secret {source} is not set in the environment",
                              file=file, line=line, key=keypath,
                              hint=f"export {ref.env}=... or use a {{file: PATH}} secretRef")
        value = os.environ[ref.env]
    if role in ("token", "webhookSecret", "proxyAuth") or role.startswith("token"):
        value = value.strip()
    return Secret(value, source)
