"""The one log pipeline: every line of every command and of ``serve``, as one JSON object.

::

    logging.getLogger("git_mirror.sync").info(...)     mirror, transport, CLI: standard logging
    logs.get("git_mirror.server.http").info(...)      server: structlog, keyword fields
            │
            └──> structlog ProcessorFormatter ──> JSON line ──> redact.scrub ──> sys.stderr

Both kinds of logger end in the same handler and formatter, so every line has the same
fields: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``event``, plus, when known,
``repository``, ``operation`` and ``requestId``, and whatever the call adds
(``extra={...}`` for standard logging, keywords for structlog). The request-scoped fields
come from structlog's context variables: ``serve`` binds ``requestId`` for every request, and
its scheduler binds ``repository``, ``operation`` and the ``requestId`` of the request that
asked for the work, so the lines the mirror layer logs while doing it carry them too. A
thread that does such work must run in a copy of the context (:func:`in_context`).

The last step of every line is :func:`git_mirror.redact.scrub` over the rendered text: a
secret that slipped into an event, an exception message or a git stderr is ``***``.

Lines go to whatever ``sys.stderr`` is when they are written (tests and embedders swap it),
unless :func:`configure` was given a stream.

structlog is imported when the first line is written or the first structlog logger is asked
for, not before: a command that logs nothing (the usual case, warnings only) does not pay
for its import, which costs more than the rest of the CLI's start-up.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from git_mirror.redact import scrub

if TYPE_CHECKING:
    import structlog
    from structlog.typing import EventDict

ROOT = "git_mirror"
# Libraries whose lines belong in serve's log (the server's start-up and errors).
LIBRARIES = ("uvicorn", "uvicorn.error")
LEVEL_ENV = "GIT_MIRROR_LOG_LEVEL"

T = TypeVar("T")


def _scrub_line(_logger: Any, _name: str, line: Any) -> Any:
    # Runs after the JSON renderer: ``line`` is the rendered text.
    return scrub(line) if isinstance(line, str) else line


# What a LogRecord always has; anything else was passed with ``extra={...}``. uvicorn's
# ``color_message`` is the event again, with terminal colours.
_RECORD = {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
           "message", "asctime", "color_message"}


def _extras(_logger: Any, _name: str, event: EventDict) -> EventDict:
    record = event.get("_record")
    if isinstance(record, logging.LogRecord):
        for key, value in record.__dict__.items():
            if key not in _RECORD and not key.startswith("_"):
                event[key] = value
    return event


# Fields of the whole process (the CLI's ``operation``: the command), under any line's own.
_PROCESS_FIELDS: dict[str, Any] = {}


def _process_fields(_logger: Any, _name: str, event: EventDict) -> EventDict:
    for key, value in _PROCESS_FIELDS.items():
        event.setdefault(key, value)
    return event


def _fields() -> list[Any]:
    """What every line gets before it is rendered, whichever logger wrote it."""
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _extras,
        _process_fields,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def _formatter() -> structlog.stdlib.ProcessorFormatter:
    import structlog

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_fields(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True, default=str),
            _scrub_line,
        ],
    )


class _Handler(logging.Handler):
    """Writes each formatted line to its stream, or to the current ``sys.stderr``."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self.stream = stream

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line (the formatter is built for the first line)."""
        if self.formatter is None:
            self.setFormatter(_formatter())
        return super().format(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            out = self.stream if self.stream is not None else sys.stderr
            out.write(self.format(record) + "\n")
            out.flush()
        except Exception:  # noqa: BLE001 - a log line must never break the command or the server
            self.handleError(record)


_structlog_configured = False


def _configure_structlog() -> None:
    # structlog loggers are standard loggers underneath: the same handler, levels and fields.
    global _structlog_configured
    import structlog

    _structlog_configured = True
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_fields(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def level_of(*, verbose: bool = False, default: str = "warning") -> int:
    """The level asked for: ``GIT_MIRROR_LOG_LEVEL`` (debug, info, warning, error), else info
    with ``-v``, else ``default``; an unknown name is warning."""
    name = os.environ.get(LEVEL_ENV) or ("info" if verbose else default)
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.WARNING


def configure(level: int = logging.INFO, *, stream: TextIO | None = None,
              fields: Mapping[str, str] | None = None) -> None:
    """Route ``git_mirror`` and the server's libraries to one JSON-lines handler at ``level``;
    ``fields`` go on every line of the process (the CLI's ``operation``) unless a line says
    otherwise.

    Calling it again replaces the handler (a new stream, a new level) and the fields;
    nothing is added twice.
    """
    _PROCESS_FIELDS.clear()
    _PROCESS_FIELDS.update(fields or {})
    handler = _Handler(stream)
    for name in (ROOT, *LIBRARIES):
        lg = logging.getLogger(name)
        lg.handlers = [h for h in lg.handlers if not isinstance(h, _Handler)] + [handler]
        lg.setLevel(level)
        lg.propagate = False
    logging.getLogger("uvicorn.access").disabled = True   # our middleware logs each request


def get(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger over the standard logger ``name`` (keep it under ``git_mirror``)."""
    import structlog

    if not _structlog_configured:
        _configure_structlog()
    return structlog.stdlib.get_logger(name)


def in_context(fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` bound to a copy of the current context: for a thread that does a request's work,
    so its lines carry the request's ``requestId``, ``repository`` and ``operation``."""
    ctx = contextvars.copy_context()
    return lambda: ctx.run(fn)

