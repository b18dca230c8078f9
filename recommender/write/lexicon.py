"""Fitting the TF-IDF lexicon on a build's articles (scikit-learn): the write path's part of
``lexical``. Queries weigh text with the stored lexicon and never import scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import SettingsError
from ..lexical import FULL_MIN_DF_FROM, Lexicon, TermVector, analyze, each_language


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

    def analyze_doc(doc: tuple[str, str | None]) -> list[str]:
        return analyze(doc[0], doc[1], ngrams)

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
