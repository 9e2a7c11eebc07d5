"""Prometheus metrics of one ``serve`` process, in its own registry.

The registry is per :class:`Metrics` object (not the library's global one), so two servers
in one process (tests) never share counters.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_DURATIONS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class RunMetrics:
    """The counter, duration histogram and last-success gauge of one kind of run."""

    def __init__(self, kind: str, counted: str, registry: CollectorRegistry) -> None:
        prefix = f"git_mirror_{kind}"
        self.total = Counter(f"{prefix}_total", f"{counted} run by serve",
                             ["repository", "result"], registry=registry)
        self.duration = Histogram(f"{prefix}_duration_seconds", f"{kind.capitalize()} duration",
                                  ["repository"], buckets=_DURATIONS, registry=registry)
        self.last_success = Gauge(f"{prefix}_last_success_timestamp_seconds",
                                  f"Unix time of the last successful {kind}", ["repository"],
                                  registry=registry)

    def observe(self, repository: str, ok: bool, seconds: float) -> None:
        """One run of ``repository`` ended, ``ok`` or not, after ``seconds``."""
        self.total.labels(repository, "ok" if ok else "error").inc()
        self.duration.labels(repository).observe(seconds)
        if ok:
            self.last_success.labels(repository).set(time.time())


class Metrics:
    """Every metric ``serve`` exposes on ``/metrics``."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.sync = RunMetrics("sync", "Syncs", r)
        self.flush = RunMetrics("flush", "Flush attempts", r)
        self.flush_consecutive_failures = Gauge(
            "git_mirror_flush_consecutive_failures", "Failed flush attempts since the last success",
            ["repository"], registry=r)
        self.pending_flush = Gauge("git_mirror_pending_flush",
                                   "1 when a lane holds commits upstream lacks", ["repository"],
                                   registry=r)
        self.queue_depth = Gauge("git_mirror_queue_depth",
                                 "Jobs running or waiting (sync, flush, maintenance)", ["kind"],
                                 registry=r)
        self.maintenance_total = Counter("git_mirror_maintenance_total", "Maintenance runs",
                                         ["repository", "result"], registry=r)
        self.http_requests = Counter("git_mirror_http_requests_total", "HTTP requests served",
                                     ["service", "code"], registry=r)
        self.http_in_flight = Gauge("git_mirror_http_git_requests_in_flight",
                                    "git requests being served", registry=r)
        self.webhooks = Counter("git_mirror_webhooks_total", "Webhook deliveries",
                                ["event", "result"], registry=r)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
