"""A Job's result, through the pod's termination message: a channel, not log scraping.

The Job's container declares ``terminationMessagePath`` (:data:`MESSAGE_PATH`) with the
``File`` policy (never the log's tail) and gets ``GIT_MIRROR_RESULT_FILE`` naming that path.
The ``--json`` result the command prints is also written there (:func:`write_result`); the
kubelet copies it into the pod's ``status.containerStatuses[].state.terminated.message``,
where the CLI that created the Job reads it (:func:`read_result`). Log lines, JSON ones
included, never reach that field.

The kubelet keeps at most 4096 bytes of the message: a larger result is written with its
largest lists shortened (their first entries kept; a list of one object, such as one
repository, is shortened inside that object) or its largest fields emptied, each named in
``"truncated"`` (the full object is still the last line of the pod's log, for people).
"""

from __future__ import annotations

import json
import os
from typing import Any

RESULT_ENV = "GIT_MIRROR_RESULT_FILE"
MESSAGE_PATH = "/dev/termination-log"
MESSAGE_LIMIT = 4096
# Fields that say what happened; never emptied to make room.
_KEEP = ("ok", "error", "node", "dryRun", "pendingFlush", "githubInSync", "partialSuccess",
         "partialSuccessRecovered", "truncated")


def compact(data: dict[str, Any], limit: int = MESSAGE_LIMIT) -> str:
    """``data`` as one JSON line of at most ``limit`` bytes (see the module docstring)."""
    out = dict(data)
    text = json.dumps(out, separators=(",", ":"), default=str)
    truncated: list[str] = []
    while len(text.encode()) > limit:
        sizes = {k: len(json.dumps(v, default=str)) for k, v in out.items()
                 if k not in _KEEP and v not in ([], {}, None)}
        if not sizes:
            # Only the essentials are left and still too long (a huge error message).
            err = dict(out.get("error") or {})
            if err.get("message") and len(err["message"]) > 512:
                err["message"] = err["message"][:512] + "…"
                out["error"] = err
                truncated.append("error.message")
            else:
                out = {k: out[k] for k in ("ok", "error") if k in out}
                truncated.append("*")
                out["truncated"] = truncated
                return json.dumps(out, separators=(",", ":"), default=str)[:limit]
        else:
            key = max(sizes, key=lambda k: sizes[k])
            value = out[key]
            inner = (_shrunk(value[0]) if isinstance(value, list) and len(value) == 1
                     and isinstance(value[0], dict) else None)
            if isinstance(value, list) and len(value) > 1:
                out[key] = value[: len(value) // 2]  # keep what fits, from the front
            elif inner is not None:
                # One entry (one repository): shorten inside it rather than losing it whole.
                out[key] = [inner]
            else:
                out[key] = ([] if isinstance(value, list) else {} if isinstance(value, dict)
                            else None)
            if key not in truncated:
                truncated.append(key)
        out["truncated"] = truncated
        text = json.dumps(out, separators=(",", ":"), default=str)
    return text


def _shrunk(entry: dict[str, Any]) -> dict[str, Any] | None:
    """``entry`` with its largest list halved (or emptied when one item long); None when it
    has no list left to shorten."""
    sizes = {k: len(json.dumps(v, default=str)) for k, v in entry.items()
             if k not in _KEEP and k != "id" and isinstance(v, list) and v}
    if not sizes:
        return None
    key = max(sizes, key=lambda k: sizes[k])
    value = entry[key]
    return {**entry, key: value[: len(value) // 2] if len(value) > 1 else []}


def write_result(text: str) -> None:
    """Write the result (already scrubbed JSON text) where ``GIT_MIRROR_RESULT_FILE`` says.

    Only a Job's pod has that variable. A failure to write is said on stderr: the command's
    own exit code stands, and the CLI that waits reports a result that never arrived.
    """
    path = os.environ.get(RESULT_ENV)
    if not path:
        return
    try:
        data = json.loads(text)
        message = compact(data) if isinstance(data, dict) else text[:MESSAGE_LIMIT]
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(message)
    except (OSError, ValueError) as exc:
        import sys

        sys.stderr.write(f"git-mirror: cannot write the result to {path}: {exc}\n")


def read_result(pod: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the result object from the pod's termination message or None, the terminated state)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        terminated = (status.get("state") or {}).get("terminated") or \
            (status.get("lastState") or {}).get("terminated")
        if not terminated:
            continue
        message = terminated.get("message") or ""
        try:
            data = json.loads(message) if message else None
        except ValueError:
            data = None
        if isinstance(data, dict) and "ok" in data:
            return data, terminated
        return None, terminated
    return None, {}
