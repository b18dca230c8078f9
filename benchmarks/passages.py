"""Long articles: one vector of the title and the first ~1000 characters (the engine's) beside
vectors built from passages that cover the whole body, on ecbplus-dev.

all-MiniLM-L6-v2 reads at most 256 word pieces, so the engine embeds
``embedding_text(title, body, 1000)`` and never sees the rest of a long body. Each variant
below gives every article a representation; the related list of an article is the 10 others
most similar to it (itself left out), scored against the `story` labels with
recommender.quality.evaluate.score_list, leave-one-out over every labelled article:

- title + first 1000 chars: the engine's vector;
- mean of passages: the body cut at word boundaries into passages of about N characters, the
  first one after the title (exactly ``embedding_text(title, body, N)``), the others body only;
  unit vectors averaged, then renormalised;
- mean of passages, first counted twice: the same with the title passage weighted 2;
- max over passages: similarity = the largest cosine between any passage of one article and
  any passage of the other (no single vector);
- title + first N chars (N other than 1000): the first passage alone, as a control.

Each is scored alone (dense) and fused with TF-IDF as the engine fuses long queries:
``0.3 * dense + 0.7 * tfidf``, tfidf = recommender.lexical.fit(title + whole body, ngrams=2,
min_df=2) cosine (the fused similarity only: no neighbour term, copy grouping or weighting).

Usage: python benchmarks/passages.py [--passage-chars 1000 600] [--bootstrap 2000] [--no-write]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from common import dataset, header, table, write_section

from recommender.articles import Article, read_articles
from recommender.embedding.encode import SentenceTransformerEncoder, encode_all, unit_rows
from recommender.lexical import lexical_text, stack
from recommender.quality.evaluate import (
    choose_queries,
    labels_from_field,
    relevance_from_labels,
    score_list,
    summarize,
)
from recommender.text import clean_html, embedding_text
from recommender.write.lexicon import fit

SET = "ecbplus-dev"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ENGINE_CHARS = 1000  # Settings.max_body_chars
LEXICAL_WEIGHT = 0.7  # Settings.lexical_weight (queries of 20 TF-IDF terms or more)
K = 10


def split_body(body: str, chars: int) -> list[str]:
    """The body (whitespace already collapsed) in pieces of at most ``chars`` characters, cut
    at the last space within the limit, as ``embedding_text`` cuts its single piece."""
    pieces = []
    while len(body) > chars:
        space = body.rfind(" ", 0, chars + 1)
        cut = space if space > chars // 2 else chars
        pieces.append(body[:cut])
        body = body[cut:].lstrip()
    if body:
        pieces.append(body)
    return pieces


def passages(title: str, body: str, chars: int) -> list[str]:
    """Title + first passage, then the following passages of the body."""
    body = " ".join(body.split())
    if not body:
        return [title]
    pieces = split_body(body, chars)
    first = embedding_text(title, pieces[0], chars)
    return [first, *pieces[1:]]


@dataclass
class Encoded:
    """Every passage of every article at one passage size, row ``starts[i]`` the first of i."""

    chars: int
    vectors: np.ndarray
    starts: np.ndarray
    seconds: float

    @property
    def texts(self) -> int:
        return len(self.vectors)

    def mean(self, first_weight: float = 1.0) -> np.ndarray:
        summed = np.add.reduceat(self.vectors, self.starts, axis=0)
        summed += (first_weight - 1.0) * self.vectors[self.starts]
        return unit_rows(summed)

    def first(self) -> np.ndarray:
        return np.ascontiguousarray(self.vectors[self.starts])

    def max_similarity(self) -> np.ndarray:
        pairs = self.vectors @ self.vectors.T
        by_row = np.maximum.reduceat(pairs, self.starts, axis=0)
        return np.maximum.reduceat(by_row, self.starts, axis=1)


def encode_timed(
    encoder: SentenceTransformerEncoder, texts: Sequence[str]
) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    vectors = encode_all(encoder, texts)
    return vectors, time.perf_counter() - started


def encode_passages(
    encoder: SentenceTransformerEncoder, titles: list[str], bodies: list[str], chars: int
) -> Encoded:
    texts: list[str] = []
    starts = []
    for title, body in zip(titles, bodies, strict=True):
        starts.append(len(texts))
        texts.extend(passages(title, body, chars))
    vectors, seconds = encode_timed(encoder, texts)
    return Encoded(chars, vectors, np.array(starts, dtype=np.int64), seconds)


@dataclass
class Scored:
    """Mean nDCG@10 and P@5 (recommender.quality.evaluate.summarize) and nDCG@10 per query."""

    ndcg: float
    p5: float
    per_query: np.ndarray


def score(
    similarity: np.ndarray,
    articles: list[Article],
    queries: list[int],
    relevant: list[frozenset[str]],
) -> Scored:
    """Each query's list of K most similar others (ties by row), scored against its story."""
    rows = np.arange(len(articles))
    lists = []
    for row, rel in zip(queries, relevant, strict=True):
        line = similarity[row].astype(np.float64, copy=True)
        line[row] = -np.inf
        best = np.lexsort((rows, -line))[:K]
        lists.append(score_list(articles[row], [articles[i] for i in best], rel))
    report = summarize(lists, skipped=0, k=K, candidates=len(articles) - 1)
    per_query = np.array([s.ndcg_at_10 for s in lists])
    return Scored(report.ndcg_at_10, report.precision_at_5, per_query)


