"""Structured JSON logs on stderr, with a request id, and never a secret.

Every line is one JSON object. The last processor runs :func:`git_mirror.redact.scrub` over
the rendered line, so a token that slipped into an event (an exception message, a git stderr)
is still replaced by ``***``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from git_mirror.redact import scrub


def _scrub_line(_logger: Any, _name: str, line: Any) -> Any:
    # Runs after the JSON renderer, so ``line`` is the rendered text.
    return scrub(line) if isinstance(line, str) else line


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send structlog and stdlib logging (uvicorn's) to ``stream`` as JSON lines."""
    out = stream or sys.stderr
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
            _scrub_line,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(sort_keys=True), _scrub_line],
        foreign_pre_chain=[structlog.processors.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
    ))
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = [handler]
        lg.setLevel(level)
        lg.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


def get(name: str = "git-mirror") -> Any:
    """A bound logger; request-scoped fields come from structlog's contextvars."""
    return structlog.get_logger(name)
