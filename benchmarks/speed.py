"""Speed against the physical floor: build beside raw model encoding, queries beside a numpy
brute-force dot product, cold start beside importing numpy and faiss, and cost growth.

Usage: python benchmarks/speed.py [--runs 3] [--queries 2000] [--sizes 10000 30000 100000]
       [--no-write]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import INDEXES, ROOT, dataset, header, table, write_section

from recommender import Recommender
from recommender.articles import read_articles
from recommender.embedding.encode import SentenceTransformerEncoder
from recommender.settings import Settings
from recommender.storage.layout import current_version
from recommender.storage.manifest import read_manifest
from recommender.text import embedding_text
from recommender.write.compaction import stored_vectors

K = 10
RECOMMEND = str(Path(sys.executable).with_name("recommend"))
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "seconds = time.perf_counter() - t\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(code, seconds, peak)\n"
)


def measured(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of a command, run in its own process."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True
    ).stdout.split()
    if out[0] != "0":
        raise SystemExit(f"{' '.join(command)} failed")
    return float(out[1]), float(out[2]) / 1024


def percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    ms = np.array(samples_ns, dtype=np.float64) / 1e6
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def median_of(runs: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(statistics.median(values) for values in zip(*runs, strict=True))


def time_queries(ask, queries: list[str]) -> tuple[float, float, float]:
    samples = []
    for query in queries:
        started = time.perf_counter_ns()
        ask(query)
        samples.append(time.perf_counter_ns() - started)
    return percentiles(samples)


def queries_per_second(ask, queries: list[str], threads: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(ask, queries):
            pass
    return len(queries) / (time.perf_counter() - started)


def brute_force(matrix: np.ndarray, row_of: dict[str, int]):
    def ask(query: str) -> np.ndarray:
        row = row_of[query]
        sims = matrix @ matrix[row]
        sims[row] = -np.inf
        top = np.argpartition(-sims, K)[:K]
        return top[np.argsort(-sims[top])]

    return ask


def query_figures(index: Path, count: int, runs: int, seed: int) -> dict[str, float]:
    rec = Recommender.open(index)
    ids = rec.ids()
    queries = random.Random(seed).sample(ids, min(count, len(ids)))
    version = current_version(index)
    matrix = stored_vectors(version, read_manifest(version).dimension, list(range(len(ids))))
    brute = brute_force(matrix, {article_id: i for i, article_id in enumerate(ids)})

    def ask(query: str) -> object:
        return rec.similar(query, k=K)

    for query in queries[:200]:  # warm up
        ask(query)
        brute(query)
    ours = median_of([time_queries(ask, queries) for _ in range(runs)])
    floor = median_of([time_queries(brute, queries) for _ in range(runs)])
    one = statistics.median(queries_per_second(ask, queries, 1) for _ in range(runs))
    two = statistics.median(queries_per_second(ask, queries, 2) for _ in range(runs))
    rec.close()
    return {
        "p50": ours[0],
        "p95": ours[1],
        "p99": ours[2],
        "brute_p50": floor[0],
        "brute_p95": floor[1],
        "brute_p99": floor[2],
        "qps1": one,
        "qps2": two,
        "queries": len(queries),
    }


def build_figures(name: str, runs: int) -> tuple[dict[str, float], Path, list[str]]:
    path = dataset(name)
    index = INDEXES / f"bench-speed-{name}"
    articles = read_articles([path], drop_fields=["story"]).articles
    texts = [embedding_text(a.title, a.body, Settings().max_body_chars) for a in articles]
    walls, peaks = [], []
    for _ in range(runs):
        shutil.rmtree(index, ignore_errors=True)
        wall, peak = measured(
            [RECOMMEND, "build-index", str(path), "--drop-field", "story", "--index", str(index)]
        )
        walls.append(wall)
        peaks.append(peak)
    print(f"  build: {statistics.median(walls):.1f} s over {runs} run(s)")
    encoder = SentenceTransformerEncoder()
    encoder.encode(texts[:64])  # load the model outside the timing
    encode_seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        encoder.encode(texts)
        encode_seconds.append(time.perf_counter() - started)
    print(f"  raw encode: {statistics.median(encode_seconds):.1f} s")
    with Recommender.open(index) as rec:
        size = rec.info().bytes_on_disk
    wall = statistics.median(walls)
    return (
        {
            "articles": len(articles),
            "wall": wall,
            "rate": len(articles) / wall,
            "encode_rate": len(texts) / statistics.median(encode_seconds),
            "peak": max(peaks),
            "bytes_per_article": size / len(articles),
        },
        index,
        [a.id for a in articles],
    )


def cold_start(index: Path, article_id: str, runs: int) -> tuple[float, float]:
    ours = [measured([RECOMMEND, "similar", article_id, "--index", str(index)])[0]]
    ours += [
        measured([RECOMMEND, "similar", article_id, "--index", str(index)])[0]
        for _ in range(runs - 1)
    ]
    floor = [measured([sys.executable, "-c", "import numpy, faiss"])[0] for _ in range(runs)]
    return statistics.median(ours), statistics.median(floor)


def growth(name: str, sizes: list[int], count: int, runs: int, seed: int) -> list[list[str]]:
    articles = read_articles([dataset(name)], drop_fields=["story"]).articles
    sample = random.Random(seed).sample(articles, max(sizes))
    encoder = SentenceTransformerEncoder()
    encoder.encode(["warm up"])
    rows = []
    for size in sizes:
        index = INDEXES / f"bench-growth-{size}"
        started = time.perf_counter()
        Recommender.build(sample[:size], index, encoder=encoder)
        seconds = time.perf_counter() - started
        figures = query_figures(index, count, runs, seed)
        rows.append(
            [
                f"{size:,}",
                f"{seconds:.0f}",
                f"{size / seconds:.0f}",
                f"{figures['p50']:.2f}",
                f"{figures['brute_p50']:.2f}",
            ]
        )
        print("  " + " | ".join(rows[-1]))
        shutil.rmtree(index, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", nargs="+", default=["uci-news-2014-04", "ecbplus-dev"])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.perf_counter()

    build_rows, query_rows, cold_rows = [], [], []
    for name in args.sets:
        build_runs = 1 if name == "uci-news-2014-04" else args.runs  # 7 minutes a run
        print(f"{name}:")
        build, index, ids = build_figures(name, build_runs)
        build_rows.append(
            [
                name,
                f"{build['articles']:,}",
                f"{build['wall']:.1f}",
                f"{build['rate']:.0f}",
                f"{build['encode_rate']:.0f}",
                f"{build['rate'] / build['encode_rate']:.2f}",
                f"{build['peak']:.0f}",
                f"{build['bytes_per_article']:.0f}",
                str(build_runs),
            ]
        )
        print("  " + " | ".join(build_rows[-1]))
        q = query_figures(index, args.queries, args.runs, args.seed)
        query_rows.append(
            [
                name,
                f"{q['p50']:.2f} / {q['p95']:.2f} / {q['p99']:.2f}",
                f"{q['brute_p50']:.2f} / {q['brute_p95']:.2f} / {q['brute_p99']:.2f}",
                f"{q['p50'] / q['brute_p50']:.2f}",
                f"{q['qps1']:.0f}",
                f"{q['qps2']:.0f}",
                f"{q['qps2'] / q['qps1']:.2f}",
            ]
        )
        print("  " + " | ".join(query_rows[-1]))
        ours, floor = cold_start(index, ids[0], 5)
        cold_rows.append([name, f"{ours:.2f}", f"{floor:.2f}", f"{ours / floor:.1f}"])
        print("  " + " | ".join(cold_rows[-1]))
        shutil.rmtree(index, ignore_errors=True)
    print("cost growth (uci-news-2014-04 samples):")
    growth_rows = growth("uci-news-2014-04", args.sizes, args.queries, args.runs, args.seed)

    text = (
        header("Speed", time.perf_counter() - started)
        + f"""
