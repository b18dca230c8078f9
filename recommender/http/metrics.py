"""Prometheus metrics of the HTTP service (``/metrics``)."""

from __future__ import annotations


class Metrics:
    """Request counts and a latency histogram, per route template (not per raw path)."""

    def __init__(self, multiprocess: bool) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = multiprocess
        # Multiprocess mode keeps values in files that /metrics adds up; a registry per app
        # otherwise, so several apps in one process (tests) never clash.
        self.registry = None if multiprocess else CollectorRegistry()
        self.requests = Counter(
            "recommender_http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "recommender_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if registry is None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
