"""How healthy a repository looks on the dashboard: a level and the reasons, worst first.

Read from its ``status --json`` entry and serve's scheduler entry, nothing else: ``failing``
for what needs a person now (a failed sync or flush, a diverged lane, an unreadable secret,
a flush that gave up), ``warning`` for what will likely settle (a lane waiting for flush, a
flush being retried, a ref that differs from upstream), ``ok`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

OK, WARN, FAIL = "ok", "warning", "failing"
_RANK = {OK: 0, WARN: 1, FAIL: 2}


def worst(levels: Iterable[str]) -> str:
    """The worst of ``levels`` (ok when there are none)."""
    return max(levels, key=lambda level: _RANK[level], default=OK)


class _Findings:
    """What is wrong with one repository, in two grades."""

    def __init__(self) -> None:
        self.fails: list[str] = []
        self.warns: list[str] = []

    def verdict(self) -> tuple[str, list[str]]:
        level = FAIL if self.fails else WARN if self.warns else OK
        return level, self.fails + self.warns


def _runs_health(repo: dict[str, Any], found: _Findings) -> None:
    """The mirror's existence and the last sync and flush."""
    exists = repo["mirror"]["exists"]
    if not exists:
        found.fails.append("the mirror does not exist yet")
    last_sync, last_flush = repo.get("lastSync"), repo.get("lastFlush")
    if last_sync and last_sync.get("ok") is False:
        found.fails.append("the last sync failed")
    elif last_sync is None and exists:
        found.warns.append("never synced")
    if last_flush and last_flush.get("ok") is False:
        found.fails.append("the last flush failed")


def _refs_health(repo: dict[str, Any], found: _Findings) -> None:
    """Lanes and sources against upstream as last observed."""
    for lane in repo["lanes"]:
        if lane["diverged"]:
            found.fails.append(f"lane {lane['name']} diverged: it needs a person")
        elif lane["pendingFlush"]:
            found.warns.append(f"lane {lane['name']} waits for flush")
        elif not lane["githubInSync"]:
            found.warns.append(f"lane {lane['name']} differs from upstream")
    found.warns += [f"source {src['branch']} differs from upstream"
                    for src in repo["sources"] if not src["githubInSync"]]


def _serve_health(repo: dict[str, Any], sched: dict[str, Any] | None,
                  found: _Findings) -> None:
    """Unreadable secrets, and serve's flush retries."""
    found.fails += [f"secret {secret['role']}: {secret['error']}"
                    for secret in repo.get("secrets", []) if secret.get("error")]
    if sched and sched.get("flushGaveUp"):
        found.fails.append("flush gave up retrying")
    elif sched and sched.get("flushConsecutiveFailures"):
        found.warns.append(f"flush failed {sched['flushConsecutiveFailures']} time(s) in a row; "
                           "retrying")


def repo_health(repo: dict[str, Any], sched: dict[str, Any] | None) -> tuple[str, list[str]]:
    """One repository's level and the reasons for it, worst first."""
    found = _Findings()
    _runs_health(repo, found)
    _refs_health(repo, found)
    _serve_health(repo, sched, found)
    return found.verdict()
