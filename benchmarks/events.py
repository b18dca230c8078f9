"""POST /events under load: how many events one worker keeps a second, what group commit
saves, and what a flood of events costs the reads served meanwhile.

The service runs on loopback (`python -m recommender serve`, one worker, `--events-rate` raised
so that the flood is not limited) over a copy of the sample index built with the real model (the
events go into the copy). Loads come from `wrk` (one thread each):

- reads alone: `GET /articles/ID/similar?k=10` (random ids) with --readers connections;
- the same reads while another wrk posts events with --posters connections, each request a
  batch of one view of 5 ids, as a browser's beacon is (with the page's language and no section,
  which the service fills in from the index);
- the control: the same reads while as many connections ask `GET /healthz` (a request that
  keeps nothing), to tell what any flood of small requests costs the reads from what keeping
  events costs;
- the posters alone.

Beside them, `append_events` called here in a loop with one event per call: one fsync per
event, what the service would manage without group commit. The client and the server share the
machine's cores: with 2 cores the flood takes CPU from the reads (parsing and answering each
POST in the event loop), which is the figure reported, not the disk.

Usage: python benchmarks/events.py [--index DIR] [--seconds 10] [--readers 4] [--posters 16]
       [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
from common import INDEXES, ROOT, header, table, write_section
from serve import build_index, free_port

from recommender.events import Click
from recommender.storage.events import append_events, read_events

#: The Lua side of wrk for reads: a random id per request; figures in one line at the end.
READS = """
local ids = {ids}
math.randomseed(1)
request = function()
  return wrk.format("GET", "/articles/" .. ids[math.random(#ids)] .. "/similar?k=10")
end
"""
#: For posts: one view per request, its id changed per request (the page's language, no
#: section: as the box sends it without data-section).
POSTS = """
local n = 0
request = function()
  n = n + 1
  local body = '{{"events": [{{"type": "view", "view": "w' .. n .. '-' .. math.random(1e9) ..
    '", "article": "{article}", "shown": {shown}, "language": "en"}}]}}'
  return wrk.format("POST", "/events", {{["Content-Type"] = "text/plain"}}, body)
end
"""
#: The control: as many cheap requests that keep nothing (GET /healthz).
PINGS = """
request = function()
  return wrk.format("GET", "/healthz")
end
"""
DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %.1f %.1f\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def start_server(index: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "recommender", "serve", "--index", str(index)]
    command += ["--port", str(port), "--log-level", "warning", "--events-rate", "1000000"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with status {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    sys.exit("the server did not become ready")


async def wrk(base: str, script: str, clients: int, seconds: float) -> dict[str, float]:
    """One wrk run: requests a second (non-2xx counted as errors), p50 and p99 in ms."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script + DONE)
    try:
        process = await asyncio.create_subprocess_exec(
            *("wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "60s"),
            *("-s", handle.name, base),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    finally:
        os.unlink(handle.name)
    line = next((x for x in out.decode().splitlines() if x.startswith("RESULT ")), None)
    if process.returncode != 0 or line is None:
        sys.exit(f"wrk failed: {err.decode().strip() or out.decode().strip()}")
    requests, duration_us, errors, p50_us, p99_us = (float(x) for x in line.split()[1:])
    return {
        "rate": (requests - errors) / (duration_us / 1e6),
        "errors": errors,
        "p50": p50_us / 1000,
        "p99": p99_us / 1000,
    }


def one_fsync_each(index: Path, seconds: float) -> float:
    """Events a second through ``append_events`` with one event per call (one fsync each)."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        append_events(index, [Click(f"f{count}", "a", 0, datetime.now(UTC))])
        count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=INDEXES / "bench-sample-serve")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--posters", type=int, default=16)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    begun = time.perf_counter()
    build_index("sample", args.index)
    work = Path(tempfile.mkdtemp(prefix="recommender-events-bench-"))
    try:
        copy = work / "index"
        shutil.copytree(args.index, copy)
        shutil.rmtree(copy / "events", ignore_errors=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(copy, port)
        try:
            found = httpx.get(f"{base}/articles", params={"q": "the", "limit": 100}).json()
            ids = [a["id"] for a in found["articles"]]
            article = ids[0]
            shown = json.dumps(ids[1:6])
            quoted = ",".join(json.dumps(quote(i, safe="")) for i in ids)
            reads = READS.format(ids="{" + quoted + "}")
            posts = POSTS.format(article=article, shown=shown)  # in a Lua '...' string
            asyncio.run(wrk(base, reads, args.readers, 2))  # warm up
            alone = asyncio.run(wrk(base, reads, args.readers, args.seconds))

            async def both(other: str) -> tuple[dict[str, float], dict[str, float]]:
                got = await asyncio.gather(
                    wrk(base, reads, args.readers, args.seconds),
                    wrk(base, other, args.posters, args.seconds),
                )
                return got[0], got[1]

            during, flood = asyncio.run(both(posts))
            control, pings = asyncio.run(both(PINGS))
            posters_alone = asyncio.run(wrk(base, posts, args.posters, args.seconds))
        finally:
            server.terminate()
            server.wait()
        stored = read_events(copy)
        kept = sum(1 for _ in stored)
        fsync_rate = one_fsync_each(work / "index", min(args.seconds, 5))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        [
            "reads alone",
            f"{alone['rate']:.0f}",
            f"{alone['p50']:.1f}",
            f"{alone['p99']:.1f}",
            "",
            "",
            "",
        ],
        [
            "reads + events",
            f"{during['rate']:.0f}",
            f"{during['p50']:.1f}",
            f"{during['p99']:.1f}",
            f"{flood['rate']:.0f}",
            f"{flood['p50']:.1f}",
            f"{flood['p99']:.1f}",
        ],
        [
            "reads + GET /healthz",
            f"{control['rate']:.0f}",
            f"{control['p50']:.1f}",
            f"{control['p99']:.1f}",
            f"({pings['rate']:.0f} pings/s)",
            f"{pings['p50']:.1f}",
            f"{pings['p99']:.1f}",
        ],
        [
            "events alone",
            "",
            "",
            "",
            f"{posters_alone['rate']:.0f}",
            f"{posters_alone['p50']:.1f}",
            f"{posters_alone['p99']:.1f}",
        ],
    ]
    columns = ["load", "reads/s", "read p50 ms", "read p99 ms"]
    columns += ["events/s (200)", "post p50 ms", "post p99 ms"]
    errors = sum(r["errors"] for r in (alone, during, flood, control, pings, posters_alone))
    text = header("Events under load (POST /events)", time.perf_counter() - begun)
    text += (
        f"\nOne worker, sample index, real model; wrk with {args.readers} connections reading "
        f"(random ids, k=10) and {args.posters} posting one view per request, "
        f"{args.seconds:g} s each. Events kept in the store after the runs: {kept:,} "
        f"(damaged {stored.damaged}); requests that were not 2xx: {errors:.0f}. "
        f"`append_events` with one event per call, here, no server: {fsync_rate:.0f} a second "
        "(one fsync each): the service's events a second over that are group commit.\n\n"
    )
    text += table(columns, rows)
    print(text)
    if not args.no_write:
        write_section("events", text)


if __name__ == "__main__":
    main()
