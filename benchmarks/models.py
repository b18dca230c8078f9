"""Which model, and which time weighting: the two offline models side by side.

For each labelled English set (ecbplus-dev whole; a seeded sample of whole uci-news-2014-04
stories, since the multilingual model embeds the 138k headlines in tens of minutes here), the
index is built with each model and scored (nDCG@10 with copies counted once, as in quality.py)
under four rankings: weighting off, the previous defaults (half-life 7 days, weight 0.1, raw
cosines), the defaults (half-life 1 day, weight 0.6, calibrated) and the defaults on raw cosines
(calibration off). Build speed is the whole build (model load, embedding, writing) in articles/s.

    python models.py [--sets ecbplus-dev uci-news-2014-04] [--uci-articles 5000] [--no-write]

Multilingual evidence (a held-out set of real headlines in nine languages with real times) is
not in ../shared/data; see the README's "Which model" for what it says.
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from collections import defaultdict

from common import INDEXES, dataset, header, table, write_section
from quality import PREVIOUS, WEIGHTING_OFF, CopiesOnce

from recommender import Article, Ranking, Recommender, Settings
from recommender.articles import read_articles
from recommender.quality.evaluate import choose_queries, labels_from_field, relevance_from_labels
from recommender.settings import ENGLISH_MODEL, MULTILINGUAL_MODEL

K = 10
MODELS = {"all-MiniLM-L6-v2": ENGLISH_MODEL, "multilingual-e5-small-q4": MULTILINGUAL_MODEL}
RANKINGS: dict[str, dict[str, object]] = {
    "weighting off": dict(WEIGHTING_OFF),
    "previous defaults (7 d, 0.1, raw)": {"ranking": PREVIOUS},
    "defaults (1 d, 0.6, calibrated)": {"ranking": Ranking()},
    "defaults, raw cosines": {"ranking": Ranking(calibration="none")},
}


def story_sample(
    articles: list[Article], labels: dict[str, str], wanted: int, seed: int
) -> list[Article]:
    """Whole stories, picked at random, until ``wanted`` articles are reached."""
    by_story: dict[str, list[Article]] = defaultdict(list)
    for article in articles:
        story = labels.get(article.id)
        if story is not None:
            by_story[story].append(article)
    stories = sorted(by_story)
    random.Random(seed).shuffle(stories)
    chosen: list[Article] = []
    for story in stories:
        if len(chosen) >= wanted:
            break
        chosen.extend(by_story[story])
    return sorted(chosen, key=lambda a: a.id)


def run_set(name: str, uci_articles: int, queries_wanted: int, seed: int) -> str:
    path = dataset(name)
    articles = read_articles([path], drop_fields=["story"]).articles
    labels = labels_from_field([path], "story")
    if len(articles) > uci_articles:
        articles = story_sample(articles, labels, uci_articles, seed)
    ids = {a.id for a in articles}
    relevance = {
        query: related & ids
        for query, related in relevance_from_labels(labels).items()
        if query in ids and related & ids
    }
    queries, _ = choose_queries(relevance, ids.__contains__, queries_wanted, seed)
    print(f"{name}: {len(articles):,} articles, {len(queries)} queries")
    rows = []
    for label, model in MODELS.items():
        index = INDEXES / f"bench-models-{name}-{label}"
        shutil.rmtree(index, ignore_errors=True)
        started = time.perf_counter()
        Recommender.build(articles, index, settings=Settings(model=model))
        seconds = time.perf_counter() - started
        row = [label, f"{seconds:.0f}", f"{len(articles) / seconds:.1f}"]
        with Recommender.open(index) as rec:
            copies_once = CopiesOnce(rec)
            for options in RANKINGS.values():
                once = [
                    copies_once.ndcg(
                        q, [r.id for r in rec.similar(q, k=K, **options)], relevance[q]
                    )
                    for q in queries
                ]
                row.append(f"{sum(once) / len(once):.3f}")
        shutil.rmtree(index, ignore_errors=True)
        rows.append(row)
        print("  " + " | ".join(row))
    columns = ["model", "build s", "articles/s", *(f"{r}: nDCG@10, copies once" for r in RANKINGS)]
    return f"### {name} ({len(articles):,} articles, {len(queries)} queries)\n\n" + table(
        columns, rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=["ecbplus-dev", "uci-news-2014-04"])
    parser.add_argument("--uci-articles", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.perf_counter()
    sections = [run_set(n, args.uci_articles, args.queries, args.seed) for n in args.sets]
    text = header("Models", time.perf_counter() - started) + NOTES + "\n" + "\n".join(sections)
    print(text)
    if not args.no_write:
        write_section("models", text)


NOTES = """
Each set built once per model (`Settings(model=...)`, everything else default), queried under
four rankings, nDCG@10 with copies counted once (quality.py's rule). uci-news-2014-04 is a
seeded sample of whole stories (fewer distractors than the full 138k set, so its figures sit
above quality.py's); its dates are crawl days and a story never spans two of them, so recency
is worth more there than on real news. ecbplus-dev is undated: its rankings differ by category
weight and calibration only. Build speed is measured on a shared 2-core machine: compare the
two models within one run, not across runs.
"""

if __name__ == "__main__":
    main()
