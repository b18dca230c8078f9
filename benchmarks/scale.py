"""Scale: the engine at 10k, 138k and 1M headlines, beside the exact engine at 138k.

Corpora. Up to 138,410 articles: the real UCI headlines (uci-news-2014-04; a seeded sample for
smaller sizes) with their real all-MiniLM-L6-v2 vectors, read from the benchmark index
indexes/bench-uci-news-2014-04 (built by latency.py, or here if missing). The exact engine at
138k is built in the run from the same articles and vectors with --vector-search flat and
--precomputed-k 0 (exhaustive search, no precomputed lists), beside the graph-searched one with
its precomputed lists (both with the default ranking). Past that, synthetic articles fill up
to 1,000,000: each copies a random real article's category, its date moved by up to 30 days, a
title made of the first half of its words and the second half of another real title's, and its
vector plus Gaussian noise (sigma 0.6 / sqrt(dimension) per component, cosine about 0.86 to the
source), scaled to length 1. The vectors are supplied to build-index (--vectors), so no model
runs for them. Synthetic articles have no story: relevance figures past 138k would mean nothing
and are not computed; speed, memory and build figures are what they are for.

Every figure is measured in a fresh process: build (a whole ``recommend build-index``,
wall time and peak RSS), queries (``similar(id, k=10)`` default ranking, one thread, warm,
seeded ids; then the same ids "searched", with the process's precomputed lists set aside, as
an index without them answers; ``similar_to_text`` with encoding), memory (RSS of a process
with the index open and queried, model not loaded), cold start (whole ``recommend similar
ID`` processes beside ``python -c "import numpy, faiss"``, interleaved, median of 5), updates
(whole ``recommend add`` / ``remove`` processes on the index), and at 1M the reader's p99 while a
``recommend add`` process embeds 300 articles on the same cores (its default: 1 thread; the
reader refreshes as a server does, ``auto_refresh=True``, so it checks its lists against the
articles being added).

Relevance at 138k: the graph-searched engine beside the exact one on the same data, story
labels of uci-news-2014-04 (2,000 seeded queries) and ecbplus-dev (every article, the graph
forced since 496 articles are below the size where "auto" picks it): nDCG@10 and overlap of
the top-10 lists.

Usage: python benchmarks/scale.py [--sizes 10000 138410 1000000] [--queries 1000]
       [--work /tmp/recommender-scale] [--keep] [--no-write]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from common import INDEXES, ROOT, dataset, header, table, write_section

REAL = "uci-news-2014-04"
EXACT = INDEXES / f"bench-{REAL}"
K = 10
NOISE = 0.6
# Bytecode cached, as an installed package has it (pip compiles it; this sandbox sets
# PYTHONDONTWRITEBYTECODE, which would make every process compile the package again).
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPATH": str(ROOT),
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
PYTHON = sys.executable


# -- corpora ---------------------------------------------------------------------------------


def real_corpus() -> tuple[list[Any], np.ndarray, str]:
    """The real headlines (story dropped) and their vectors from the exact index."""
    from recommender import Recommender, Settings
    from recommender.articles import read_articles

    articles = read_articles([dataset(REAL)], drop_fields=["story"]).articles
    if not (EXACT / "CURRENT").exists():
        print(f"building {EXACT} (the exact engine, embedding {len(articles):,} headlines)")
        Recommender.build(articles, EXACT, settings=Settings(vector_search="flat"))
    with Recommender.open(EXACT) as rec:
        rows = np.array([rec.snapshot.row(a.id) for a in articles])
        vectors = rec.snapshot.vectors(rows)
        return articles, vectors, rec.manifest.model


def corpus(
    size: int, articles: list[Any], vectors: np.ndarray, seed: int
) -> tuple[list[Any], np.ndarray]:
    """``size`` articles: real ones (a seeded sample when fewer), then synthetic ones."""
    rng = np.random.default_rng(seed)
    if size <= len(articles):
        chosen = np.sort(rng.choice(len(articles), size, replace=False))
        return [articles[i] for i in chosen], vectors[chosen]
    extra = size - len(articles)
    source = rng.integers(0, len(articles), extra)
    other = rng.integers(0, len(articles), extra)
    shift = rng.integers(-30, 31, extra)
    words = [a.title.split() for a in articles]
    made = []
    for j in range(extra):
        first, second = words[source[j]], words[other[j]]
        title = " ".join(first[: max(1, len(first) // 2)] + second[len(second) // 2 :])
        base = articles[source[j]]
        published = base.published_at + timedelta(days=int(shift[j])) if base.published_at else None
        made.append(replace(base, id=f"syn-{j:07d}", title=title, url=None, published_at=published))
    dimension = vectors.shape[1]
    noisy = np.empty((extra, dimension), dtype=np.float32)
    for start in range(0, extra, 100_000):
        part = vectors[source[start : start + 100_000]]
        part = part + rng.standard_normal(part.shape).astype(np.float32) * (
            NOISE / math.sqrt(dimension)
        )
        noisy[start : start + 100_000] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return [*articles, *made], np.concatenate([vectors, noisy])


def write_corpus(folder: Path, articles: list[Any], vectors: np.ndarray, model: str) -> None:
    """articles.jsonl.gz and vectors.parquet (id, content_hash, model, vector) in ``folder``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recommender import article_content_hash

    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "articles.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as out:
        for a in articles:
            record = {
                "id": a.id,
                "title": a.title,
                "body": a.body,
                "category": a.category,
                "published_at": a.published_at.isoformat() if a.published_at else None,
                "url": a.url,
                "source": a.source,
            }
            out.write(json.dumps(record) + "\n")
    writer = None
    for start in range(0, len(articles), 200_000):
        part = articles[start : start + 200_000]
        block = vectors[start : start + 200_000]
        flat = pa.array(block.reshape(-1), type=pa.float32())
        batch = pa.table(
            {
                "id": [a.id for a in part],
                "content_hash": [article_content_hash(a) for a in part],
                "model": [model] * len(part),
                "vector": pa.FixedSizeListArray.from_arrays(flat, block.shape[1]),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(folder / "vectors.parquet", batch.schema)
        writer.write_table(batch)
    assert writer is not None
    writer.close()


# -- processes -------------------------------------------------------------------------------


def timed(command: list[str]) -> tuple[float, str]:
    """Run a process to its end: (wall seconds, its stdout); exit if it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def run_build(folder: Path, index: Path, extra: list[str] = ()) -> tuple[float, float]:
    """A whole build-index process with the vectors supplied: (seconds, peak RSS MB)."""
    if index.exists():
        shutil.rmtree(index)
    command = [
        PYTHON,
        "-m",
        "recommender",
        "build-index",
        str(folder / "articles.jsonl.gz"),
        "--index",
        str(index),
        "--vectors",
        str(folder / "vectors.parquet"),
        *extra,
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    err = process.stderr.read().decode() if process.stderr else ""
    out = process.stdout.read().decode() if process.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"build of {index} failed:\n{err[-2000:]}")
    print(out.strip())
    return seconds, usage.ru_maxrss / 1024


def probe(index: Path, queries: int, seed: int, texts: int = 50) -> dict[str, Any]:
    """Open, memory, latency and similar_to_text figures of an index, in a fresh process."""
    command = [PYTHON, __file__, "--probe", str(index), "--queries", str(queries)]
    _, out = timed([*command, "--seed", str(seed), "--texts", str(texts)])
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    return tuple(float(np.percentile(samples, p)) for p in (50, 95, 99))  # type: ignore[return-value]


def probe_main(index: Path, queries: int, seed: int, texts: int) -> None:
    """(In the probe process.) Print one JSON line of figures."""
    begin = time.perf_counter()
    from recommender import Recommender

    imported = time.perf_counter()
    rec = Recommender.open(index)
    opened = time.perf_counter()
    ids = rec.ids()
    first = ids[len(ids) // 2]
    start_first = time.perf_counter()
    rec.similar(first, k=K)
    first_query = time.perf_counter() - start_first
    chosen = random.Random(seed).sample(ids, min(queries, len(ids)))
    for article_id in chosen[:200]:  # warm
        rec.similar(article_id, k=K)
    latencies = []
    for article_id in chosen:
        t0 = time.perf_counter_ns()
        rec.similar(article_id, k=K)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    memory = rss_mb()
    lists = rec.info().precomputed
    # The same queries searched, as without precomputed lists: the lists of this process's
    # snapshot are set aside.
    rec.snapshot.__dict__["precomputed"] = None
    searched = []
    for article_id in chosen:
        t0 = time.perf_counter_ns()
        rec.similar(article_id, k=K)
        searched.append((time.perf_counter_ns() - t0) / 1e6)
    titles = [rec.get(i).title for i in chosen[:texts]]
    rec.similar_to_text(titles[0], k=K)  # loads the model
    text_latencies = []
    for title in titles:
        t0 = time.perf_counter_ns()
        rec.similar_to_text(title, k=K)
        text_latencies.append((time.perf_counter_ns() - t0) / 1e6)
    info = rec.info()
    print(
        json.dumps(
            {
                "articles": len(ids),
                "import_s": imported - begin,
                "open_s": opened - imported,
                "first_query_s": first_query,
                "similar_ms": percentiles(latencies),
                "searched_ms": percentiles(searched),
                "precomputed": lists,
                "text_ms": percentiles(text_latencies),
                "rss_mb": memory,
                "bytes_on_disk": info.bytes_on_disk,
                "search": info.vector_search,
            }
        )
    )


def cold_start(index: Path, article_id: str, runs: int = 5) -> tuple[float, float]:
    """Medians of whole ``recommend similar`` processes and of ``import numpy, faiss`` (after
    one of each that is not counted: it writes the bytecode and warms the page cache)."""
    ours, floor = [], []
    timed([PYTHON, "-c", "import numpy, faiss"])
    timed([PYTHON, "-m", "recommender", "similar", article_id, "--index", str(index)])
    for _ in range(runs):
        floor.append(timed([PYTHON, "-c", "import numpy, faiss"])[0])
        ours.append(
            timed([PYTHON, "-m", "recommender", "similar", article_id, "--index", str(index)])[0]
        )
    return statistics.median(ours), statistics.median(floor)


def reported_seconds(out: str) -> float:
    """The seconds ``recommend add`` reports ('... in 0.4 s')."""
    return float(out.split(" in ")[-1].split(" s")[0])


def updates(index: Path, model: str, vector: np.ndarray) -> dict[str, float]:
    """Whole add (vector supplied), add (embedded here) and remove processes on the index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recommender import Article, article_content_hash

    folder = index.parent / f"{index.name}-updates"
    folder.mkdir(exist_ok=True)
    one = Article(id="scale-new-1", title="Harbour cranes stand still as the storm goes on")
    two = Article(id="scale-new-2", title="Ferry routes stay shut for a second day of storms")
    for item in (one, two):
        (folder / f"{item.id}.jsonl").write_text(json.dumps({"id": item.id, "title": item.title}))
    pq.write_table(
        pa.table(
            {
                "id": [one.id],
                "content_hash": [article_content_hash(one)],
                "model": [model],
                "vector": [vector.tolist()],
            }
        ),
        folder / "one.parquet",
    )
    base = [PYTHON, "-m", "recommender"]
    supplied = timed(
        [*base, "add", str(folder / f"{one.id}.jsonl"), "-i", str(index), "--vectors",
         str(folder / "one.parquet")]
    )  # fmt: skip
    embedded = timed([*base, "add", str(folder / f"{two.id}.jsonl"), "-i", str(index)])
    removed = timed([*base, "remove", one.id, two.id, "-i", str(index)])
    shutil.rmtree(folder)
    return {
        "add_supplied_s": supplied[0],
        "add_supplied_reported_s": reported_seconds(supplied[1]),
        "add_embedded_s": embedded[0],
        "add_embedded_reported_s": reported_seconds(embedded[1]),
        "remove_s": removed[0],
    }


def contention_main(index: Path, batch: Path, queries: int, seed: int) -> None:
    """(In a probe process.) Reader p99 idle, then while a writer process embeds ``batch``."""
    from recommender import Recommender

    rec = Recommender.open(index, auto_refresh=True)  # as a server: sees the adds, checks them
    ids = random.Random(seed).sample(rec.ids(), queries)
    for article_id in ids[:200]:
        rec.similar(article_id, k=K)

    def timed_query(article_id: str) -> float:
        t0 = time.perf_counter_ns()
        rec.similar(article_id, k=K)
        return (time.perf_counter_ns() - t0) / 1e6

    idle = [timed_query(i) for i in ids]
    writer = subprocess.Popen(
        [PYTHON, "-m", "recommender", "add", str(batch), "-i", str(index)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    busy: list[float] = []
    while writer.poll() is None:
        busy.append(timed_query(ids[len(busy) % len(ids)]))
        time.sleep(0.002)  # a reader serving requests, not a loop hogging a core
    print(json.dumps({"idle_ms": percentiles(idle), "busy_ms": percentiles(busy), "n": len(busy)}))


def contention(index: Path, articles: list[Any], queries: int, seed: int) -> dict[str, Any]:
    batch = index.parent / "writer-batch.jsonl"
    rng = random.Random(seed)
    with batch.open("w") as out:
        for j, base in enumerate(rng.sample(articles, 300)):
            out.write(
                json.dumps({"id": f"writer-{j}", "title": f"{base.title} (update {j})"}) + "\n"
            )
    command = [PYTHON, __file__, "--contend", str(index), str(batch), "--queries", str(queries)]
    _, out = timed(command)
    batch.unlink()
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- relevance at 138k -------------------------------------------------------------------------


def ndcg(listed: list[str], relevant: frozenset[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, x in enumerate(listed[:K]) if x in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), K)))
    return dcg / ideal if ideal else 0.0


def compare(exact: Path, graph: Path, data: Path, queries: int | None, seed: int) -> dict[str, Any]:
    """nDCG@10 of both engines and the overlap of their top-10 lists, same queries."""
    from recommender import Recommender
    from recommender.quality.evaluate import labels_from_field, relevance_from_labels

    relevance = relevance_from_labels(labels_from_field([data], "story"))
    with Recommender.open(exact) as a, Recommender.open(graph) as b:
        ids = [i for i in a.ids() if relevance.get(i)]
        if queries is not None and queries < len(ids):
            ids = random.Random(seed).sample(ids, queries)
        scores: dict[str, list[float]] = {"exact": [], "graph": [], "overlap": []}
        for article_id in ids:
            one = [item.id for item in a.similar(article_id, k=K)]
            two = [item.id for item in b.similar(article_id, k=K)]
            scores["exact"].append(ndcg(one, relevance[article_id]))
            scores["graph"].append(ndcg(two, relevance[article_id]))
            scores["overlap"].append(len(set(one) & set(two)) / max(1, len(one)))
    return {name: float(np.mean(values)) for name, values in scores.items()} | {"queries": len(ids)}


def ecbplus(work: Path) -> dict[str, Any]:
    """The exact and the graph engine over ecbplus-dev (title + body), same vectors."""
    from recommender import Recommender, Settings
    from recommender.articles import read_articles

    articles = read_articles([dataset("ecbplus-dev")], drop_fields=["story"]).articles
    exact, graph = work / "ecbplus-exact", work / "ecbplus-graph"
    Recommender.build(articles, exact, settings=Settings(vector_search="flat", precomputed_k=0))
    with Recommender.open(exact) as rec:
        vectors = rec.snapshot.vectors(np.array([rec.snapshot.row(a.id) for a in articles]))
        model = rec.manifest.model
    folder = work / "ecbplus-vectors"
    write_corpus(folder, articles, vectors, model)
    Recommender.build(
        articles,
        graph,
        settings=Settings(vector_search="hnsw"),
        vectors=folder / "vectors.parquet",
    )
    return compare(exact, graph, dataset("ecbplus-dev"), None, 0)


# -- the run ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 138_410, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/recommender-scale"))
    parser.add_argument("--keep", action="store_true", help="keep corpora and indexes")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--contend", type=Path, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe_main(args.probe, args.queries, args.seed, args.texts)
    if args.contend:
        return contention_main(*args.contend, args.queries, args.seed)
    started = time.perf_counter()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    articles, vectors, model = real_corpus()
    rows: dict[int, dict[str, Any]] = {}
    for size in sorted(args.sizes):
        print(f"-- {size:,} articles")
        folder, index = work / f"corpus-{size}", work / f"index-{size}"
        chosen, chosen_vectors = corpus(size, articles, vectors, args.seed)
        write_corpus(folder, chosen, chosen_vectors, model)
        del chosen_vectors
        build_s, build_mb = run_build(folder, index)
        figures: dict[str, Any] = {"build_s": build_s, "build_peak_mb": build_mb}
        figures |= probe(index, args.queries, args.seed)
        middle = chosen[len(chosen) // 2].id
        if size <= len(articles):  # the target is at 138k; at 1M each run loads for long
            figures["cold_s"], figures["import_floor_s"] = cold_start(index, middle)
        figures |= updates(index, model, vectors[0])
        if size == max(args.sizes):
            figures["contention"] = contention(index, articles, args.queries, args.seed)
        if size == len(articles):
            # The exact engine: the same articles and vectors, exhaustive search, built here
            # (the benchmark index the vectors come from may itself be a graph by now).
            exact_index = work / f"exact-{size}"
            run_build(folder, exact_index, ["--vector-search", "flat", "--precomputed-k", "0"])
            exact = probe(exact_index, args.queries, args.seed)
            exact["cold_s"], exact["import_floor_s"] = cold_start(exact_index, middle)
            figures["exact"] = exact
            figures["uci"] = compare(exact_index, index, dataset(REAL), 2000, args.seed)
            if not args.keep:
                shutil.rmtree(exact_index)
            figures["ecbplus"] = ecbplus(work)
        rows[size] = figures
        print(json.dumps(figures, indent=1))
        if not args.keep:
            shutil.rmtree(folder)
            if size > len(articles):
                shutil.rmtree(index)
    text = report(rows, args, time.perf_counter() - started)
    print(text)
    if not args.no_write:
        write_section("scale", text)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def report(rows: dict[int, dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    def ms(values: Any) -> str:
        return " / ".join(f"{v:.2f}" for v in values)

    lines = [
        ["size", "search", "similar p50 / p95 / p99 ms", "searched p50 / p95 / p99 ms",
         "similar_to_text p50 ms", "RSS MB",
         "bytes/article (RSS)", "disk bytes/article", "build s", "build peak MB"],
    ]  # fmt: skip
    for size, f in rows.items():
        entries = [(f"{size:,}", f)]
        if "exact" in f:
            entries.append((f"{size:,} exact engine", f["exact"] | {"build_s": None}))
        for name, g in entries:
            lines.append(
                [
                    name,
                    g["search"].split(" (")[0],
                    ms(g["similar_ms"]),
                    ms(g["searched_ms"]) if "searched_ms" in g else "-",
                    f"{g['text_ms'][0]:.1f}",
                    f"{g['rss_mb']:.0f}",
                    f"{g['rss_mb'] * 2**20 / size:.0f}",
                    f"{g['bytes_on_disk'] / size:.0f}",
                    "-" if g.get("build_s") is None else f"{g['build_s']:.0f}",
                    "-" if g.get("build_s") is None else f"{g['build_peak_mb']:.0f}",
                ]
            )
    starts = [["size", "recommend similar s", "import numpy, faiss s", "ratio",
               "open s", "first query s", "(open + first) / import"]]  # fmt: skip
    for size, f in rows.items():
        entries = [(f"{size:,}", f)] + ([(f"{size:,} exact", f["exact"])] if "exact" in f else [])
        for name, g in entries:
            if "cold_s" not in g:
                continue
            starts.append(
                [
                    name,
                    f"{g['cold_s']:.2f}",
                    f"{g['import_floor_s']:.2f}",
                    f"{g['cold_s'] / g['import_floor_s']:.1f}",
                    f"{g['open_s']:.2f}",
                    f"{g['first_query_s']:.3f}",
                    f"{(g['open_s'] + g['first_query_s']) / g['import_floor_s']:.1f}",
                ]
            )
    writes = [["size", "add, vector supplied: process s (reported s)",
               "add, embedded here: process s (reported s)", "remove: process s"]]  # fmt: skip
    for size, f in rows.items():
        writes.append(
            [
                f"{size:,}",
                f"{f['add_supplied_s']:.2f} ({f['add_supplied_reported_s']:.2f})",
                f"{f['add_embedded_s']:.2f} ({f['add_embedded_reported_s']:.2f})",
                f"{f['remove_s']:.2f}",
            ]
        )
    text = (
        header("Scale", seconds)
        + "\nCorpora, method and caveats: see the docstring of benchmarks/scale.py (synthetic "
        "articles past 138,410: relevance figures there would mean nothing). "
        f"{args.queries} seeded queries per size after 200 warm-up ones, one thread. "
        f"Load average of the machine (shared with other work) at the end: "
        f"{os.getloadavg()[0]:.1f}.\n\n"
        "### Queries, memory, build\n\n"
        + table(lines[0], lines[1:])
        + "\n\n### Cold start\n\n"
        + table(starts[0], starts[1:])
        + "\n\n### Updates (whole processes)\n\n"
        + table(writes[0], writes[1:])
    )
    for size, f in rows.items():
        if "contention" in f:
            c = f["contention"]
            text += (
                f"\n\nReader while a writer embeds 300 articles at {size:,} (writer default: 1 "
                f"thread): p99 {c['busy_ms'][2]:.2f} ms over {c['n']} queries, idle p99 "
                f"{c['idle_ms'][2]:.2f} ms: {c['busy_ms'][2] / c['idle_ms'][2]:.2f}x "
                f"(p50 {c['busy_ms'][0]:.2f} vs {c['idle_ms'][0]:.2f} ms)."
            )
        if "uci" in f:
            u, e = f["uci"], f["ecbplus"]
            text += (
                "\n\n### Relevance, graph search vs the exact engine (same data, same vectors)"
                "\n\n"
                + table(
                    [
                        "set",
                        "queries",
                        "nDCG@10 exact",
                        "nDCG@10 graph",
                        "difference",
                        "top-10 overlap",
                    ],
                    [
                        [
                            name,
                            str(g["queries"]),
                            f"{g['exact']:.4f}",
                            f"{g['graph']:.4f}",
                            f"{g['graph'] - g['exact']:+.4f}",
                            f"{g['overlap']:.4f}",
                        ]
                        for name, g in ((REAL, u), ("ecbplus-dev", e))
                    ],
                )
            )
    return text


if __name__ == "__main__":
    main()
