"""Prometheus metrics of the HTTP service (``/metrics``).

Every label takes few values, whatever clients send: a label value made of a client's bytes
would add a series per request and grow ``/metrics`` without bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The methods counted by name; any other (a made-up or lowercase one) counts as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


def method_label(method: str) -> str:
    """The method as a label: one of ``METHODS``, else ``other``."""
    return method if method in METHODS else "other"


def route_label(scope: Mapping[str, Any]) -> str:
    """The route template that answered (``/articles/{article_id:path}``), ``/static`` for the
    static files, ``unmatched`` for any other path: never the path itself."""
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str) and template:
        return template
    path = scope.get("path")
    return "/static" if isinstance(path, str) and path.startswith("/static/") else "unmatched"


class Metrics:
    """Request counts and a latency histogram, by method (``method_label``), route template
    (``route_label``) and status code."""

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