def delta(
    values: np.ndarray, base: np.ndarray, rng_seed: int, draws: int, subset: np.ndarray
) -> str:
    """Mean difference over the subset of queries with a seeded bootstrap 95% interval."""
    diff = (values - base)[subset]
    rng = np.random.default_rng(rng_seed)
    means = diff[rng.integers(0, len(diff), size=(draws, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    wins, losses = int((diff > 1e-12).sum()), int((diff < -1e-12).sum())
    return f"{diff.mean():+.3f} [{low:+.3f}, {high:+.3f}] {wins}/{losses}"


def baseline_or(text: str, first_row: bool) -> str:
    return "(baseline)" if first_row else text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--passage-chars",
        type=int,
        nargs="+",
        default=[1000, 600],
        metavar="N",
        help="passage sizes in characters (default: 1000 600)",
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap draws (seed 0)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if any(n < 100 for n in args.passage_chars):
        parser.error("--passage-chars: passages of fewer than 100 characters make no sense")
    started = time.perf_counter()

    path = dataset(SET)
    articles = read_articles([path], drop_fields=["story"]).articles
    by_id = {a.id: i for i, a in enumerate(articles)}
    relevance = relevance_from_labels(labels_from_field([path], "story"))
    chosen, skipped = choose_queries(relevance, by_id.__contains__, None, 0)
    queries = [by_id[q] for q in chosen]
    relevant = [frozenset(r for r in relevance[q] if r in by_id) for q in chosen]
    titles = [a.title for a in articles]
    bodies = [clean_html(a.body) for a in articles]
    lengths = np.array([len(" ".join(b.split())) for b in bodies])
    long_queries = lengths[queries] > ENGINE_CHARS
    print(
        f"{SET}: {len(articles)} articles, {len(queries)} queries ({skipped} labelled left out), "
        f"{int(long_queries.sum())} with a body over {ENGINE_CHARS} chars"
    )

    lexicon, term_vectors = fit(
        [lexical_text(t, b) for t, b in zip(titles, bodies, strict=True)], 2, 2
    )
    tfidf_matrix = stack(term_vectors, len(lexicon.terms))
    tfidf = np.asarray((tfidf_matrix @ tfidf_matrix.T).toarray(), dtype=np.float32)

    encoder = SentenceTransformerEncoder(MODEL)
    encoder.encode(["warm-up: load the model before timing"])

    engine_texts = [embedding_text(t, b, ENGINE_CHARS) for t, b in zip(titles, bodies, strict=True)]
    engine_vectors, engine_seconds = encode_timed(encoder, engine_texts)
    print(f"  engine texts: {len(engine_texts)} embedded in {engine_seconds:.1f} s")

    # (label, texts embedded, passages per article, embedding seconds, similarity)
    variants: list[tuple[str, int, float, float, np.ndarray]] = [
        (
            f"title + first {ENGINE_CHARS} chars (engine)",
            len(engine_texts),
            1.0,
            engine_seconds,
            engine_vectors @ engine_vectors.T,
        )
    ]
    for chars in args.passage_chars:
        encoded = encode_passages(encoder, titles, bodies, chars)
        if chars == ENGINE_CHARS:  # the first passage is the engine's text, vector for vector
            assert np.allclose(encoded.first(), engine_vectors, atol=1e-3)
        per = encoded.texts / len(articles)
        print(f"  passages of ~{chars} chars: {encoded.texts} embedded in {encoded.seconds:.1f} s")
        cost = (encoded.texts, per, encoded.seconds)
        if chars != ENGINE_CHARS:
            first = encoded.first()
            variants.append(
                (f"title + first {chars} chars", len(articles), 1.0, 0.0, first @ first.T)
            )
        mean = encoded.mean()
        twice = encoded.mean(first_weight=2.0)
        variants += [
            (f"mean of passages ({chars})", *cost, mean @ mean.T),
            (f"mean of passages ({chars}), first counted twice", *cost, twice @ twice.T),
            (f"max over passages ({chars})", *cost, encoded.max_similarity()),
        ]

    tfidf_scored = score(tfidf, articles, queries, relevant)
    rows, long_rows = [], []
    base: tuple[Scored, Scored] | None = None
    everyone = np.ones(len(queries), dtype=bool)
    for label, texts, per, seconds, similarity in variants:
        dense = score(similarity, articles, queries, relevant)
        fused = score(
            (1 - LEXICAL_WEIGHT) * similarity + LEXICAL_WEIGHT * tfidf, articles, queries, relevant
        )
        first_row = base is None
        base = base or (dense, fused)
        cost_text = [f"{texts:,}", f"{per:.2f}", f"{seconds:.1f}" if seconds else "(shared)"]
        rows.append(
            [
                label,
                *cost_text,
                f"{dense.ndcg:.3f}",
                f"{dense.p5:.3f}",
                baseline_or(
                    delta(dense.per_query, base[0].per_query, 0, args.bootstrap, everyone),
                    first_row,
                ),
                f"{fused.ndcg:.3f}",
                f"{fused.p5:.3f}",
                baseline_or(
                    delta(fused.per_query, base[1].per_query, 0, args.bootstrap, everyone),
                    first_row,
                ),
            ]
        )
        long_rows.append(
            [
                label,
                f"{dense.per_query[long_queries].mean():.3f}",
                baseline_or(
                    delta(dense.per_query, base[0].per_query, 0, args.bootstrap, long_queries),
                    first_row,
                ),
                f"{fused.per_query[long_queries].mean():.3f}",
                baseline_or(
                    delta(fused.per_query, base[1].per_query, 0, args.bootstrap, long_queries),
                    first_row,
                ),
            ]
        )
        print("  " + " | ".join(rows[-1]))

    rows.append(
        [
            "TF-IDF alone (reference)",
            "-",
            "-",
            "-",
            f"{tfidf_scored.ndcg:.3f}",
            f"{tfidf_scored.p5:.3f}",
            "-",
            "-",
            "-",
            "-",
        ]
    )
    columns = [
        "document vector",
        "texts embedded",
        "texts/article",
        "embed s",
        "nDCG@10 alone",
        "P@5 alone",
        "Δ nDCG@10 alone [95% CI] better/worse",
        "nDCG@10 fused",
        "P@5 fused",
        "Δ nDCG@10 fused [95% CI] better/worse",
    ]
    long_columns = [
        "document vector",
        "nDCG@10 alone",
        "Δ alone [95% CI] better/worse",
        "nDCG@10 fused",
        "Δ fused [95% CI] better/worse",
    ]
    notes = NOTES.format(
        articles=len(articles),
        queries=len(queries),
        long=int(long_queries.sum()),
        chars=ENGINE_CHARS,
        draws=args.bootstrap,
        dense=1 - LEXICAL_WEIGHT,
        lexical=LEXICAL_WEIGHT,
    )
    text = (
        header("Passages (long articles)", time.perf_counter() - started)
        + notes
        + "\n"
        + table(columns, rows)
        + f"\n\nThe {int(long_queries.sum())} queries whose body is over {ENGINE_CHARS} "
        + "characters, part of which the engine's vector never sees:\n\n"
        + table(long_columns, long_rows)
        + "\n"
    )
    print()
    print(text)
    if not args.no_write:
        write_section("passages", text)


NOTES = """
Does embedding the whole of a long body help? all-MiniLM-L6-v2 reads at most 256 word pieces,
so the engine's vector (title + first {chars} characters) never sees the rest of a long body.
Here each article also gets vectors of its passages (title + first passage, then the body in
passages of about N characters cut at word boundaries), combined as a renormalised mean, a mean
with the title passage counted twice, or a max over passage pairs. {articles} articles,
leave-one-out over all {queries} labelled articles, lists of 10 by similarity (the query left
out), relevant = the other articles of its `story`; metrics from `recommender/evaluate.py`.
Fused = {dense:.1f} * dense + {lexical:.1f} * TF-IDF cosine (the engine's TF-IDF: title + whole
body, 1-2 grams, min_df 2), the engine's fused similarity for long queries without its
neighbour term or copy grouping. Δ = mean per-query difference from the engine's vector in the
same column (dense or fused), seeded bootstrap 95% interval over queries ({draws} draws), and
the number of queries better / worse. Embedding seconds are one encode of all the texts on
this machine, model loaded (other processes may share the CPU); the mean and max rows of one
passage size share one encode, and "title + first N chars" (shared) is its first passages.
"""

if __name__ == "__main__":
    main()
