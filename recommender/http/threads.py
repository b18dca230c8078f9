"""Where a worker runs blocking work (``Threads``, on ``app.state.threads``): reads on a few
threads, writes on one thread of lower CPU priority."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import threading
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import anyio.to_thread

#: How much lower the writer thread's CPU priority is than the readers' (a nice value): on a
#: machine whose cores are busy answering, embedding new articles takes the idle time.
WRITER_NICENESS = 10

F = typing.TypeVar("F", bound=Callable[..., Any])


def _lower_this_thread_priority() -> None:
    """Lower the calling thread's CPU priority (Linux keeps a nice value per thread); where
    that is not possible, nothing changes."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(
            os.PRIO_PROCESS,
            threading.get_native_id(),
            os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + WRITER_NICENESS,
        )


class Threads:
    """Reads on ``read_threads`` threads (requests beyond that wait their turn, instead of 40
    threads taking turns on the GIL), writes on one thread of lower CPU priority
    (``WRITER_NICENESS``), so that embedding never starves the reads."""

    def __init__(self, read_threads: int) -> None:
        self.read_threads = max(1, read_threads)
        self._reads: anyio.CapacityLimiter | None = None  # made in the event loop, when first used
        self._writer: ThreadPoolExecutor | None = None
        #: Reads on a thread, running or waiting for their turn (counted in the event loop).
        self._busy = 0

    async def read(self, call: Callable[[], Any], *, quick: bool = False) -> Any:
        """``call()`` on a read thread; a ``quick`` one (a lookup of a fraction of a
        millisecond, that reads only what is loaded) in the calling event loop instead, its
        turn come, when reads run one at a time (``read_threads`` 1): still one read at a
        time, without two thread switches (490 -> 770 lookups a second under wrk, 2 cores)."""
        if self._reads is None:
            self._reads = anyio.CapacityLimiter(self.read_threads)
        if quick and self.read_threads == 1:
            if not self._busy:
                # No read runs or waits (the usual case): this one runs now, to its end, with
                # nothing awaited, so no other read can start meanwhile; the limiter (its
                # task bookkeeping: 3% of a hot read's time) is left out.
                return call()
            await self._reads.acquire()
            try:
                return call()
            finally:
                self._reads.release()
        self._busy += 1
        try:
            return await anyio.to_thread.run_sync(call, limiter=self._reads)
        finally:
            self._busy -= 1

    async def write(self, call: Callable[[], Any]) -> Any:
        """``call()`` on the writer thread."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(
                1, thread_name_prefix="recommender-writer", initializer=_lower_this_thread_priority
            )
        return await asyncio.get_running_loop().run_in_executor(self._writer, call)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)


def on_read_threads(endpoint: F) -> F:
    """The synchronous endpoint ``endpoint``, run on its app's read threads
    (``app.state.threads``, found through the ``request`` argument it must take)."""
    if "request" not in inspect.signature(endpoint).parameters:
        raise TypeError(f"{endpoint.__name__} must take the request to run on the read threads")

    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        threads: Threads = kwargs["request"].app.state.threads
        return await threads.read(functools.partial(endpoint, *args, **kwargs))

    return typing.cast(F, run)
