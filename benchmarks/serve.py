"""recommend serve under load: throughput and latency for 1 and 2 workers, with and without a
concurrent writer, and how much of the second worker's memory is shared.

The service runs on loopback (`python -m recommender serve`); a load client keeps a bounded
number of requests in flight for a bounded time, each `GET /articles/ID/similar?k=10` for a
random indexed id: `wrk` (a C load generator, Debian package wrk, one thread, ids drawn by a
Lua script) when it is installed, else an async httpx client, which needs most of a core of its
own at these rates (--client chooses). "Unloaded" is one client, one request at a time; loaded
runs keep each of --clients requests in flight (default 2, 4, 16). Past the point where the
server is saturated, more clients only queue (latency = clients / throughput), so the latency
target is read at the saturating load: the fewest clients that reach 90% of the best throughput
of that configuration. The writer PUTs batches of new articles (copies of indexed ones under
new ids, so the server embeds them with the index's model) and DELETEs some, once a second, on
a copy of the index (the one given is left as it was). The client runs on the same machine and
takes CPU from the server: figures are conservative.

The read path against a bare FastAPI endpoint (run first; alone with --ratio-only): one worker of
ours and a FastAPI app with one route that answers every `GET /articles/ID/similar` with the
same bytes (the JSON body of one of our reads, as a plain `Response`, run by uvicorn with the
settings `recommend serve` gives it), each loaded by wrk with 4 connections for --ratio-seconds,
alternately, --ratio-rounds times each, random ids for both; the ratio of the throughputs is what
the service's own layers cost on top of the engine's lookups. Then, in this process with no
server, where a read's time goes: the engine's lookup, the whole answer (with its JSON), our app
through its layers, the bare app. Needs wrk.

Usage: python benchmarks/serve.py [--index DIR] [--data uci|sample] [--seconds 15]
       [--clients 2 4 16] [--workers 1 2] [--client auto|wrk|httpx] [--no-writer]
       [--no-screenshots] [--no-write] [--ratio-only] [--ratio-seconds 10] [--ratio-rounds 2]
       [--cached-articles N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from common import (
    INDEXES,
    ROOT,
    command_line,
    dataset,
    header,
    machine,
    table,
    versions,
    write_section,
)

from recommender import Recommender

TOKEN = "bench-token"
K = 10
COLUMNS = [
    "workers",
    "writer",
    "clients",
    "req/s",
    "p50 idle ms",
    "p50 ms",
    "p99 ms",
    "p99 / idle p50",
    "errors",
    "write batches (20 articles)",
]


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    #: set by wrk, which reports counts and percentiles rather than each latency
    requests: int | None = None
    percentiles_ms: dict[float, float] = field(default_factory=dict)
    #: CPU seconds the server process used meanwhile (the ratio's runs)
    server_cpu: float = 0.0

    @property
    def throughput(self) -> float:
        count = len(self.latencies) if self.requests is None else self.requests
        return count / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if q in self.percentiles_ms:
            return self.percentiles_ms[q]
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


#: The Lua side of wrk: a random id per request (from IDS, seeded), and the figures printed
#: in one line at the end (microseconds; errors of every kind, non-2xx included).
WRK_SCRIPT = """
local ids = {ids}
math.randomseed({seed})
request = function()
  return wrk.format("GET", "/articles/" .. ids[math.random(#ids)] .. "/similar?k={k}")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %.1f %.1f\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The bare endpoint: FastAPI, one route answering the bytes of the file argv[1] (a body one of
#: our reads answered) on port argv[2], with the uvicorn settings of ``recommend serve``'s one
#: worker (``workers.run``).
BARE_SERVER = """
import sys

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

from recommender.http.workers import log_config

body = open(sys.argv[1], "rb").read()
app = FastAPI()


@app.get("/articles/{article_id:path}/similar")
async def similar(article_id: str) -> Response:
    return Response(body, media_type="application/json")


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=False,
            log_config=log_config("warning"), server_header=False)
"""
RATIO_CLIENTS = 4
#: The servers' --cached-articles (None: recommend serve's default).
CACHED_ARTICLES: int | None = None
RATIO_COLUMNS = ["server", "req/s", "p50 ms", "p99 ms", "server CPU ms a request", "errors"]
RATIO_COLUMNS += ["runs"]


def build_index(data: str, path: Path) -> None:
    if (path / "CURRENT").exists():
        return
    print(f"building {path} from {data} with the real model (uci: about 6 minutes) ...")
    if data == "sample":
        source = ROOT / "recommender" / "sample" / "articles.jsonl"
    else:
        source = dataset("uci-news-2014-04")
    report = Recommender.build_from_files([source], path, drop_fields=["story"])
    print(f"indexed {report.articles} articles in {report.seconds:.0f} s")


def start_server(index: Path, workers: int, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, RECOMMENDER_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    if CACHED_ARTICLES is not None:
        env["RECOMMENDER_CACHED_ARTICLES"] = str(CACHED_ARTICLES)
    command = [sys.executable, "-m", "recommender", "serve", "--index", str(index)]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    command += ["--max-age", "0", "--write-wait", "30"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with status {server.returncode}")
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            if ready.status_code == 200:
                # Every worker answers readyz only once it has the index open; ask a few times.
                for _ in range(workers * 4):
                    httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=60)
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    sys.exit("the server did not become ready")


def start_bare(body: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-c", BARE_SERVER, str(body), str(port)]
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the bare server exited with status {server.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/articles/x/similar", timeout=5).is_success:
                return server
        time.sleep(0.2)
    server.terminate()
    sys.exit("the bare server did not become ready")


def worker_pids(server: subprocess.Popen[bytes], workers: int) -> list[int]:
    if workers == 1:
        return [server.pid]
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return sorted(int(pid) for pid in children)[-workers:]


def memory(pid: int) -> dict[str, int]:
    """Rss, Pss, shared and private kB of a process (Linux /proc/PID/smaps_rollup)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0])
    return {
        "rss": values["Rss"],
        "pss": values["Pss"],
        "shared": values["Shared_Clean"] + values["Shared_Dirty"],
        "private": values["Private_Clean"] + values["Private_Dirty"],
    }


CLIENT = "httpx"  # set by main(): "wrk" or "httpx"


async def drive(base: str, ids: list[str], clients: int, seconds: float, seed: int) -> Run:
    if CLIENT == "wrk":
        return await drive_wrk(base, ids, clients, seconds, seed)
    run = Run()
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        stop = time.monotonic() + seconds

        async def one_client() -> None:
            while time.monotonic() < stop:
                article_id = rng.choice(ids)
                started = time.perf_counter()
                try:
                    response = await client.get(f"/articles/{article_id}/similar", params={"k": K})
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    run.latencies.append(time.perf_counter() - started)
                else:
                    run.errors += 1

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        run.seconds = time.monotonic() - started
    return run


async def write_loop(base: str, sources: list[dict[str, object]], stop: asyncio.Event) -> Run:
    """PUT a batch of 20 new articles and DELETE 4 earlier ones, once a second."""
    run = Run()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    rng = random.Random(1)
    added: list[str] = []
    batch_no = 0
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=headers) as client:
        while not stop.is_set():
            batch_no += 1
            batch = []
            for n, source in enumerate(rng.sample(sources, min(20, len(sources)))):
                copy = {k: v for k, v in source.items() if k not in ("metadata",)}
                copy["id"] = f"bench-w-{batch_no}-{n}"
                copy["title"] = f"Update {batch_no}: {source['title']}"
                batch.append(copy)
            started = time.perf_counter()
            try:
                response = await client.put("/articles", json=batch)
                if response.status_code == 200:
                    added += [str(a["id"]) for a in batch]
                    run.latencies.append(time.perf_counter() - started)
                else:
                    run.errors += 1
                if len(added) > 40:
                    for article_id in rng.sample(added, 4):
                        added.remove(article_id)
                        gone = await client.delete(f"/articles/{article_id}")
                        run.errors += gone.status_code != 200
            except httpx.HTTPError:
                run.errors += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    return run


async def drive_wrk(base: str, ids: list[str], clients: int, seconds: float, seed: int) -> Run:
    """The same load from wrk: one thread, ``clients`` connections, each with one request in
    flight (wrk's own model), ids drawn from a seeded sample of up to 20,000."""
    picked = random.Random(seed).sample(ids, min(20000, len(ids)))
    table_text = "{" + ",".join(json.dumps(quote(i, safe="")) for i in picked) + "}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(ids=table_text, seed=seed, k=K))
    try:
        process = await asyncio.create_subprocess_exec(
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "60s",
            "-s",
            script.name,
            base,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    finally:
        os.unlink(script.name)
    line = next((x for x in out.decode().splitlines() if x.startswith("RESULT ")), None)
    if process.returncode != 0 or line is None:
        sys.exit(f"wrk failed: {err.decode().strip() or out.decode().strip()}")
    requests, duration_us, errors, p50_us, p99_us = line.split()[1:]
    return Run(
        errors=int(errors),
        seconds=int(duration_us) / 1e6,
        requests=int(requests) - int(errors),
        percentiles_ms={50: float(p50_us) / 1000, 99: float(p99_us) / 1000},
    )


async def loaded(
    base: str,
    ids: list[str],
    clients: int,
    seconds: float,
    sources: list[dict[str, object]] | None,
) -> tuple[Run, Run | None]:
    stop = asyncio.Event()
    writer = asyncio.create_task(write_loop(base, sources, stop)) if sources else None
    reads = await drive(base, ids, clients, seconds, seed=2)
    stop.set()
    return reads, (await writer if writer else None)


#: unloaded, {clients: (reads, writes)}, memory of each worker
Measured = tuple[Run, dict[int, tuple[Run, Run | None]], list[dict[str, int]]]


def measure(
    index: Path, ids: list[str], workers: int, writer: bool, args: argparse.Namespace
) -> Measured:
    scratch = None
    if writer:  # the writer changes the index: serve a copy, so the given one stays as it was
        scratch = Path(tempfile.mkdtemp(prefix="serve-bench-", dir=index.parent))
        shutil.copytree(index, scratch / index.name, symlinks=True)
        index = scratch / index.name
    port = free_port()
    server = start_server(index, workers, port)
    base = f"http://127.0.0.1:{port}"
    try:
        sources = None
        if writer:
            picked = random.Random(3).sample(ids, min(200, len(ids)))
            sources = [httpx.get(f"{base}/articles/{i}", timeout=60).json() for i in picked]
            # Load the model in the workers before timing (the first write embeds).
            for _ in range(workers * 2):
                asyncio.run(write_once(base, sources[0]))
        asyncio.run(drive(base, ids, max(args.clients), 2.0, seed=0))  # warm-up
        unloaded = asyncio.run(drive(base, ids, 1, args.seconds / 2, seed=1))
        runs = {
            clients: asyncio.run(loaded(base, ids, clients, args.seconds, sources))
            for clients in args.clients
        }
        pids = worker_pids(server, workers)
        mem = [memory(pid) for pid in pids]
    finally:
        server.terminate()
        server.wait(60)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return unloaded, runs, mem


@dataclass
class Ratio:
    ours: list[Run]
    bare: list[Run]
    body_bytes: int
    load: float  # the machine's 1-minute load average at the end

    @staticmethod
    def combined(runs: list[Run]) -> Run:
        """The runs as one: requests and CPU over their seconds; each percentile their mean."""
        return Run(
            errors=sum(r.errors for r in runs),
            seconds=sum(r.seconds for r in runs),
            requests=sum(r.requests or 0 for r in runs),
            percentiles_ms={
                q: sum(r.percentile(q) for r in runs) / len(runs) for q in (50.0, 99.0)
            },
            server_cpu=sum(r.server_cpu for r in runs),
        )

    @property
    def value(self) -> float:
        return self.combined(self.ours).throughput / self.combined(self.bare).throughput

    @property
    def cpu_value(self) -> float:
        """The bare endpoint's server CPU a request over ours."""
        return cpu_ms(self.combined(self.bare)) / cpu_ms(self.combined(self.ours))

    def text(self, args: argparse.Namespace) -> str:
        from recommender.settings import CACHED_ARTICLES as DEFAULT_CACHED

        kept = DEFAULT_CACHED if CACHED_ARTICLES is None else CACHED_ARTICLES
        cached = f"up to {kept:,}" + (" (its default)" if CACHED_ARTICLES is None else "")
        rows = []
        for name, runs in (("bare FastAPI endpoint", self.bare), ("recommend serve", self.ours)):
            run = self.combined(runs)
            each = ", ".join(f"{r.throughput:.0f}" for r in runs)
            rows.append(
                [
                    name,
                    f"{run.throughput:.0f}",
                    f"{run.percentile(50):.2f}",
                    f"{run.percentile(99):.2f}",
                    f"{cpu_ms(run):.3f}",
                    str(run.errors),
                    f"{len(runs)} x {args.ratio_seconds:g} s ({each} req/s)",
                ]
            )
        return (
            f"GET /articles/ID/similar?k={K} (random ids), one worker each, wrk with "
            f"{RATIO_CLIENTS} connections on the same machine, the two servers loaded in turn; "
            f"the bare endpoint answers the {self.body_bytes}-byte JSON body of one of our "
            "reads to every request; ours keeps what lists show of "
            f"{cached} articles (--cached-articles), filled by the requests themselves from "
            "the first (warm-up) round on. p50 and p99: the mean of the runs'; server CPU: what "
            "the server process used (user and system time) over the requests it answered, which "
            "other work on the machine changes less than it changes req/s.\n\n"
            + table(RATIO_COLUMNS, rows)
            + f"\n\n- read path: {self.value:.2f}x the bare endpoint's throughput "
            f"(target >= 0.5x); {self.cpu_value:.2f}x by server CPU a request; load average "
            f"at the end: {self.load:.2f}.\n"
        )


def cpu_ms(run: Run) -> float:
    """Server CPU milliseconds a request answered."""
    return run.server_cpu * 1000 / max(1, run.requests or 0)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used (Linux /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parts(index: Path, ids: list[str], body: int, requests: int = 2000) -> str:
    """Where a read's time goes, in this process, one request at a time, no HTTP server: the
    engine's lookup, the whole answer (ETag tag, lookup, JSON), our app through all its layers
    (one ASGI call) and the bare app's; CPU time (other work on the machine changes it less
    than it changes wall time), each the least of 3 rounds, the rounds interleaved."""
    from fastapi import FastAPI
    from fastapi.responses import Response

    from recommender.http.app import create_app
    from recommender.http.dependencies import _json
    from recommender.http.routes.related import related_to_article
    from recommender.http.schemas import SimilarParams

    bare = FastAPI()
    payload = b" " * body

    @bare.get("/articles/{article_id:path}/similar")
    async def similar(article_id: str) -> Response:
        return Response(payload, media_type="application/json")

    async def call(app: Any, article_id: str) -> None:
        path = f"/articles/{quote(article_id, safe='')}/similar"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": f"k={K}".encode(),
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            pass

        await app(scope, receive, send)

    picked = random.Random(5).sample(ids, min(requests, len(ids)))
    with Recommender.open(index) as rec, Recommender.open(index, cached_articles=0) as uncached:
        ours = create_app(recommender=rec)
        values = SimilarParams().model_dump()

        def lookup() -> None:
            for article_id in picked:
                rec.similar(article_id, K)

        def lookup_json() -> None:
            for article_id in picked:
                rec.lists.json(article_id, K)

        def lookup_uncached() -> None:
            for article_id in picked:
                uncached.similar(article_id, K)

        def answer() -> None:
            for article_id in picked:
                ours.state.index.tag()
                _json(related_to_article(rec, article_id, values), {})

        def through(app: Any) -> Callable[[], None]:
            async def each() -> None:
                for article_id in picked:
                    await call(app, article_id)

            return lambda: asyncio.run(each())

        timed = {
            "engine: similar(id, k=10)": lookup,
            "engine: lists.json(id, 10), what HTTP answers with": lookup_json,
            "engine, no article kept (cached_articles=0)": lookup_uncached,
            "the answer: ETag tag, similar, JSON": answer,
            "our app, all its layers (one ASGI call)": through(ours),
            "the bare app (one ASGI call)": through(bare),
        }
        best = {name: float("inf") for name in timed}
        through(ours)()  # warm-up
        for _ in range(3):
            for name, work in timed.items():
                started = time.process_time()
                work()
                best[name] = min(best[name], (time.process_time() - started) / len(picked))
    rows = [[name, f"{seconds * 1000:.3f}"] for name, seconds in best.items()]
    return (
        f"In this process, one request at a time and no HTTP server ({len(picked)} random ids; "
        "CPU time, the least of 3 rounds, so with the articles of their lists kept unless "
        "said):\n\n" + table(["part", "CPU ms a request"], rows) + "\n"
    )


def measure_ratio(index: Path, ids: list[str], args: argparse.Namespace) -> Ratio:
    """Our read path and the bare endpoint under the same load, in turn (see the docstring)."""
    port, bare_port = free_port(), free_port()
    server = start_server(index, 1, port)
    bare = None
    try:
        base, bare_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
        article = quote(random.Random(4).choice(ids), safe="")
        answer = httpx.get(f"{base}/articles/{article}/similar", params={"k": K}, timeout=60)
        answer.raise_for_status()
        with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as body:
            body.write(answer.content)
        bare = start_bare(Path(body.name), bare_port)
        servers: dict[str, tuple[str, int, list[Run]]] = {
            "bare": (bare_base, bare.pid, []),
            "ours": (base, server.pid, []),
        }
        for at in range(args.ratio_rounds + 1):  # the first round warms both up, uncounted
            seconds = 2.0 if at == 0 else args.ratio_seconds
            for name, (url, pid, runs) in servers.items():
                before = cpu_seconds(pid)
                run = asyncio.run(drive_wrk(url, ids, RATIO_CLIENTS, seconds, seed=10 + at))
                run.server_cpu = cpu_seconds(pid) - before
                if at:
                    runs.append(run)
                    print(
                        f"  {name}: {run.throughput:.0f} req/s, p50 {run.percentile(50):.2f} "
                        f"ms, server CPU {cpu_ms(run):.3f} ms a request",
                        flush=True,
                    )
    finally:
        for process in (server, bare):
            if process is not None:
                process.terminate()
                process.wait(60)
        with contextlib.suppress(NameError, OSError):
            os.unlink(body.name)
    load = os.getloadavg()[0]
    return Ratio(servers["ours"][2], servers["bare"][2], len(answer.content), load)


def saturating(runs: dict[int, tuple[Run, Run | None]]) -> int:
    """The fewest clients whose throughput is within 90% of the best."""
    best = max(reads.throughput for reads, _ in runs.values())
    return min(c for c, (reads, _) in runs.items() if reads.throughput >= 0.9 * best)


async def write_once(base: str, source: dict[str, object]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base, timeout=300, headers=headers) as client:
        copy = dict(source, id=f"bench-warm-{random.random()}")
        await client.put("/articles", json=[copy])
        await client.delete(f"/articles/{copy['id']}")


def screenshots() -> str:
    folder = ROOT / "benchmarks" / "screenshots"
    env = dict(os.environ, RECOMMENDER_SCREENSHOTS=str(folder), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += [str(ROOT / "tests" / "test_serve_browser.py")]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    last = (result.stdout.strip().splitlines() or ["no output"])[-1]
    print(f"browser tests: {last}")
    return last


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, help="index to serve (built here if missing)")
    parser.add_argument("--data", choices=["uci", "sample"], default="uci")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each loaded run")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[2, 4, 16], help="requests in flight at once"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "httpx"],
        default="auto",
        help="load client (auto: wrk when installed)",
    )
    parser.add_argument("--no-writer", action="store_true", help="skip the runs with a writer")
    parser.add_argument("--no-screenshots", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--ratio-only",
        action="store_true",
        help="only the read path against a bare FastAPI endpoint",
    )
    parser.add_argument("--ratio-seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--ratio-rounds", type=int, default=2, help="runs of each server")
    parser.add_argument(
        "--cached-articles",
        type=int,
        help="the server's --cached-articles (by default its own default)",
    )
    args = parser.parse_args()
    global CLIENT, CACHED_ARTICLES
    CACHED_ARTICLES = args.cached_articles
    CLIENT = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    if CLIENT == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    started = time.perf_counter()
    index = args.index or INDEXES / ("bench-serve" if args.data == "uci" else "bench-serve-sample")
    build_index(args.data, index)
    with Recommender.open(index) as rec:
        ids = rec.ids()
        articles = len(ids)
        lists = rec.info().precomputed

    if not shutil.which("wrk"):
        sys.exit("the read-path ratio needs wrk (Debian: apt-get install wrk)")
    print("the read path against a bare FastAPI endpoint ...", flush=True)
    ratio = measure_ratio(index, ids, args)
    ratio_text = (
        "### The read path against a bare FastAPI endpoint\n\n"
        f"- command: `{command_line()}`\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        f"- machine: {machine()}\n"
        f"- versions: {versions()}\n"
        f"- index: {index.name}, {articles} articles; precomputed lists: {lists}\n\n"
        + ratio.text(args)
        + "\n"
        + parts(index, ids, ratio.body_bytes)
    )
    ratio_block = f"<!-- serve-ratio:start -->\n{ratio_text.rstrip()}\n<!-- serve-ratio:end -->"
    if args.ratio_only:
        print(ratio_text)
        if not args.no_write:
            write_section("serve-ratio", ratio_text)
        return

    rows: list[list[str]] = []
    results: dict[tuple[int, bool], Measured] = {}
    for writer in [False] if args.no_writer else [False, True]:
        for workers in args.workers:
            print(f"{workers} worker(s), writer {'on' if writer else 'off'} ...", flush=True)
            unloaded, runs, mem = measure(index, ids, workers, writer, args)
            results[(workers, writer)] = (unloaded, runs, mem)
            for clients, (reads, writes) in runs.items():
                rows.append(
                    [
                        str(workers),
                        "yes" if writer else "no",
                        str(clients) + (" (saturating)" if clients == saturating(runs) else ""),
                        f"{reads.throughput:.0f}",
                        f"{unloaded.percentile(50):.1f}",
                        f"{reads.percentile(50):.1f}",
                        f"{reads.percentile(99):.1f}",
                        f"{reads.percentile(99) / unloaded.percentile(50):.1f}x",
                        str(reads.errors + unloaded.errors),
                        f"{len(writes.latencies)} ({writes.errors} errors)" if writes else "-",
                    ]
                )
                print(table(COLUMNS, rows[-1:]))

    def best(measured: Measured) -> float:
        return max(reads.throughput for reads, _ in measured[1].values())

    lines = []
    one, two = results.get((1, False)), results.get((2, False))
    if one and two:
        scaling = best(two) / best(one)
        lines.append(f"- 2 workers serve {scaling:.2f}x the best throughput of 1 (target >= 1.6x).")
    worst = max(
        m[1][saturating(m[1])][0].percentile(99) / m[0].percentile(50) for m in results.values()
    )
    lines.append(
        f"- p99 at the saturating load is at most {worst:.1f}x the unloaded p50 (target <= 10x); "
        "with more clients than that, requests queue and latency grows with their number."
    )
    if two:
        second = two[2][-1]
        lines.append(
            f"- memory of the second worker: Rss {second['rss'] / 1024:.0f} MB, Pss "
            f"{second['pss'] / 1024:.0f} MB, shared {second['shared'] / 1024:.0f} MB "
            f"({second['shared'] / second['rss']:.0%} of Rss), private "
            f"{second['private'] / 1024:.0f} MB."
        )
    errors = sum(reads.errors + m[0].errors for m in results.values() for reads, _ in m[1].values())
    lines.append(f"- read errors over all runs: {errors}.")
    shots = "" if args.no_screenshots else screenshots()
    text = (
        header("Serving over HTTP (benchmarks/serve.py)", time.perf_counter() - started)
        + f"- index: {index.name}, {articles} articles; {args.clients} concurrent clients, "
        f"{args.seconds:g} s per run (unloaded: 1 client for {args.seconds / 2:g} s); "
        f"GET /articles/ID/similar?k={K}, random ids; load client {CLIENT}, on the same "
        "machine\n\n"
        + table(COLUMNS, rows)
        + "\n\n"
        + "\n".join(lines)
        + (f"\n- browser tests (screenshots in benchmarks/screenshots/): {shots}" if shots else "")
        + "\n\n"
        + ratio_block
        + "\n"
    )
    print(text)
    if not args.no_write:
        write_section("serve", text)


if __name__ == "__main__":
    main()
