"""Query latency with and without a concurrent writer, on a live index of uci-news-2014-04.

The index holds the headlines minus a held-out set; a writer process then adds held-out
headlines (embedded with the real model) in batches and removes some, in a loop, while this
process answers `similar` on one thread with auto_refresh on. The same queries are timed with
the writer idle first.

Usage: python benchmarks/live.py [--queries 2000] [--holdout 5000] [--batch 50] [--reuse-index]
       [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import INDEXES, dataset, header, table, write_section

from recommender import Recommender
from recommender.articles import read_articles

K = 10
WRITER = """
import json, random, sys, time
from recommender import Recommender
from recommender.articles import read_articles
index, holdout, batch, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
articles = read_articles([holdout]).articles
rec = Recommender.open(index)
rng = random.Random(0)
added, commits, started = [], 0, time.monotonic()
from pathlib import Path
while not Path(stop).exists() and articles:
    chunk, articles = articles[:batch], articles[batch:]
    rec.add(chunk, wait=True)
    added += [a.id for a in chunk]
    commits += 1
    if len(added) > batch:
        rec.remove(rng.sample(added, batch // 5), wait=True)
        commits += 1
print(json.dumps({"commits": commits, "seconds": time.monotonic() - started}))
"""


def latencies(rec: Recommender, queries: list[str]) -> np.ndarray:
    samples = []
    for query in queries:
        started = time.perf_counter_ns()
        rec.similar(query, k=K)  # the writer removes only articles it added
        samples.append(time.perf_counter_ns() - started)
    return np.array(samples, dtype=np.float64) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--holdout", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse-index", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.perf_counter()

    articles = read_articles([dataset("uci-news-2014-04")], drop_fields=["story"]).articles
    rng = random.Random(args.seed)
    rng.shuffle(articles)
    held, kept = articles[: args.holdout], articles[args.holdout :]
    index = INDEXES / "bench-live"
    if not (args.reuse_index and (index / "CURRENT").exists()):
        shutil.rmtree(index, ignore_errors=True)
        built = time.perf_counter()
        Recommender.build(kept, index)
        print(f"built {index}: {len(kept)} articles in {time.perf_counter() - built:.0f} s")
    work = Path(tempfile.mkdtemp())
    holdout = work / "holdout.jsonl"
    holdout.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": a.id,
                    "title": a.title,
                    "category": a.category,
                    "published_at": a.published_at.isoformat() if a.published_at else None,
                }
            )
            for a in held
        )
        + "\n"
    )
    rec = Recommender.open(index, auto_refresh=True)
    queries = rng.sample([a.id for a in kept], args.queries)
    for query in queries[:200]:
        rec.similar(query, k=K)
    idle = latencies(rec, queries)
    print(f"idle: p50 {np.percentile(idle, 50):.2f} ms, p99 {np.percentile(idle, 99):.2f} ms")

    def with_writer(threads: int | None) -> tuple[np.ndarray, dict[str, float], tuple[int, int]]:
        stop = work / f"stop-{threads}"
        env = dict(os.environ)
        if threads is not None:  # torch's intra-op threads: the writer's CPU appetite
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(index), str(holdout), str(args.batch), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(8)  # let the writer load its model and start committing
        before = rec.info().generation
        busy = latencies(rec, queries)
        after = rec.info().generation
        stop.touch()
        out, _ = writer.communicate(timeout=600)
        return busy, json.loads(out.strip().splitlines()[-1]), (before, after)

    def row(label: str, times: np.ndarray) -> list[str]:
        p50, p95, p99 = np.percentile(times, [50, 95, 99])
        slow = int((times > 50).sum())
        ratio = p50 / np.percentile(idle, 50)
        return [label, f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}", str(slow), f"{ratio:.2f}"]

    rows = [row("writer idle", idle)]
    notes = []
    for threads, label in ((None, "writer, torch on all cores"), (1, "writer, torch on 1 core")):
        busy, stats, (before, after) = with_writer(threads)
        rows.append(row(label, busy))
        notes.append(
            f"{label}: {stats['commits']} commits in {stats['seconds']:.0f} s, the reader "
            f"going from generation {before} to {after} during its queries"
        )
        print(" | ".join(rows[-1]))
    shutil.rmtree(work, ignore_errors=True)
    columns = ["", "p50 ms", "p95 ms", "p99 ms", "queries > 50 ms", "p50 / idle p50"]
    text = (
        header("Live index: queries during writes", time.perf_counter() - started)
        + f"""
Index: {len(kept):,} uci-news-2014-04 headlines (seeded shuffle, {args.holdout:,} held out).
A writer process adds held-out headlines in batches of {args.batch} (embedded with the real
model) and removes {args.batch // 5} of its own after each batch; this process answers
`similar(id, k={K})` for {args.queries} seeded ids on one thread, with `auto_refresh=True`.
The writer's model competes with the reader for the 2 cores; limiting torch to one thread
(`OMP_NUM_THREADS=1` for the writer process) leaves the other core to the reader.
{"; ".join(notes)}.

{table(columns, rows)}
"""
    )
    print(text)
    if not args.no_write:
        write_section("live", text)


if __name__ == "__main__":
    main()
