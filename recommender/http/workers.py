"""Running the service: ``run`` serves an index in this process, or in worker processes,
each on its own socket (SO_REUSEPORT), supervised by ``Workers``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import RecommenderError
from .app import create_app
from .options import INDEX_ENV, METRICS_ENV, OPTIONS_ENV, TOKEN_ENV, ServeOptions

#: What each worker process runs (uvicorn's factory: ``app.app_from_environment``).
APP_FACTORY = "recommender.http.app:app_from_environment"


#: What ``--log-format`` takes: text lines, or one JSON object a line (``logs.JsonFormatter``).
LOG_FORMATS = ("plain", "json")


def log_config(level: str, log_format: str = "plain") -> dict[str, Any]:
    """uvicorn's logging with our one-line-per-request log (uvicorn's access log is off), in
    plain lines or JSON ones (``log_format``: one of ``LOG_FORMATS``)."""
    formatter: dict[str, Any] = (
        {"()": "recommender.http.logs.JsonFormatter"}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "chosen",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"chosen": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "recommender": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def run(
    index: Path,
    *,
    host: str,
    port: int,
    workers: int,
    options: ServeOptions,
    log_level: str = "info",
    log_format: str = "plain",
) -> None:
    """Serve ``index`` until interrupted: in this process for one worker, else in ``workers``
    processes each opening the index (prometheus-client's multiprocess mode for /metrics)."""
    import tempfile

    import uvicorn

    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,
        "log_config": log_config(log_level, log_format),
        "server_header": False,
    }
    if workers <= 1:
        uvicorn.run(create_app(index, options=options), **common)
        return
    with tempfile.TemporaryDirectory(prefix="recommender-metrics-") as metrics_dir:
        os.environ.setdefault(METRICS_ENV, metrics_dir)
        shared = dataclasses.replace(options, multiprocess_metrics=True)
        os.environ[OPTIONS_ENV] = json.dumps(shared.public())
        os.environ[INDEX_ENV] = str(index)
        if options.token:
            os.environ[TOKEN_ENV] = options.token
        if hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux"):
            Workers(common, workers).run()
        else:  # pragma: no cover - one socket shared by the workers (uvicorn's own)
            uvicorn.run(APP_FACTORY, factory=True, workers=workers, **common)


#: uvicorn's exit code for a worker whose start-up failed (uvicorn.config.STARTUP_FAILURE).
STARTUP_FAILURE = 3


def _serve_worker(common: dict[str, Any], sock: socket.socket) -> None:
    """One worker process: uvicorn on its own listening socket (see ``Workers``)."""
    import uvicorn

    config = uvicorn.Config(APP_FACTORY, factory=True, **common)
    uvicorn.Server(config).run(sockets=[sock])


class Workers:
    """Worker processes, each listening on its own socket bound to the same address with
    SO_REUSEPORT, so that the kernel spreads new connections over them. With one shared
    socket (uvicorn's --workers), whichever worker wakes first accepts every connection
    waiting, and a client opening a few at once (a proxy, a load test) gets one worker.

    A worker that dies is started again; one that fails to start (uvicorn's start-up failure,
    or an error exit within ``STARTUP_SECONDS`` of its start) stops the server: it would fail
    the same way again. A worker killed by a signal is always replaced. SIGINT and SIGTERM
    stop the workers and wait for them."""

    STARTUP_SECONDS = 10.0

    def __init__(self, common: dict[str, Any], count: int) -> None:
        self.common = common
        self.count = count
        self.stopping = threading.Event()

    @staticmethod
    def _free_port(host: str, port: int) -> int:
        """``port`` (or a free one for 0), checked free first: sockets with SO_REUSEPORT
        would otherwise share it, silently, with another server of the same user."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise RecommenderError(
                    f"cannot listen on {host}:{port} ({(exc.strerror or str(exc)).lower()}); "
                    "choose another --port or --host"
                ) from None
            return int(probe.getsockname()[1])

    def _socket(self, port: int) -> socket.socket:
        host = self.common["host"]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
        # connections whose socket says so; with 0, every answer waited ~40 ms for an ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
        sock.set_inheritable(True)
        return sock

    def run(self) -> None:
        import multiprocessing
        import signal

        logger = logging.getLogger("uvicorn.error")
        port = self._free_port(self.common["host"], self.common["port"])
        sockets = [self._socket(port) for _ in range(self.count)]
        common = dict(self.common, port=port)
        context = multiprocessing.get_context("spawn")

        def start(sock: socket.socket) -> tuple[Any, float]:
            process = context.Process(target=_serve_worker, args=(common, sock), daemon=False)
            process.start()
            return process, time.monotonic()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        running = [start(sock) for sock in sockets]
        failed = False
        try:
            while not self.stopping.wait(0.5):
                for at, (process, started) in enumerate(running):
                    if process.is_alive():
                        continue
                    code = process.exitcode or 0
                    soon = time.monotonic() - started < self.STARTUP_SECONDS
                    if code == STARTUP_FAILURE or (code > 0 and soon):
                        logger.error(
                            "worker %s stopped at start (exit code %s); stopping the server",
                            process.pid,
                            process.exitcode,
                        )
                        failed = True
                        self.stopping.set()
                        break
                    logger.warning(
                        "worker %s died (exit code %s); starting another",
                        process.pid,
                        process.exitcode,
                    )
                    running[at] = start(sockets[at])
        finally:
            for process, _ in running:
                if process.is_alive():
                    process.terminate()
            for process, _ in running:
                process.join(30)
                if process.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
                    process.kill()
                    process.join()
            for sock in sockets:
                sock.close()
        if failed:
            raise SystemExit(1)
