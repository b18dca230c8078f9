"""Relevance of the related lists on story-labelled news, beside the alternatives, in one run.

For each set in ../shared/data, every method answers the same queries and is scored by the same
code (recommender.quality.evaluate.score_list):

- tfidf:   TF-IDF cosine over title + whole body (scikit-learn), the "more like this" stand-in;
- bm25:    BM25 over the same text (bm25s), the article's text as the query;
- dense:   cosine over the engine's own vectors, nearest first, no reranking or duplicate removal;
- engine, embedding only: the engine before hybrid ranking (lexical weights 0, no neighbour
  term), weighting off; copies are still collapsed;
- engine, weighting off: recommender as shipped with half_life_days=None, category_boost=0;
- engine, weighting off, diversity: the same with mmr_lambda=0.8;
- engine, previous defaults: half-life 7 days, recency weight 0.1, raw similarities (the
  shipped ranking until calibration and the 1-day half-life).
- engine, defaults: recommender as shipped (recency and category weighting on).

Usage: python benchmarks/quality.py [--sets ecbplus-dev uci-news-2014-04 bbc-news]
       [--queries 2000] [--seed 0] [--reuse-index] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from common import INDEXES, dataset, header, table, write_section

from recommender import Article, Ranking, Recommender, RecommenderError, Settings
from recommender.articles import read_articles
from recommender.lexical import rows_matrix
from recommender.quality.evaluate import (
    ListScores,
    choose_queries,
    labels_from_field,
    relevance_from_labels,
    score_list,
    summarize,
)
from recommender.read.retrieve import retrieve_parts

K = 10
DEPTH = 50  # list depth for recall@50
SETS = {
    # name: (what is embedded, queries: None = all)
    "ecbplus-dev": "title + body",
    "uci-news-2014-04": "headline",
    "bbc-news": "title + body",
}
#: The shipped ranking before calibration and the 1-day half-life (for before/after rows).
PREVIOUS = Ranking(half_life_days=7.0, recency_weight=0.1, calibration="none")
WEIGHTING_OFF = {"half_life_days": None, "category_boost": 0.0}
EMBEDDING_ONLY = {"lexical_weight": 0.0, "lexical_weight_short": 0.0, "neighbour_weight": 0.0}

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
    """The index of a set, built with the default settings (a build reuses the embeddings of
    the index it replaces, so a rebuild is quick); with ``reuse``, an index there as it is."""
    index = INDEXES / f"bench-{name}"
    if reuse:
        try:
            opened = Recommender.open(index)
            print(f"  reusing {index}")
            return opened
        except RecommenderError as exc:
            print(f"  cannot reuse {index} ({exc}); building it")
    started = time.perf_counter()
    report = Recommender.build_from_files([path], index, drop_fields=["story"], settings=Settings())
    print(
        f"  built {index}: {report.articles} articles ({report.reused} embeddings reused) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return Recommender.open(index)


def score(
    queries: list[str],
    lists: Lists,
    deep: Lists,
    by_id: dict[str, Article],
    relevance: dict[str, frozenset[str]],
    copies_once: CopiesOnce,
) -> tuple[list[ListScores], list[float], list[float]]:
    """Each query's list scores, the recall of ``deep`` (its top DEPTH), and the nDCG@10 with
    copies counted once."""
    scores, recalls, once = [], [], []
    for query in queries:
        relevant = relevance.get(query, frozenset())
        listed = lists(query)[:K]
        scores.append(score_list(by_id[query], [by_id[i] for i in listed], relevant))
        if relevant:
            recalls.append(len(relevant.intersection(deep(query)[:DEPTH])) / len(relevant))
            once.append(copies_once.ndcg(query, listed, relevant))
    return scores, recalls, once


class CopiesOnce:
    """nDCG@10 with copies counted once, the same for every method.

    Copies by the engine's rule (same normalised title, same url, or TF-IDF cosine of the
    index's vectors >= its duplicate_threshold). For a query q, the relevant units are the
    groups of copies (connected) among its relevant articles, leaving out copies of q itself
    (they are the article being read). A listed article is a hit when it is relevant, not a
    copy of q, and no copy of it was a hit higher up; the ideal is min(units, 10) hits.
    """

    def __init__(self, rec: Recommender) -> None:
        self.snapshot = rec.snapshot
        self.threshold = rec.settings.ranking.duplicate_threshold

    def _copies(self, ids: list[str]) -> np.ndarray:
        columns = self.snapshot.columns
        rows = np.array([columns.row_of[i] for i in ids], dtype=np.int64)
        terms = rows_matrix(self.snapshot.lexical, rows).tocsr()
        same = np.asarray((terms @ terms.T).toarray()) >= self.threshold
        for codes in (columns.title_codes[rows], columns.url_codes[rows]):
            same |= (codes[:, None] == codes[None, :]) & (codes[:, None] >= 0)
        return same  # type: ignore[no-any-return]

    def ndcg(self, query: str, listed: list[str], relevant: frozenset[str]) -> float:
        members = [query, *sorted(relevant), *[i for i in listed if i not in relevant]]
        members = list(dict.fromkeys(members))
        where = {article_id: n for n, article_id in enumerate(members)}
        copies = self._copies(members)
        unit = np.arange(len(members))  # connected groups of copies, by repeated relabelling
        for _ in range(len(members)):
            merged = np.array([unit[np.flatnonzero(row)].min() for row in copies])
            if (merged == unit).all():
                break
            unit = merged
        of_query = unit == unit[0]
        units = {int(unit[where[r]]) for r in relevant if not of_query[where[r]]}
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(units), K)))
        seen: set[int] = set()
        dcg = 0.0
        for place, article_id in enumerate(listed[:K]):
            n = where[article_id]
            if article_id in relevant and not of_query[n] and int(unit[n]) not in seen:
                seen.add(int(unit[n]))
                dcg += 1.0 / math.log2(place + 2)
        return dcg / ideal if ideal else 0.0


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

    snapshot = rec.snapshot  # the stored vectors, searched as plain vector search does

    def dense(query: str) -> list[str]:
        row = snapshot.columns.row_of[query]
        found = retrieve_parts(snapshot.parts, snapshot.vector(row), DEPTH, drop={row})
        return [snapshot.columns.ids[int(r)] for r in found.rows]

    def pool(query: str) -> list[str]:
        return [i for i, _ in rec.candidates(query, k=DEPTH)][:DEPTH]

    def engine_lists(**options: object) -> Lists:
        def lists(query: str) -> list[str]:
            return [item.id for item in rec.similar(query, k=K, **options)]

        return lists

    copies_once = CopiesOnce(rec)
    tfidf = tfidf_lists(articles, queries)
    bm25 = bm25_lists(articles, queries)
    # (label, the list of K, the list whose top DEPTH gives R@50)
    methods: list[tuple[str, Lists, Lists]] = [
        ("TF-IDF cosine", tfidf.__getitem__, tfidf.__getitem__),
        ("BM25 (bm25s)", bm25.__getitem__, bm25.__getitem__),
        ("dense cosine only (all-MiniLM-L6-v2)", dense, dense),
        (
            "engine, embedding only, weighting off",
            engine_lists(**EMBEDDING_ONLY, **WEIGHTING_OFF),
            dense,
        ),
        ("engine, weighting off", engine_lists(**WEIGHTING_OFF), pool),
        (
            "engine, weighting off, diversity 0.8",
            engine_lists(mmr_lambda=0.8, **WEIGHTING_OFF),
            pool,
        ),
        ("engine, previous defaults (7 d, 0.1, raw)", engine_lists(ranking=PREVIOUS), pool),
        ("engine, defaults", engine_lists(ranking=Ranking()), pool),
    ]
    rows = []
    for label, lists, deep in methods:
        scores, recalls, once = score(queries, lists, deep, by_id, relevance, copies_once)
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
                        fmt(sum(once) / len(once) if once else None),
                        fmt(report.mrr),
                        fmt(recall),
                    ]
                    if labelled
                    else ["-"] * 6
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
        "nDCG@10, copies once",
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
the recall of each method's top {DEPTH} (for the engine: the {DEPTH} most similar of its
candidates, the embedding's nearest and the TF-IDF's best together; for "embedding only" the
same FAISS search as dense); same cat. = share of the list in the query's category; near-dup. =
share of the list whose normalised title equals the query's or an earlier item's (the engine
lists a group of copies once, as one item, so a group counts once here and in P@k and nDCG: it
is a hit when the copy shown is relevant); age gap = median days between query and listed
articles. Formulas: `recommender/evaluate.py`. "nDCG@10, copies once" counts copies of one
article once, for every method alike: the relevant units are the groups of copies among the
relevant articles (the engine's copy rule: same normalised title, same url, or TF-IDF cosine >=
0.9), copies of the query itself are not relevant (they are the article being read), a listed
article is a hit only if no copy of it was a hit above, and the ideal is min(units, 10) hits.
On uci-news-2014-04 the dates are crawl days and a story never spans two days (see
../shared/data/README.md), so "weighting off" is the primary figure there and "defaults"
flatters recency.
"""

if __name__ == "__main__":
    main()