Headline figures are ratios against the floor measured in the same run; absolute times are for
this machine only. Build = a whole `recommend build-index` process (reading, model load,
embedding, writing); raw encode = the same model's `encode` over the same texts in one call,
model already loaded. Queries: `Recommender.similar(id, k={K})` with default weighting, on
{args.queries} seeded random ids after 200 warm-up queries, one thread; median of {args.runs}
runs of each percentile. Brute force = `matrix @ vector` in numpy over the same vectors plus
a top-{K} partial sort. Cold start = the median of 5 whole `recommend similar ID` processes.

### Build

{
            table(
                [
                    "set",
                    "articles",
                    "seconds",
                    "articles/s",
                    "raw encode texts/s",
                    "ours / raw",
                    "peak MiB",
                    "index bytes/article",
                    "runs",
                ],
                build_rows,
            )
        }

### Queries (ms)

{
            table(
                [
                    "set",
                    "similar p50 / p95 / p99",
                    "brute force p50 / p95 / p99",
                    "p50 ratio",
                    "queries/s, 1 thread",
                    "queries/s, 2 threads",
                    "2 / 1 threads",
                ],
                query_rows,
            )
        }

### Cold start (s)

{table(["set", "recommend similar", "python -c 'import numpy, faiss'", "ratio"], cold_rows)}

### Cost growth (seeded samples of uci-news-2014-04, model loaded once)

{table(["articles", "build s", "articles/s", "similar p50 ms", "brute force p50 ms"], growth_rows)}
"""
    )
    print(text)
    if not args.no_write:
        write_section("speed", text)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
