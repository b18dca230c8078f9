"""Prometheus metrics of the HTTP service (``/metrics``).

Every label takes few values, whatever clients send: a label value made of a client's bytes
would add a series per request and grow ``/metrics`` without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import RecommenderError

if TYPE_CHECKING:
    from ..engine import Recommender

log = logging.getLogger(__name__)

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
    (``route_label``) and status code; and the served index (``index``): gauges set from its
    ``status()`` as /metrics is rendered, and its answers counted (``count_answers``)."""

    def __init__(
        self, multiprocess: bool, index: Callable[[], Recommender | None] = lambda: None
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
        self.index = index
        # Set by the worker that renders /metrics, just before: with several workers, each
        # gauge shows the value of the one that wrote it last (that one), among live ones.
        gauges = {
            "articles": "Articles in the served index (live ones).",
            "generation": "Updates committed to the served index's version (its build is 1).",
            "seconds_since_write": "Seconds since the index folder was last written to.",
            "seconds_since_refresh": (
                "Seconds since this worker last loaded the index or found it current."
            ),
        }
        self.gauges = {
            name: Gauge(
                f"recommender_index_{name}",
                text,
                multiprocess_mode="livemostrecent",
                registry=self.registry,
            )
            for name, text in gauges.items()
        }
        self.answers = Counter(
            "recommender_related_answers",
            "Related lists of indexed articles answered, from precomputed lists or searched.",
            ["source"],
            registry=self.registry,
        )
        # Both shown from the start, at 0; their series found once, not after every request.
        self._answer_series = tuple(
            self.answers.labels(source) for source in ("precomputed", "searched")
        )
        self.events = Counter(
            "recommender_events",
            "Events of the box (POST /events): accepted (on disk), rejected (invalid), "
            "rate_limited, refused (valid but not kept: a read-only folder, a full queue).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("accepted", "rejected", "rate_limited", "refused"):
            self.events.labels(outcome)
        # What this process has added to ``answers`` so far: the index counts its answers
        # itself; each worker adds what it counted since (a worker's file, with several).
        self._counted = (0, 0)
        self._counted_lock = threading.Lock()
        # The series of each label combination seen, found once rather than per request.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request answered (``method`` and ``route``: labels) and the index's
        answers since the last one (``count_answers``)."""
        children = self._children.get((method, route, status))
        if children is None:  # a few dozen combinations at most: the labels take few values
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)
        self.count_answers()

    def count_events(self, outcome: str, count: int) -> None:
        """Count ``count`` events of ``POST /events`` with their ``outcome``."""
        if count:
            self.events.labels(outcome).inc(count)

    def count_answers(self) -> None:
        """Add the answers the index counted since the last call to ``answers``: cheap,
        called after every request (every worker's counts then reach its file, whichever
        worker renders /metrics)."""
        rec = self.index()
        if rec is None:
            return
        answers = rec.answers()
        now = (answers.precomputed, answers.searched)
        with self._counted_lock:
            before, self._counted = self._counted, now
        for series, was, is_ in zip(self._answer_series, before, now, strict=True):
            if is_ > was:
                series.inc(is_ - was)

    def _set_gauges(self) -> None:
        rec = self.index()
        if rec is None:
            return
        try:
            status = rec.status()
        except RecommenderError as exc:  # /metrics answers still: the gauges keep their values
            log.warning("cannot read the index's status: %s", exc)
            return
        now = time.time()
        self.gauges["articles"].set(status.articles)
        self.gauges["generation"].set(status.generation)
        self.gauges["seconds_since_write"].set(max(0.0, now - status.written_at))
        self.gauges["seconds_since_refresh"].set(max(0.0, now - status.refreshed_at))

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type: the index's gauges
        and counts brought up to date first."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self._set_gauges()
        self.count_answers()

        registry = self.registry
        if registry is None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
