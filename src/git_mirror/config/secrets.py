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
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{role} secret {source} cannot be read: {exc.strerror}",
                              file=file, line=line, key=keypath,
                              hint=f"create {path} or fix the secretRef, then run: git-mirror validate") from None
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
