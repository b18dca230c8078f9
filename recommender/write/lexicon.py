"""Fitting the TF-IDF lexicon on a build's articles (scikit-learn): the write path's part of
``lexical``. Queries weigh text with the stored lexicon and never import scikit-learn."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from ..errors import SettingsError
from ..lexical import (
    FULL_MIN_DF_FROM,
    Lexicon,
    TermVector,
    analyze,
    each_language,
    stop_words,
    words,
)

#: A language with no published stop-word list gets one from its own texts once the build
#: holds this many of them (fewer: one busy story would make its names "stop words").
DERIVED_STOP_WORDS_FROM = 300
#: ... the words in at least this share of that language's texts (measured with English as if
#: it had no list: ecbplus-dev TF-IDF nDCG@10 0.929 without stop words, 0.942 derived, 0.943
#: with scikit-learn's list; uci-news-2014-04 headlines 0.768, 0.775, 0.779).
DERIVED_STOP_SHARE = 0.1


def fit(
    texts: Sequence[str],
    ngrams: int,
    min_df: int,
    *,
    languages: Sequence[str | None] | None = None,
) -> tuple[Lexicon, list[TermVector]]:
    """Fit the lexicon on a build's texts; their vectors. Terms in fewer than ``min_df`` texts
    are left out (rare terms mostly add noise), except in builds of fewer than
    ``FULL_MIN_DF_FROM`` texts, too few to tell a rare term from a telling one.
    ``languages``: each text's language, for its stop words (None: unknown, the default)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    chosen = each_language(texts, languages)
    derived = derived_stop_words(texts, chosen)

    def analyze_doc(doc: tuple[str, str | None]) -> list[str]:
        found = analyze(doc[0], doc[1], ngrams)
        if not derived:
            return found
        return [term for term in found if derived.isdisjoint(term.split(" "))]

    vectorizer = TfidfVectorizer(
        analyzer=analyze_doc,
        min_df=min_df if len(texts) >= FULL_MIN_DF_FROM else 1,
        sublinear_tf=True,
        dtype=np.float32,
    )
    try:
        matrix = vectorizer.fit_transform(list(zip(texts, chosen, strict=True))).tocsr()
    except ValueError as exc:
        if "max_df corresponds to" in str(exc):  # min_df above the number of texts
            raise SettingsError(
                f"lexical_min_df {min_df} is more than the {len(texts)} articles"
            ) from None
        # No term at all (empty or stop-word-only texts, or none left by min_df).
        return Lexicon((), np.empty(0, np.float64), ngrams), [TermVector.empty() for _ in texts]
    matrix.sort_indices()
    lexicon = Lexicon(
        tuple(vectorizer.get_feature_names_out().tolist()),
        np.asarray(vectorizer.idf_, dtype=np.float64),
        ngrams,
    )
    vectors = [
        TermVector(
            matrix.indices[start:end].astype(np.int32), matrix.data[start:end].astype(np.float32)
        )
        for start, end in zip(matrix.indptr[:-1], matrix.indptr[1:], strict=True)
    ]
    return lexicon, vectors


def derived_stop_words(texts: Sequence[str], languages: Sequence[str | None]) -> frozenset[str]:
    """The stop words of the languages without a published list (``lexical.stop_words`` has
    none for them), from the build's own texts: the words in at least ``DERIVED_STOP_SHARE`` of
    a language's texts, for a language with ``DERIVED_STOP_WORDS_FROM`` texts or more.

    They are left out of the lexicon, with every n-gram holding one, for every language alike
    (a lexicon is shared): a term the lexicon lacks counts in no vector, so a text added later
    or a draft is weighed as the build's texts were, with nothing more stored."""
    by_language: dict[str, list[int]] = defaultdict(list)
    for i, language in enumerate(languages):
        if language is not None and not stop_words(language):
            by_language[language].append(i)
    found: set[str] = set()
    for language, members in by_language.items():
        if len(members) < DERIVED_STOP_WORDS_FROM:
            continue
        counts: Counter[str] = Counter()
        for i in members:
            counts.update(set(words(texts[i], language)))
        found.update(word for word, n in counts.items() if n >= DERIVED_STOP_SHARE * len(members))
    return frozenset(found)
