"""``flush``: lane refs back upstream, fast-forward only (built by the flush work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from git_mirror.errors import GitMirrorError

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


class FlushResult:
    def to_json(self) -> dict[str, object]:
        return {"ok": True}


def flush(cfg: LoadedConfig, *, repo: str | None = None, lane: str | None = None,
          confirm: bool = False, wait: bool = False, node: str = "local") -> FlushResult:
    raise GitMirrorError("flush is not available yet", code="not-implemented")
