"""Prometheus metrics of one ``serve`` process, in its own registry.

The registry is per :class:`Metrics` object (not the library's global one), so two servers
in one process (tests) never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_DURATIONS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """Every metric ``serve`` exposes on ``/metrics``."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.sync_total = Counter("git_mirror_sync_total", "Syncs run by serve",
                                  ["repository", "result"], registry=r)
        self.sync_duration = Histogram("git_mirror_sync_duration_seconds", "Sync duration",
                                       ["repository"], buckets=_DURATIONS, registry=r)
        self.sync_last_success = Gauge("git_mirror_sync_last_success_timestamp_seconds",
                                       "Unix time of the last successful sync", ["repository"],
                                       registry=r)
        self.flush_total = Counter("git_mirror_flush_total", "Flush attempts run by serve",
                                   ["repository", "result"], registry=r)
        self.flush_duration = Histogram("git_mirror_flush_duration_seconds", "Flush duration",
                                        ["repository"], buckets=_DURATIONS, registry=r)
        self.flush_last_success = Gauge("git_mirror_flush_last_success_timestamp_seconds",
                                        "Unix time of the last successful flush", ["repository"],
                                        registry=r)
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
