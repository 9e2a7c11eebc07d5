"""Failures that are not a :class:`GitMirrorError` still end in the error object.

CONTRACT section 5: every failure, an I/O error or a full disk included, ends in
``{"error": {"code", "message", "hint"}}`` and its exit code, never a traceback. An
``OSError`` becomes ``io`` or ``disk-full`` (:func:`git_mirror.errors.from_os_error`);
anything else becomes ``error`` with its type and message (and where it was raised in the
``-v`` log on stderr). When stdout itself cannot take the result, one line on stderr says so.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import sys
import traceback

from git_mirror.errors import Code, GitMirrorError, from_os_error

log = logging.getLogger("git_mirror.cli")

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def as_error(exc: Exception) -> GitMirrorError:
    """The error object for an exception no layer turned into one."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "git_mirror" in f.filename] or frames
    where = f"{ours[-1].filename}:{ours[-1].lineno} in {ours[-1].name}" if ours else None
    log.info("unexpected failure", extra={"exception": type(exc).__name__, "raisedAt": where})
    if isinstance(exc, OSError):
        return from_os_error(exc, doing="git-mirror failed")
    return GitMirrorError(f"unexpected {type(exc).__name__}: {exc}", code=Code.ERROR,
                          hint="run the command again with -v for details on stderr")


def output_failed(exc: OSError) -> int:
    """Stdout itself could not take the result: one line on stderr (no traceback), exit 1,
    and nothing more written to stdout when the process exits."""
    code = Code.DISK_FULL if exc.errno in _DISK_FULL else Code.IO
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"error [{code}]: the result could not be written to stdout: "
                         f"{exc.strerror or exc}\n")
    # the unwritten rest of stdout's buffer goes nowhere instead of failing at exit
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 1
