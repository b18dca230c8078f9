"""Identity evidence (recommender/names.py) in the ranking: off, on, and each piece on its own.

For each set, the index is built with the shipped code (names stored; a copy of ``bench-<set>``
is put there first so that the build reuses its embeddings), then every variant answers the
same queries, searched (never read from precomputed lists), with the weighting off
(half_life_days None, category_boost 0) and with the defaults:

- identity off: ``identity_weight=0`` (the ranking before names);
- identity W: ``identity_weight=W``, every piece;
- pieces at the default weight, each on its own: names counted only in the similarity to the
  query (not between candidates in the neighbour step), only between candidates, only the
  words (no numbers), only the numbers (figures, years, dates).

nDCG@10 (plain, and copies counted once as benchmarks/quality.py counts them); the sample by
query language too.

With ``--speed``, the searched path's latency on uci-news-2014-04 (138k headlines): the same
seeded queries, interleaved, on the index with names and on a copy of it without them (an index
built before names, whose queries take the path of the ranking before identity), ``similar(id,
k=10)`` searched (an exclusion keeps the precomputed lists out), one thread.

Usage: python benchmarks/identity.py [--sets ecbplus-dev uci-news-2014-04 sample]
       [--queries 500] [--seed 0] [--weights 0.1 0.2 0.3] [--indexes DIR] [--reuse DIR]
       [--no-build] [--no-write] [--speed] [--speed-queries 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from common import INDEXES, ROOT, dataset, header, table, write_section
from languages import plain_ndcg
from quality import CopiesOnce

from recommender import Recommender, Settings
from recommender.lexical import cosine_with
from recommender.names import FIGURE, NO_NAME, WORD, names_of, rows_names
from recommender.quality.evaluate import choose_queries, labels_from_field, relevance_from_labels
from recommender.read import pipeline
from recommender.storage.layout import ARTICLES, current_version

K = 10
SAMPLE = ROOT / "recommender" / "sample" / "articles.jsonl"
WEIGHTING_OFF = {"half_life_days": None, "category_boost": 0.0}
NO_LISTS = ("\x00no such article",)  # an exclusion: the list is searched, never looked up
DEFAULT_WEIGHT = Settings().ranking.identity_weight

Mask = Callable[[Any], np.ndarray]  # snapshot -> the name kinds a variant counts


def only(kind: int) -> Mask:
    """The names of one kind (``names.WORD`` or ``names.FIGURE``) only."""
    return lambda snapshot: np.where(snapshot.names == kind, kind, NO_NAME).astype(np.int8)


@contextmanager
def piece(mask: Mask | None = None, to_query: bool = True, between: bool = True) -> Iterator[None]:
    """Count only one piece of the identity evidence: the names of ``mask`` (all: None), in
    the similarity to the query and/or between candidates."""
    real = pipeline.pool_of

    def pool_of(snapshot: Any, vector: Any, terms: Any, dense: Any, lexical: Any) -> Any:
        rows, pool = real(snapshot, vector, terms, dense, lexical)
        if pool.names is None:
            return rows, pool
        chosen = snapshot.names if mask is None else mask(snapshot)
        names = rows_names(pool.terms, chosen)
        identity = cosine_with(names, names_of(terms, chosen))
        if not to_query:
            identity = np.zeros(len(pool), dtype=np.float32)
        return rows, replace(pool, identity=identity, names=names if between else None)

    pipeline.pool_of = pool_of  # type: ignore[assignment]
    try:
        yield
    finally:
        pipeline.pool_of = real  # type: ignore[assignment]


PIECES: dict[str, tuple[Mask | None, bool, bool]] = {
    "to the query only": (None, True, False),
    "between candidates only": (None, False, True),
    "words only": (only(WORD), True, True),
    "numbers only": (only(FIGURE), True, True),
}


def build(name: str, data: Path, indexes: Path, reuse: Path) -> Recommender:
    index = indexes / f"bench-identity-{name}"
    source = reuse / ("sample" if name == "sample" else f"bench-{name}")
    if source.is_dir() and not index.exists():
        shutil.copytree(source, index, symlinks=True)
    started = time.perf_counter()
    report = Recommender.build_from_files([data], index, drop_fields=["story"], settings=Settings())
    print(
        f"  built {index}: {report.articles} articles ({report.reused} embeddings reused) "
        f"in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return Recommender.open(index)


def scores(
    rec: Recommender,
    queries: list[str],
    relevance: dict[str, frozenset[str]],
    once: CopiesOnce,
    options: dict[str, Any],
) -> dict[str, tuple[list[float], list[float]]]:
    """Each query language's (plain, copies once) nDCG@10 lists, and "all"."""
    found: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for query in queries:
        listed = [item.id for item in rec.similar(query, k=K, exclude=NO_LISTS, **options)]
        relevant = frozenset(r for r in relevance[query] if r in rec)
        plain, counted = plain_ndcg(listed, relevant), once.ndcg(query, listed, relevant)
        for key in ("all", rec.language(query) or "unknown"):
            found[key][0].append(plain)
            found[key][1].append(counted)
    return found


