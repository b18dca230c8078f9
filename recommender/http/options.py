"""How the HTTP service behaves (``ServeOptions``), and where worker processes find it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..settings import CACHED_ARTICLES

#: Where ``recommend serve`` hands its options to worker processes (JSON of ServeOptions,
#: without the token, which workers read from RECOMMENDER_TOKEN themselves).
OPTIONS_ENV = "RECOMMENDER_SERVE_OPTIONS"
TOKEN_ENV = "RECOMMENDER_TOKEN"
INDEX_ENV = "RECOMMENDER_SERVE_INDEX"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The longest a write may wait for another writer (``?wait=``): it holds a worker thread.
MAX_WRITE_WAIT = 60.0


@dataclass(frozen=True)
class ServeOptions:
    """How the service behaves; ``recommend serve`` fills it from its options.

    token: the bearer token writes need; None refuses every write.
    max_age: seconds a browser or CDN may keep a read (``Cache-Control: max-age``).
    cors_origins: origins whose pages may call the service (``*`` for any).
    max_body_bytes: larger request bodies get 413 before they are read.
    write_wait: seconds a write waits for another writer by default before 409.
    max_k: the largest ``k`` a request may ask for.
    refresh_seconds: how often a worker looks for changes written by others.
    multiprocess_metrics: the workers share /metrics through prometheus-client's files.
    read_threads: reads (related lists, articles, title search) a worker computes at once;
        the others wait their turn. A read is mostly Python holding the GIL: more threads
        only take turns more often (measured, 16 requests in flight on one worker: 201 req/s
        and p99 121 ms with 40 threads, 264 req/s and 71 ms with 1).
    events_rate: events (``POST /events``) a client address may send a second, on average,
        per worker; bursts of ``events_burst`` (at least a batch, 100).
    threads: the model's threads where a text is embedded (None: one per core); ``recommend
        serve`` sets it from RECOMMENDER_THREADS.
    cached_articles: articles whose listed fields a worker keeps (``read.shown``).
    """

    token: str | None = None
    max_age: int = 60
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    write_wait: float = 0.0
    max_k: int = 100
    refresh_seconds: float = 1.0
    multiprocess_metrics: bool = False
    read_threads: int = 1
    threads: int | None = None
    events_rate: float = 10.0
    events_burst: int = 200
    cached_articles: int = CACHED_ARTICLES

    def public(self) -> dict[str, Any]:
        """The options without the token, for handing to worker processes."""
        data = dataclasses.asdict(self)
        del data["token"]
        return data
