"""Progress on stderr for a person at a terminal, around one confirmed operation.

Shown only when all hold: the operation changes something (``--confirm``), stderr is a
terminal, the output is not ``--json``, and ``-q`` was not given. Otherwise nothing is
installed and the operation runs exactly as in a script.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from git_mirror.cli.main import Ctx


def wanted(ctx: Ctx, confirm: bool) -> bool:
    """Progress is shown: a confirmed run, stderr a terminal, no ``--json``, no ``-q``."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return confirm and tty and not ctx.json and not ctx.quiet


@contextlib.contextmanager
def watching(ctx: Ctx, confirm: bool) -> Iterator[None]:
    """Relay git's progress and one line per repository to stderr while the block runs."""
    from git_mirror.git import progress

    sink = progress.TerminalProgress(sys.stderr) if wanted(ctx, confirm) else None
    with progress.reporting(sink):
        yield
