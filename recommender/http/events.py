"""How a worker keeps the box's events (``POST /events``) without slowing its reads: one
writer thread of its own that writes what every request handed it since its last write in one
append (group commit: many requests, one fsync), and a token bucket per client.

A client is its address (``client_key``): an IPv6 address stands for its /64, the block one
subscriber is given, or a single host could take a fresh bucket for every request.

A request's events are acknowledged only once they are on disk: the request waits (in the event
loop, holding no thread) for the append that holds them. The queue is bounded (``MAX_PENDING``
events): when the disk cannot keep up, requests are refused (503) rather than held in memory.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from ..events import Event, View
from ..storage.events import append_events

log = logging.getLogger(__name__)

#: Events waiting for the writer at most; beyond, a request is refused (503, Retry-After).
MAX_PENDING = 20_000


class EventWriter:
    """The worker's events writer (see the module's docstring). ``complete`` fills in what a
    view did not say (its article's section and language) from the index, on the writer's
    thread."""

    def __init__(self, index: Path, complete: Callable[[Event], Event] = lambda e: e) -> None:
        self.index = index
        self._complete = complete
        self._queue: list[tuple[Sequence[Event], Future[None]]] = []
        self._pending = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.appends = 0  # appends made: each one fsync (tests read it)

    def submit(self, events: Sequence[Event]) -> Future[None] | None:
        """Hand ``events`` to the writer: a future done once they are on disk, or None when
        the queue is full."""
        done: Future[None] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the events writer is closed")
            if self._pending + len(events) > MAX_PENDING:
                return None
            self._queue.append((events, done))
            self._pending += len(events)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="recommender-events", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        return done

    async def write(self, events: Sequence[Event]) -> bool:
        """``events`` on disk (the library's error raised when they cannot be); False when
        the queue is full."""
        done = self.submit(events)
        if done is None:
            return False
        await asyncio.wrap_future(done)
        return True

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    return
                taken, self._queue = self._queue, []
            events = [self._completed(e) for batch, _ in taken for e in batch]
            try:
                append_events(self.index, events)
                self.appends += 1
                failure: BaseException | None = None
            except Exception as exc:  # each waiting request answers it
                failure = exc
            with self._wake:
                self._pending -= sum(len(batch) for batch, _ in taken)
            for _, done in taken:
                if failure is None:
                    done.set_result(None)
                else:
                    done.set_exception(failure)

    def _completed(self, event: Event) -> Event:
        if not isinstance(event, View) or (event.section and event.language):
            return event
        try:
            return self._complete(event)
        except Exception:  # a view is kept as the box sent it
            log.debug("cannot complete view %s", event.view, exc_info=True)
            return event

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()


class RateLimit:
    """A token bucket per client address, in memory only (never written anywhere): each
    client may send ``rate`` events a second on average, ``burst`` at once. The table keeps at
    most ``MAX_CLIENTS`` addresses, the least recently seen dropped first (a dropped client
    starts again with a full bucket)."""

    MAX_CLIENTS = 10_000

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, cost: int) -> float:
        """Take ``cost`` tokens from ``client``'s bucket: 0 when taken, else the seconds until
        they would be there (nothing is taken then)."""
        cost = max(1, cost)
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (min(cost, self.burst) - tokens) / self.rate if self.rate > 0 else 3600.0
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return wait


def client_key(host: str) -> str:
    """The rate limit's name for a client address: an IPv6 address's /64 (one subscriber's
    block, 2**64 addresses that are all one client), any other address as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # "testclient", a Unix socket
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ReportCache:
    """``GET /report``'s answers, each kept ``SECONDS`` after it was computed: reading the
    store is seconds of a core for a million events, and the answer of a minute ago serves an
    editor as well. A report asked for while the same one (same ``since``) is being computed
    waits for it rather than starting another. At most ``MAX_KEYS`` are kept."""

    SECONDS = 60.0
    MAX_KEYS = 16

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._answers: OrderedDict[str, tuple[float, asyncio.Future[dict[str, object]]]] = (
            OrderedDict()
        )

    def cached(self, key: str) -> asyncio.Future[dict[str, object]] | None:
        """The answer for ``key``, computed or being computed, while it is fresh."""
        found = self._answers.get(key)
        if found is None:
            return None
        started, answer = found
        failed = answer.done() and (answer.cancelled() or answer.exception() is not None)
        if failed or self._clock() - started > self.SECONDS:
            del self._answers[key]
            return None
        return answer

    def compute(
        self, key: str, build: Awaitable[dict[str, object]]
    ) -> asyncio.Future[dict[str, object]]:
        """Start ``build`` as the answer for ``key``."""
        answer = asyncio.ensure_future(build)
        self._answers[key] = (self._clock(), answer)
        while len(self._answers) > self.MAX_KEYS:
            self._answers.popitem(last=False)
        return answer
