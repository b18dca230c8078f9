"""Which words of a build are names: the identity side of an article (who, where, which figures).

Two articles of the same kind of event (two earthquakes, two elections) share the vocabulary of
the event; two articles of the same story share its names: the places, people and organisations
and the figures. Names are found without a per-language model, from the case the build's own
texts write each word in (``proper_terms``): a word of the lexicon is a name when, where its
case says something (not at the start of a sentence, not in a Title Case headline), it is
capitalised at least ``PROPER_RATIO`` times as often as it is written in lower case. Numbers of
two or more digits are names too (figures, years, dates). Scripts without case (Chinese, Arabic,
Hebrew, Thai...) have numbers only. Capitals are read before lower-casing as ``lexical.lower``
does, so the Turkish dotted İ of İstanbul counts as a capital of ``istanbul``.

What is stored is the lexicon ids of the name terms (unigrams only), and which of them are
figures, once per build; an article's names are then its TF-IDF vector restricted to them, its
words and its figures each of length 1 (``names_of``, ``rows_names``): the identity of two
articles is the cosine of their word names plus the cosine of their figures (0 to 2), so that
a shared date or toll counts beside the shared places rather than drowned among them. Articles
added later and drafts have names with nothing more stored. An
index built before names has none: identity counts 0 there.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

from .lexical import UNSPACED, Lexicon, SparseRows, TermVector, each_language, lower

#: A word is a name when capitalised at least this many times as often as in lower case
#: (where its case says something).
PROPER_RATIO = 4.0
#: ... and capitalised at least this many times.
PROPER_MIN = 1
#: A line (a headline) whose cased words are capitalised at this share or more is in Title
#: Case (or all capitals): its capitals say nothing.
TITLE_CASE_SHARE = 0.6
#: ... counted from this many cased words on (a two-word line says too little).
TITLE_CASE_MIN_WORDS = 3

#: Words as ``lexical.words`` finds them, kept in their case (unspaced scripts have none).
_WORD = re.compile(f"[^\\W{UNSPACED}]{{2,}}")
#: Where a sentence starts: the text's start, a line's start, or after an end mark (with
#: closing quotes or brackets) and a space.
_SENTENCE = re.compile(
    '(?:^|\n|[.!?:;\u2026]["\'\u201d\u2019\u00bb)\\]]*\\s+|["\u201c\u00ab]\\s*)', re.MULTILINE
)


def case_counts(
    texts: Sequence[str], languages: Sequence[str | None] | None, index: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """For each term of ``index`` (a lexicon's term -> id): how often the texts write it
    capitalised where that says something, and how often in lower case (anywhere)."""
    size = max(index.values(), default=-1) + 1
    capitalised = np.zeros(size, dtype=np.int64)
    lowered = np.zeros(size, dtype=np.int64)
    for text, language in zip(texts, each_language(texts, languages), strict=True):
        text = unicodedata.normalize("NFC", text)
        for line in text.split("\n"):
            found = list(_WORD.finditer(line))
            cased = [m.group() for m in found if m.group()[0].isupper() or m.group()[0].islower()]
            capitals = sum(word[0].isupper() for word in cased)
            title_case = len(cased) >= TITLE_CASE_MIN_WORDS and capitals >= TITLE_CASE_SHARE * len(
                cased
            )
            starts = {m.end() for m in _SENTENCE.finditer(line)}
            for match in found:
                word = match.group()
                term = index.get(lower(word, language))
                if term is None:
                    continue
                if word[0].islower():
                    lowered[term] += 1
                elif word[0].isupper() and not title_case and match.start() not in starts:
                    capitalised[term] += 1
    return capitalised, lowered


def proper_terms(
    lexicon: Lexicon, texts: Sequence[str], languages: Sequence[str | None] | None = None
) -> np.ndarray:
    """The lexicon ids (ascending, int32) of the build's names: its one-word terms written
    capitalised where case says something (``case_counts``) at least ``PROPER_MIN`` times and
    ``PROPER_RATIO`` times as often as in lower case, and its numbers of two or more digits.
    ``texts``: the build's lexical texts (``lexical.lexical_text``), in their case."""
    index = {term: i for term, i in lexicon.index.items() if " " not in term}
    capitalised, lowered = case_counts(texts, languages, index)
    found = [
        i
        for term, i in index.items()
        if (is_figure(term) and len(term) >= 2)
        or (capitalised[i] >= PROPER_MIN and capitalised[i] >= PROPER_RATIO * lowered[i])
    ]
    return np.array(sorted(found), dtype=np.int32)


#: Kinds of a lexicon term in a name mask (``kinds_of``).
NO_NAME, WORD, FIGURE = 0, 1, 2


def kinds_of(ids: np.ndarray, figures: np.ndarray, width: int) -> np.ndarray:
    """Each of a lexicon of ``width`` terms' kind (int8: ``NO_NAME``, ``WORD`` or ``FIGURE``)
    from the name terms' ids (``proper_terms``) and which of them are numbers; an empty array
    when there are none (an index built before names)."""
    ids = np.asarray(ids, dtype=np.int64)
    inside = (ids >= 0) & (ids < width)  # others are damage, which ``recommend check`` reports
    if not inside.any():
        return np.zeros(0, dtype=np.int8)
    kinds = np.zeros(width, dtype=np.int8)
    kinds[ids[inside]] = np.where(np.asarray(figures, bool)[inside], FIGURE, WORD)
    return kinds


def is_figure(term: str) -> bool:
    """A name term that is a number (``proper_terms`` keeps those of two digits or more)."""
    return term.isdigit()


def names_of(terms: TermVector, kinds: np.ndarray) -> TermVector:
    """An article's names: its TF-IDF vector restricted to the name terms (``kinds``), its
    words and its figures each of length 1, so that the dot product of two articles' names is
    the cosine of their word names plus the cosine of their figures (empty when it has none,
    or the index has no names)."""
    if not len(kinds) or not len(terms.terms):
        return TermVector.empty()
    found = rows_names(
        SparseRows(
            np.array([0, len(terms.terms)], dtype=np.int64),
            terms.terms,
            terms.weights,
            (1, len(kinds)),
        ),
        kinds,
    )
    return TermVector(found.indices, found.data)


def rows_names(matrix: SparseRows, kinds: np.ndarray) -> SparseRows:
    """``names_of`` each row of ``matrix`` (candidates' TF-IDF rows)."""
    count = int(matrix.shape[0])
    total = int(matrix.indptr[count])
    indices, data = matrix.indices[:total], matrix.data[:total]
    kind = kinds[indices] if len(kinds) else np.zeros(total, dtype=np.int8)
    keep = kind > 0
    lengths = np.diff(np.asarray(matrix.indptr, dtype=np.int64)).astype(np.int64)
    owners = np.repeat(np.arange(count), lengths)[keep]
    parts = owners * 3 + kind[keep]  # each row's words and figures are normalised apart
    weights = data[keep].astype(np.float64)
    norms = np.sqrt(np.bincount(parts, weights=weights * weights, minlength=3 * count))
    weights /= np.maximum(norms, 1e-12)[parts]
    indptr = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners, minlength=count), out=indptr[1:])
    return SparseRows(indptr, indices[keep], weights.astype(np.float32), matrix.shape)
