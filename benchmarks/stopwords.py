"""Stop words derived from an index's own texts, for the languages no published list covers.

English text is fitted three ways with the shipped code (``write.lexicon.fit``): labelled
English (scikit-learn's list), labelled as a language with no list (Kazakh's code: the words in
10% or more of its texts are derived as stop words, ``derived_stop_words``), and the same with
the derivation off (no stop words at all). Each article's TF-IDF nearest neighbours alone are
scored, leave-one-out, nDCG@10 against the `story` field (read by the benchmark only): how
much the derived list gives back of what a published one is worth.

Sets: ecbplus-dev (496 full-text articles) and a seeded sample of --stories stories of
uci-news-2014-04 (headlines); the sample is topic-dense (every story keeps all its articles),
which makes story words look frequent: a harder test of the rule than a whole archive.

Usage: python benchmarks/stopwords.py [--stories 150] [--seed 0] [--no-write]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from common import dataset, header, table, write_section
from scipy import sparse

from recommender.lexical import TermVector, lexical_text
from recommender.write import lexicon

#: A language code stopwordsiso has no list for.
LISTLESS = "kk"


@contextmanager
def no_derivation() -> Iterator[None]:
    real = lexicon.DERIVED_STOP_WORDS_FROM
    lexicon.DERIVED_STOP_WORDS_FROM = 10**12
    try:
        yield
    finally:
        lexicon.DERIVED_STOP_WORDS_FROM = real


def ndcg_at_10(vectors: list[TermVector], stories: list[str]) -> float:
    width = max((int(v.terms.max()) + 1 for v in vectors if v.terms.size), default=1)
    counts = [v.terms.size for v in vectors]
    matrix = sparse.csr_matrix(
        (
            np.concatenate([v.weights for v in vectors]),
            np.concatenate([v.terms for v in vectors]),
            np.concatenate([[0], np.cumsum(counts)]),
        ),
        shape=(len(vectors), width),
    )
    similarity = (matrix @ matrix.T).toarray()
    np.fill_diagonal(similarity, -1.0)
    members: dict[str, set[int]] = defaultdict(set)
    for i, story in enumerate(stories):
        members[story].add(i)
    found = []
    for i, story in enumerate(stories):
        relevant = members[story] - {i}
        if not relevant:
            continue
        top = np.argsort(-similarity[i], kind="stable")[:10]
        dcg = sum(1 / math.log2(r + 2) for r, j in enumerate(top) if int(j) in relevant)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(10, len(relevant))))
        found.append(dcg / ideal)
    return sum(found) / len(found)


def load(name: str, stories_wanted: int | None, seed: int) -> tuple[list[str], list[str]]:
    with gzip.open(dataset(name), "rt") as lines:
        rows = [json.loads(line) for line in lines]
    if stories_wanted:
        names = sorted({row["story"] for row in rows})
        random.Random(seed).shuffle(names)
        kept = set(names[:stories_wanted])
        rows = [row for row in rows if row["story"] in kept]
    texts = [lexical_text(row["title"] or "", row.get("body") or "") for row in rows]
    return texts, [row["story"] for row in rows]


def run_set(name: str, stories_wanted: int | None, seed: int) -> list[str]:
    texts, stories = load(name, stories_wanted, seed)
    count = len(texts)
    derived = lexicon.derived_stop_words(texts, [LISTLESS] * count)
    figures = {}
    for label, language in (("published list", "en"), ("derived", LISTLESS), ("none", None)):
        if language is None:
            with no_derivation():
                _, vectors = lexicon.fit(texts, 2, 2, languages=[LISTLESS] * count)
        else:
            _, vectors = lexicon.fit(texts, 2, 2, languages=[language] * count)
        figures[label] = ndcg_at_10(vectors, stories)
        print(f"  {name} {label}: {figures[label]:.4f}", flush=True)
    return [
        f"{name} ({count} articles)",
        f"{figures['none']:.4f}",
        f"{figures['derived']:.4f} ({len(derived)} words)",
        f"{figures['published list']:.4f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stories", type=int, default=150, help="uci-news-2014-04 stories")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = [
        run_set("ecbplus-dev", None, args.seed),
        run_set("uci-news-2014-04", args.stories, args.seed),
    ]
    columns = ["set", "no stop words", "derived from the texts", "scikit-learn's English list"]
    text = (
        header("Stop words derived for languages without a list", time.perf_counter() - started)
        + "\nTF-IDF nearest neighbours alone (unigrams and bigrams, min_df 2), leave-one-out "
        "nDCG@10 against `story`; English text labelled as a language with no list for the "
        "derived column (the words in 10% or more of the texts; "
        "`recommender/write/lexicon.py`).\n\n" + table(columns, rows) + "\n"
    )
    print(text)
    if not args.no_write:
        write_section("stopwords", text)


if __name__ == "__main__":
    main()