def run_set(
    name: str, queries_wanted: int, seed: int, weights: list[float], args: argparse.Namespace
) -> str:
    data = SAMPLE if name == "sample" else dataset(name)
    print(f"{name}:", flush=True)
    if args.no_build:
        rec = Recommender.open(args.indexes / f"bench-identity-{name}")
    else:
        rec = build(name, data, args.indexes, args.reuse)
    names = int(np.count_nonzero(rec.snapshot.names))
    relevance = relevance_from_labels(labels_from_field([data], "story"))
    count = queries_wanted if len(rec) > 5000 else None
    queries, _ = choose_queries(relevance, rec.__contains__, count, seed)
    once = CopiesOnce(rec)
    variants: list[tuple[str, float, tuple[Mask | None, bool, bool] | None]] = [
        ("identity off", 0.0, None)
    ]
    variants += [(f"identity {w:g}", w, None) for w in weights]
    variants += [(label, DEFAULT_WEIGHT, chosen) for label, chosen in PIECES.items()]
    rows = []
    for ranking, options in (("weighting off", WEIGHTING_OFF), ("defaults", {})):
        for label, weight, chosen in variants:
            opts = {**options, "identity_weight": weight}
            if chosen is None:
                found = scores(rec, queries, relevance, once, opts)
            else:
                with piece(*chosen):
                    found = scores(rec, queries, relevance, once, opts)
            order = sorted(found, key=lambda key: (key != "all", -len(found[key][0]), key))
            for language in order if name == "sample" else ["all"]:
                plain, counted = found[language]
                rows.append(
                    [
                        ranking,
                        label,
                        language,
                        str(len(plain)),
                        f"{sum(plain) / len(plain):.4f}",
                        f"{sum(counted) / len(counted):.4f}",
                    ]
                )
                print("  " + " | ".join(rows[-1]), flush=True)
    rec.close()
    columns = ["ranking", "variant", "query language", "queries", "nDCG@10", "copies once"]
    title = f"### {name} ({len(queries)} queries, {names} name terms, {rec.settings.model})"
    return title + "\n\n" + table(columns, rows) + "\n"


def speed(index: Path, queries_wanted: int, runs: int, seed: int) -> str:
    """The searched path's p50/p95/p99 with names and without (a copy of ``index`` whose names
    table is dropped), interleaved on the same seeded queries."""
    bare = index.parent / f"{index.name}-without-names"
    if not bare.exists():
        shutil.copytree(index, bare, symlinks=True)
        with sqlite3.connect(current_version(bare) / ARTICLES) as db:
            db.execute("DROP TABLE IF EXISTS names")
        db.close()
    with_names, without = Recommender.open(index), Recommender.open(bare)
    assert with_names.snapshot.names.any() and not without.snapshot.names.any()
    queries = random.Random(seed).sample(with_names.ids(), queries_wanted)
    methods = {
        "without names (the ranking before identity)": without,
        f"with names, identity_weight {DEFAULT_WEIGHT:g}": with_names,
    }
    for query in queries[:200]:  # warm up caches and lazy imports
        for rec in methods.values():
            rec.similar(query, k=K, exclude=NO_LISTS)
    samples: dict[str, list[list[float]]] = {name: [] for name in methods}
    for _ in range(runs):
        for name in methods:
            samples[name].append([])
        for query in queries:
            for name, rec in methods.items():
                begin = time.perf_counter_ns()
                rec.similar(query, k=K, exclude=NO_LISTS)
                samples[name][-1].append((time.perf_counter_ns() - begin) / 1e6)
    figures = {
        name: tuple(
            statistics.median(float(np.percentile(run, p)) for run in found) for p in (50, 95, 99)
        )
        for name, found in samples.items()
    }
    floor = figures[next(iter(methods))][0]
    rows = [
        [name, f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}", f"{p50 / floor:.2f}"]
        for name, (p50, p95, p99) in figures.items()
    ]
    for row in rows:
        print("  " + " | ".join(row), flush=True)
    count = len(with_names)
    with_names.close()
    without.close()
    return (
        f"### Searched path latency (uci-news-2014-04, {count:,} articles)\n\n"
        f"{queries_wanted} seeded queries (seed {seed}), similar(id, k=10) searched, one "
        f"thread, median over {runs} runs of each percentile, the two indexes taking turns on "
        "every query.\n\n"
        + table(["index", "p50 (ms)", "p95 (ms)", "p99 (ms)", "p50 / without"], rows)
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="*", default=["ecbplus-dev", "uci-news-2014-04", "sample"])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--indexes", type=Path, default=INDEXES)
    parser.add_argument("--reuse", type=Path, default=INDEXES, help="where bench-<set> is")
    parser.add_argument("--no-build", action="store_true", help="use the indexes as they are")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--speed", action="store_true", help="also the searched path's latency")
    parser.add_argument("--speed-queries", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    sections = [run_set(n, args.queries, args.seed, args.weights, args) for n in args.sets]
    if args.speed:
        index = args.indexes / "bench-identity-uci-news-2014-04"
        sections.append(speed(index, args.speed_queries, args.runs, args.seed))
    text = header("Identity evidence", time.perf_counter() - started) + "\n".join(sections)
    print(text)
    if not args.no_write:
        write_section("identity", text)


if __name__ == "__main__":
    main()
