"""Private files under the cache that the transports hand to git and OpenSSH.

Everything here lives in ``<cache>/transport/`` (mode 0700). Secret material is written with
mode 0600 by an atomic rename, and only when its content changed, so concurrent runs and
unchanged configs never rewrite it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, content: str, mode: int = 0o600) -> Path:
    """Write ``content`` to ``path`` with ``mode``, atomically, unless it is already there."""
    data = content.encode("utf-8")
    try:
        st = path.stat()
        if (st.st_mode & 0o777) == mode and st.st_size == len(data) and path.read_bytes() == data:
            return path
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
