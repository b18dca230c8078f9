"""Query latency of the hybrid ranking beside plain vector search, on the 138k UCI headlines.

For the same seeded queries (indexed article ids), interleaved so that both see the same
machine state:

- dense only: the query's stored vector, the FAISS search for its 10 nearest (the query left
  out) - plain vector search, the floor this engine's candidate stage stands on;
- engine: ``Recommender.similar(id, k=10)`` with the index's settings (embedding and TF-IDF
  candidates, fusion, neighbour term, recency, category, copies, article fields read);
- engine, diversity 0.8: the same with ``mmr_lambda=0.8``.

Usage: python benchmarks/latency.py [--queries 2000] [--runs 3] [--seed 0] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import numpy as np
from common import INDEXES, dataset, header, table, write_section

from recommender import Recommender, RecommenderError, Settings
from recommender.read.retrieve import retrieve_parts

K = 10
NAME = "uci-news-2014-04"


def index() -> Recommender:
    path = INDEXES / f"bench-{NAME}"
    try:
        return Recommender.open(path)
    except RecommenderError as exc:
        print(f"building {path} ({exc})")
        Recommender.build_from_files(
            [dataset(NAME)], path, drop_fields=["story"], settings=Settings()
        )
        return Recommender.open(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.perf_counter()
    rec = index()
    snapshot = rec.snapshot
    queries = random.Random(args.seed).sample(rec.ids(), args.queries)

    def dense(query: str) -> object:
        row = snapshot.columns.row_of[query]
        return retrieve_parts(snapshot.parts, snapshot.vector(row), K, drop={row})

    methods: dict[str, Callable[[str], object]] = {
        "dense only (FAISS search of the stored vector)": dense,
        "engine, similar(id, k=10)": lambda q: rec.similar(q, k=K),
        "engine, diversity 0.8": lambda q: rec.similar(q, k=K, mmr_lambda=0.8),
    }
    for query in queries[:200]:  # warm up caches and lazy imports
        for ask in methods.values():
            ask(query)
    samples: dict[str, list[list[float]]] = {name: [] for name in methods}
    for _ in range(args.runs):
        for name in methods:
            samples[name].append([])
        for query in queries:
            for name, ask in methods.items():
                begin = time.perf_counter_ns()
                ask(query)
                samples[name][-1].append((time.perf_counter_ns() - begin) / 1e6)
    figures = {
        name: tuple(
            statistics.median(float(np.percentile(run, p)) for run in runs) for p in (50, 95, 99)
        )
        for name, runs in samples.items()
    }
    floor = figures[next(iter(methods))][0]
    rows = [
        [name, f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}", f"{p50 / floor:.2f}"]
        for name, (p50, p95, p99) in figures.items()
    ]
    for row in rows:
        print(" | ".join(row))
    text = (
        header("Latency", time.perf_counter() - started)
        + f"\n{len(rec):,} articles ({NAME}, index built with the default settings), "
        f"{args.queries} seeded queries (seed {args.seed}), one thread, median over "
        f"{args.runs} runs of each percentile; the methods take turns on every query. "
        "These figures supersede the query latencies of the speed section, measured before "
        "the hybrid ranking. The query path does its small matrix products without BLAS: "
        "BLAS threads spinning beside FAISS's OpenMP threads made both paths slower "
        "(measured with BLAS: dense only 4.42 / 15.40 ms p50 / p95, engine 9.87 / 18.50).\n\n"
        + table(["method", "p50 (ms)", "p95 (ms)", "p99 (ms)", "p50 / dense only"], rows)
    )
    print(text)
    if not args.no_write:
        write_section("latency", text)


if __name__ == "__main__":
    main()
