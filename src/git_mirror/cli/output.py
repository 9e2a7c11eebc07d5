"""Rendering results at the edge: one JSON object on stdout with ``--json``, text otherwise.

Also the one place where an error becomes an exit code (0 ok, 1 failed, 2 usage/config).
"""

from __future__ import annotations

import contextlib
import errno
import json
import sys
from collections.abc import Callable
from typing import Any

from git_mirror import logs
from git_mirror.errors import Code, GitMirrorError
from git_mirror.kube.result import write_result
from git_mirror.redact import scrub


def dumps(data: Any) -> str:
    """The JSON text of ``data``: indented for a terminal, one line for a pipe (faster, and
    what ``jq`` and scripts read)."""
    indent = 2 if sys.stdout.isatty() else None
    return scrub(json.dumps(data, indent=indent, sort_keys=False, default=str))


def emit(data: dict[str, Any], *, as_json: bool,
         human: Callable[[dict[str, Any]], str] | None = None,
         warnings_to_stderr: bool = False) -> int:
    """Print ``data`` and return the exit code its ``ok`` implies.

    With ``warnings_to_stderr``, human mode prints the result's ``warnings`` on stderr, so
    that stdout holds only what the command is for (``render``: the manifests).
    """
    ok = bool(data.get("ok", True))
    if as_json:
        text = dumps(data)
        written = _write_stdout(text + "\n")
        write_result(text)
        if not written:
            return 1
    else:
        text = human(data) if human else default_human(data)
        if text:
            sys.stdout.write(scrub(text) + ("\n" if not text.endswith("\n") else ""))
        if warnings_to_stderr:
            for warning in data.get("warnings") or []:
                sys.stderr.write(scrub(warning_text(warning)) + "\n")
        if not ok and data.get("error"):
            _print_error_text(data["error"])
    if ok:
        return 0
    err = data.get("error") or {}
    return 2 if err.get("code") in (Code.CONFIG, Code.USAGE) else 1


def _write_stdout(text: str) -> bool:
    """Write the result; when stdout itself cannot take it, say so on stderr (best effort)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
        return True
    except OSError as exc:
        code = Code.DISK_FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else Code.IO
        with contextlib.suppress(OSError):
            sys.stderr.write(f"error [{code}]: the result could not be written to stdout: "
                             f"{exc.strerror or exc}\n")
        return False


def _print_error_text(err: dict[str, Any]) -> None:
    sys.stderr.write(scrub(f"error [{err.get('code')}]: {err.get('message')}\n"))
    if err.get("hint"):
        sys.stderr.write(scrub(f"hint: {err['hint']}\n"))


def warning_text(warning: dict[str, Any] | str) -> str:
    """``warning [CODE]: FILE:LINE: MESSAGE`` and its hint on a second line."""
    if isinstance(warning, str):
        return f"warning: {warning}"
    at = f"{warning['at']}: " if warning.get("at") else ""
    out = f"warning [{warning.get('code')}]: {at}{warning.get('message')}"
    return out + (f"\n  hint: {warning['hint']}" if warning.get("hint") else "")


def emit_error(exc: GitMirrorError, *, as_json: bool, extra: dict[str, Any] | None = None) -> int:
    """Print ``exc`` as the failure of the command (with ``extra`` fields in JSON); its exit
    code (2 for a config or usage error, else 1)."""
    data: dict[str, Any] = {"ok": False, **(extra or {}), "error": exc.to_json()}
    if as_json:
        text = dumps(data)
        _write_stdout(text + "\n")
        write_result(text)
    else:
        _print_error_text(data["error"])
    return exc.exit_code


def default_human(data: dict[str, Any]) -> str:
    """``key: value`` lines of a result without a renderer of its own (no ``error``)."""
    lines = []
    for key, value in data.items():
        if key in ("error",):
            continue
        if isinstance(value, list | dict):
            value = json.dumps(value, default=str)
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def short(oid: str | None) -> str:
    """The first 12 hex digits of an object id, or ``-``."""
    return oid[:12] if oid else "-"


def table(rows: list[list[str]], header: list[str]) -> str:
    """``rows`` under ``header`` in left-aligned columns two spaces apart."""
    cols = [header, *rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in cols)


def configure_logging(verbose: bool, command: str | None = None) -> None:
    """The CLI's logs: JSON lines on stderr (stdout is for the result), warnings by default,
    more with ``-v`` or ``GIT_MIRROR_LOG_LEVEL`` (debug, info, warning, error); every line
    names the ``command`` as its ``operation``."""
    logs.configure(logs.level_of(verbose=verbose),
                   fields={"operation": command} if command else None)
