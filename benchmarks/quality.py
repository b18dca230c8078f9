"""Relevance of the related lists on story-labelled news, beside the alternatives, in one run.

For each set in ../shared/data, every method answers the same queries and is scored by the same
code (recommender.evaluate.score_list):

- tfidf:   TF-IDF cosine over title + whole body (scikit-learn), the "more like this" stand-in;
- bm25:    BM25 over the same text (bm25s), the article's text as the query;
- dense:   cosine over the engine's own vectors, nearest first, no reranking or duplicate removal;
- engine, weighting off: recommender with half_life_days=None, category_boost=0;
- engine, defaults: recommender as shipped.

Usage: python benchmarks/quality.py [--sets ecbplus-dev uci-news-2014-04 bbc-news]
       [--queries 2000] [--seed 0] [--reuse-index] [--no-write]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from common import INDEXES, dataset, header, table, write_section

from recommender import Article, Recommender
from recommender.articles import read_articles
from recommender.evaluate import (
    ListScores,
    choose_queries,
    labels_from_field,
    relevance_from_labels,
    score_list,
    summarize,
)

K = 10
DEPTH = 50  # list depth for recall@50
SETS = {
    # name: (what is embedded, queries: None = all)
    "ecbplus-dev": "title + body",
    "uci-news-2014-04": "headline",
    "bbc-news": "title + body",
}
WEIGHTING_OFF = {"half_life_days": None, "category_boost": 0.0}

Lists = Callable[[str], list[str]]  # query id -> ranked ids (at least DEPTH when it can)


def lexical_text(article: Article) -> str:
    return f"{article.title}\n{article.body}" if article.body else article.title


def top_ids(scores: np.ndarray, ids: Sequence[str], self_row: int, depth: int) -> list[str]:
    scores = scores.astype(np.float64, copy=True)
    scores[self_row] = -np.inf
    depth = min(depth, len(scores) - 1)
    best = np.argpartition(-scores, depth)[:depth]
    best = best[np.lexsort((best, -scores[best]))]
    return [ids[i] for i in best]


def tfidf_lists(articles: list[Article], queries: list[str]) -> dict[str, list[str]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    ids = [a.id for a in articles]
    row = {article_id: i for i, article_id in enumerate(ids)}
    matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english", dtype=np.float32)
    vectors = matrix.fit_transform([lexical_text(a) for a in articles]).tocsr()
    out: dict[str, list[str]] = {}
    for start in range(0, len(queries), 256):
        batch = queries[start : start + 256]
        scores = (vectors[[row[q] for q in batch]] @ vectors.T).toarray()
        for query, line in zip(batch, scores, strict=True):
            out[query] = top_ids(line, ids, row[query], DEPTH)
    return out


def bm25_lists(articles: list[Article], queries: list[str]) -> dict[str, list[str]]:
    import bm25s

    ids = [a.id for a in articles]
    row = {article_id: i for i, article_id in enumerate(ids)}
    texts = [lexical_text(a) for a in articles]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(
        [texts[row[q]] for q in queries], stopwords="en", show_progress=False, return_ids=False
    )
    found, _ = retriever.retrieve(
        tokens, k=min(DEPTH + 1, len(ids)), show_progress=False, n_threads=1
    )
    return {
        query: [ids[i] for i in hits if i != row[query]][:DEPTH]
        for query, hits in zip(queries, found, strict=True)
    }


def engine(name: str, path: Path, reuse: bool) -> Recommender:
    index = INDEXES / f"bench-{name}"
    if reuse and (index / "CURRENT").exists():
        print(f"  reusing {index}")
    else:
        started = time.perf_counter()
        report = Recommender.build_from_files([path], index, drop_fields=["story"])
        print(
            f"  built {index}: {report.articles} articles in {time.perf_counter() - started:.0f} s"
        )
    return Recommender.open(index)


def score(
    queries: list[str],
    lists: Lists,
    deep: Lists,
    by_id: dict[str, Article],
    relevance: dict[str, frozenset[str]],
) -> tuple[list[ListScores], list[float]]:
    """Each query's list scores, and the recall of ``deep`` (its top DEPTH)."""
    scores, recalls = [], []
    for query in queries:
        relevant = relevance.get(query, frozenset())
        scores.append(score_list(by_id[query], [by_id[i] for i in lists(query)[:K]], relevant))
        if relevant:
            recalls.append(len(relevant.intersection(deep(query)[:DEPTH])) / len(relevant))
    return scores, recalls


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def run_set(name: str, queries_wanted: int, seed: int, reuse: bool) -> str:
    path = dataset(name)
    print(f"{name}:")
    articles = read_articles([path], drop_fields=["story"]).articles
    by_id = {a.id: a for a in articles}
    try:
        relevance = relevance_from_labels(labels_from_field([path], "story"))
    except Exception:
        relevance = {}
    labelled = bool(relevance)
    rec = engine(name, path, reuse)
    if labelled:
        count = queries_wanted if len(articles) > 5000 else None
        queries, _ = choose_queries(relevance, by_id.__contains__, count, seed)
    else:
        queries = sorted(by_id)
    print(f"  {len(queries)} queries")

    def dense(query: str) -> list[str]:
        return [i for i, _ in rec.candidates(query, k=DEPTH)][:DEPTH]

    def engine_lists(**options: object) -> Lists:
        def lists(query: str) -> list[str]:
            return [item.id for item in rec.similar(query, k=K, **options)]

        return lists

    tfidf = tfidf_lists(articles, queries)
    bm25 = bm25_lists(articles, queries)
    # (label, the list of K, the list whose top DEPTH gives R@50)
    methods: list[tuple[str, Lists, Lists]] = [
        ("TF-IDF cosine", tfidf.__getitem__, tfidf.__getitem__),
        ("BM25 (bm25s)", bm25.__getitem__, bm25.__getitem__),
        ("dense cosine only (all-MiniLM-L6-v2)", dense, dense),
        ("engine, weighting off", engine_lists(**WEIGHTING_OFF), dense),
        ("engine, defaults", engine_lists(), dense),
    ]
    rows = []
    for label, lists, deep in methods:
        scores, recalls = score(queries, lists, deep, by_id, relevance)
        report = summarize(scores, skipped=0, k=K, candidates=DEPTH)
        recall = sum(recalls) / len(recalls) if recalls else None
        rows.append(
            [
                label,
                *(
                    [
                        fmt(report.precision_at_5),
                        fmt(report.precision_at_10),
                        fmt(report.ndcg_at_10),
                        fmt(report.mrr),
                        fmt(recall),
                    ]
                    if labelled
                    else ["-"] * 5
                ),
                fmt(report.same_category),
                fmt(report.near_duplicates),
                fmt(report.median_age_gap_days, 1),
            ]
        )
        print("  " + " | ".join(rows[-1]))
    columns = [
        "method",
        "P@5",
        "P@10",
        "nDCG@10",
        "MRR",
        "R@50",
        "same cat.",
        "near-dup.",
        "age gap (d)",
    ]
    what = SETS.get(name, "title + body")
    label_note = (
        f"{len(queries)} queries"
        + (
            f" (seeded sample, seed {seed})"
            if len(queries) < len(by_id) - 10
            else " (every labelled article)"
        )
        if labelled
        else f"{len(queries)} queries; no story labels, so only category share and duplicates"
    )
    return (
        f"### {name} ({len(articles):,} articles, {what}; {label_note})\n\n"
        + table(columns, rows)
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse-index",
        action="store_true",
        help="use indexes/bench-SET if it exists instead of building it",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.perf_counter()
    sections = [run_set(name, args.queries, args.seed, args.reuse_index) for name in args.sets]
    text = header("Quality", time.perf_counter() - started) + NOTES + "\n" + "\n".join(sections)
    print(text)
    if not args.no_write:
        write_section("quality", text)


NOTES = f"""
Lists of {K}; relevant = the other articles of the query's `story` (read by the benchmark only;
the engine is built with the field dropped). P@k, nDCG@10 and MRR over the list of {K}; R@50 is
the recall of each method's top {DEPTH} (for the engine: its candidate stage, the same FAISS
search as dense); same cat. = share of the list in the query's category; near-dup. = share of
the list whose normalised title equals the query's or an earlier item's; age gap = median days
between query and listed articles. Formulas: `recommender/evaluate.py`. On uci-news-2014-04 the
dates are crawl days and a story never spans two days (see ../shared/data/README.md), so
"weighting off" is the primary figure there and "defaults" flatters recency.
"""

if __name__ == "__main__":
    main()
