"""The lexical side of an article: TF-IDF over its cleaned title and body (``READ_CHARS`` of each).

Fitted with scikit-learn at build time (word unigrams and bigrams, stop words of the article's
language left out, ``1 + log(tf)`` term weights, smooth idf, vectors of length 1). What is
stored is plain data, no pickle: the lexicon (term, idf) and each article's nonzero terms as two
arrays. Articles added later are weighted with the lexicon of the build: a term it does not hold
counts only after the next build (which reuses every stored embedding, so it is quick).

Words (``words``, ``analyze``): the text in NFC, lower-cased (Turkish and Azerbaijani with
their own dotted and dotless i), runs of two or more letters or digits, as scikit-learn's word
analyzer finds them; letters of every alphabet (Cyrillic, Azerbaijani ə, ğ, ş...) stay as they
are. Scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer,
Burmese) are cut into overlapping character pairs, so that a headline is not one long term.
Stop words (``stop_words``): for English and articles of unknown language scikit-learn's English
list (as before languages were known), for Azerbaijani our own list of function words (none
is published in a package), for the others the list of their language in stopwordsiso (a
maintained package of the stopwords-iso lists, 58 languages), for Russian without the content
words it holds (москва, россия, год: ``stopwords_az_ru``); a language with no list gets one
derived from the build's own texts (``write.lexicon.derived_stop_words``).

Searching is an inverted index (a column-compressed matrix, one column per term): the query's
strongest terms pick the articles that share them, as "more like this" does.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import numpy as np

from .text import READ_CHARS, clean_html

#: Builds with fewer texts keep every term (see ``fit``).
FULL_MIN_DF_FROM = 100

#: Query terms that pick lexical candidates (the strongest by weight); all count in scores.
QUERY_TERMS = 32

#: Postings kept per term for picking candidates: the rows where the term weighs most. A
#: frequent term's full list grows with the archive; capped, a query's cost does not (the
#: candidates' TF-IDF cosines are still computed exactly, from their rows).
POSTINGS_CAP = 1000


#: Scripts written without spaces between words (Thai, Lao, Burmese, Khmer, kana, CJK
#: ideographs and their iteration marks, half-width katakana): cut into character pairs.
UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3005-\u3007\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
)
#: A run of unspaced script, or a word: two or more letters or digits of other scripts.
_TOKEN = re.compile(f"([{UNSPACED}]+)|[^\\W{UNSPACED}]{{2,}}")

#: Languages whose lower case of I is the dotless i (and of the dotted capital, i).
DOTLESS_I = frozenset({"tr", "az"})


def lexical_text(title: str, body: str) -> str:
    """What TF-IDF reads: the title, then the cleaned body, each up to ``READ_CHARS``
    characters (a longer one is stored whole, but read no further)."""
    title = title[:READ_CHARS]
    body = " ".join(clean_html(body[:READ_CHARS]).split()) if body else ""
    return f"{title}\n{body}" if body else title


def lower(text: str, language: str | None = None) -> str:
    """``text`` in NFC and lower case; in Turkish and Azerbaijani I becomes the dotless i
    (U+0131), and in every language the dotted capital I (U+0130) becomes i (``str.lower``
    would give i and a combining dot, which splits the word)."""
    text = unicodedata.normalize("NFC", text)
    if language in DOTLESS_I:
        text = text.replace("I", "\u0131")
    return text.replace("\u0130", "i").lower()


def words(text: str, language: str | None = None) -> list[str]:
    """The words of ``text`` in order, lower-cased, stop words kept: runs of unspaced script
    as overlapping character pairs (a lone character as itself)."""
    out: list[str] = []
    for match in _TOKEN.finditer(lower(text, language)):
        run = match.group(1)
        if run is None:
            out.append(match.group())
        elif len(run) == 1:
            out.append(run)
        else:
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


@cache
def stop_words(language: str | None) -> frozenset[str]:
    """The stop words left out of an article in ``language``: scikit-learn's English list for
    English and unknown (``stopwords_en``), our own Azerbaijani list (``stopwords_az_ru``),
    stopwordsiso's list for the others (entries that are one word as ``words`` cuts them;
    Russian without its content words), none for a language it has no list of."""
    if language is None or language == "en":
        from .stopwords_en import ENGLISH_STOP_WORDS

        return ENGLISH_STOP_WORDS
    from .stopwords_az_ru import AZERBAIJANI, RUSSIAN_CONTENT_WORDS

    if language == "az":
        return AZERBAIJANI
    import stopwordsiso

    if not stopwordsiso.has_lang(language):
        return frozenset()
    found = set()
    for entry in stopwordsiso.stopwords(language):
        cut = words(entry, language)
        if len(cut) == 1:
            found.add(cut[0])
    if language == "ru":
        found -= RUSSIAN_CONTENT_WORDS
    return frozenset(found)


def kept_words(text: str, language: str | None) -> list[str]:
    """The words of a text in ``language`` (None: unknown) in order, stop words left out."""
    stop = stop_words(language)
    return [word for word in words(text, language) if word not in stop]


def analyze(text: str, language: str | None, ngrams: int) -> list[str]:
    """The TF-IDF terms of a text in ``language`` (None: unknown): its words without stop
    words, then the runs of 2 to ``ngrams`` of them, as scikit-learn's word n-grams."""
    return _terms(kept_words(text, language), ngrams)


def _terms(tokens: list[str], ngrams: int) -> list[str]:
    out = list(tokens)
    for n in range(2, min(ngrams, len(tokens)) + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def each_language(texts: Sequence[str], languages: Iterable[str | None] | None) -> list[str | None]:
    """One language per text (None, unknown, for all when ``languages`` is None)."""
    chosen: list[str | None] = list(languages) if languages is not None else [None] * len(texts)
    if len(chosen) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(chosen)} languages")
    return chosen


@dataclass(frozen=True)
class TermVector:
    """One article's nonzero TF-IDF weights: term ids ascending, float32 weights (norm 1)."""

    terms: np.ndarray
    weights: np.ndarray

    def to_blobs(self) -> tuple[bytes, bytes]:
        return self.terms.astype("<i4").tobytes(), self.weights.astype("<f4").tobytes()

    @classmethod
    def from_blobs(cls, terms: bytes, weights: bytes) -> TermVector:
        return cls(np.frombuffer(terms, dtype="<i4"), np.frombuffer(weights, dtype="<f4"))

    @classmethod
    def empty(cls) -> TermVector:
        return cls(np.empty(0, np.int32), np.empty(0, np.float32))


@dataclass(frozen=True)
class Lexicon:
    """The terms of a build and their idf; ``ngrams`` as fitted."""

    terms: tuple[str, ...]
    idf: np.ndarray
    ngrams: int

    @cached_property
    def index(self) -> Mapping[str, int]:
        return {term: i for i, term in enumerate(self.terms)}

    def vectorize(
        self, texts: Iterable[str], languages: Iterable[str | None] | None = None
    ) -> list[TermVector]:
        """TF-IDF vectors of new texts with this lexicon (as scikit-learn's ``transform``);
        ``languages``: each text's language (None: unknown, the default)."""
        texts = list(texts)
        chosen = each_language(texts, languages)
        return [
            self._vector(analyze(text, language, self.ngrams))
            for text, language in zip(texts, chosen, strict=True)
        ]

    def known_share(self, text: str, language: str | None = None) -> float:
        """The share of a text's words (stop words left out) that this lexicon holds as
        terms: how much of it TF-IDF can see (1.0 for a text without such words)."""
        return self._share(kept_words(text, language))

    def vector_and_share(self, text: str, language: str | None = None) -> tuple[TermVector, float]:
        """``vectorize`` and ``known_share`` of one text, its words cut once for both (a
        draft's query)."""
        tokens = kept_words(text, language)
        return self._vector(_terms(tokens, self.ngrams)), self._share(tokens)

    def _share(self, tokens: list[str]) -> float:
        if not tokens:
            return 1.0
        index = self.index
        return sum(word in index for word in tokens) / len(tokens)

    def _vector(self, analyzed: list[str]) -> TermVector:
        index = self.index
        counts = Counter(index[t] for t in analyzed if t in index)
        if not counts:
            return TermVector.empty()
        terms = np.fromiter(sorted(counts), dtype=np.int32, count=len(counts))
        tf = np.array([1.0 + math.log(counts[int(t)]) for t in terms])
        weights = tf * self.idf[terms]
        weights /= np.linalg.norm(weights)
        return TermVector(terms, weights.astype(np.float32))


def stack(vectors: Sequence[TermVector], width: int) -> Any:
    """A CSR matrix (one row per vector) of ``width`` columns."""
    from scipy import sparse

    lengths = np.fromiter((len(v.terms) for v in vectors), dtype=np.int64, count=len(vectors))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    if len(vectors) and indptr[-1]:
        indices = np.concatenate([v.terms for v in vectors]).astype(np.int32)
        data = np.concatenate([v.weights for v in vectors]).astype(np.float32)
    else:
        indices, data = np.empty(0, np.int32), np.empty(0, np.float32)
    return sparse.csr_matrix((data, indices, indptr), shape=(len(vectors), width))


def stack_blobs(blobs: Sequence[tuple[bytes, bytes]], width: int) -> Any:
    """``stack`` of term vectors as stored (``TermVector.to_blobs`` pairs), decoded at once
    rather than one vector at a time."""
    from scipy import sparse

    lengths = np.fromiter((len(t) // 4 for t, _ in blobs), dtype=np.int64, count=len(blobs))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.frombuffer(b"".join(t for t, _ in blobs), dtype="<i4").astype(np.int32)
    data = np.frombuffer(b"".join(w for _, w in blobs), dtype="<f4").astype(np.float32)
    return sparse.csr_matrix((data, indices, indptr), shape=(len(blobs), width))


@dataclass(frozen=True)
class LexicalPart:
    """The vectors of consecutive rows from ``first_row`` on, by row, and the postings that
    pick candidates by term: a CSC matrix of the same rows holding, per term, only the
    ``POSTINGS_CAP`` rows where it weighs most."""

    first_row: int
    by_row: Any  # scipy CSR
    by_term: Any  # scipy CSC, columns capped (see ``capped``)

    @classmethod
    def of(cls, first_row: int, vectors: Sequence[TermVector], width: int) -> LexicalPart:
        return cls.of_matrix(first_row, stack(vectors, width))

    @classmethod
    def of_matrix(cls, first_row: int, matrix: Any) -> LexicalPart:
        """The part of a CSR matrix of consecutive rows from ``first_row`` on."""
        return cls(first_row, matrix, capped(matrix.tocsc()))

    @property
    def count(self) -> int:
        return int(self.by_row.shape[0])

    @classmethod
    def joined(cls, parts: Sequence[LexicalPart]) -> LexicalPart:
        """One part holding the rows of consecutive ``parts``."""
        from scipy import sparse

        matrix = sparse.vstack([part.by_row.tocsr() for part in parts], format="csr")
        return cls(parts[0].first_row, matrix, capped(matrix.tocsc()))


def capped(by_term: Any, cap: int = POSTINGS_CAP) -> Any:
    """``by_term`` (CSC) with each column cut to its ``cap`` largest weights (rows ascending
    within a column; among equal weights at the cut, any). Only the long columns are sorted."""
    from scipy import sparse

    lengths = np.diff(by_term.indptr)
    long = np.flatnonzero(lengths > cap)
    if not len(long):
        return by_term
    keep = np.ones(len(by_term.data), dtype=bool)
    for column in long.tolist():
        start, end = int(by_term.indptr[column]), int(by_term.indptr[column + 1])
        weights = by_term.data[start:end]
        dropped = np.argpartition(-weights, cap - 1)[cap:]  # all but the cap largest
        keep[start + dropped] = False
    kept = np.minimum(lengths, cap)
    indptr = np.concatenate([[0], np.cumsum(kept)])
    return sparse.csc_matrix(
        (by_term.data[keep], by_term.indices[keep], indptr), shape=by_term.shape
    )


@dataclass(frozen=True)
class SparseRows:
    """Some rows of TF-IDF vectors, compressed as a CSR matrix holds them (and read as one
    by the functions below, which take either): row i's term ids and weights are
    ``indices[indptr[i]:indptr[i + 1]]`` and ``data[...]``. Made per query without scipy."""

    indptr: np.ndarray  # int64, from 0
    indices: np.ndarray  # int32 term ids
    data: np.ndarray  # float32 weights
    shape: tuple[int, int]

    def tocsr(self) -> Any:
        from scipy import sparse

        return sparse.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def toarray(self) -> np.ndarray:
        """The rows as a dense array (for tests and small matrices)."""
        dense = np.zeros(self.shape, dtype=np.float32)
        dense[_owners(self), self.indices] = self.data
        return dense


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions ``starts[i] .. starts[i] + lengths[i] - 1`` of every span, in order,
    without a Python loop over spans."""
    total = int(lengths.sum())
    if not total:
        return np.empty(0, np.int64)
    ends = np.cumsum(lengths)
    return np.asarray(np.arange(total) + np.repeat(starts - (ends - lengths), lengths))


def outside(values: np.ndarray, others: Collection[int] | np.ndarray) -> np.ndarray:
    """Which ``values`` are not among ``others`` (a mask), for the few rows a query leaves
    out: compared one by one when they are few, else looked up in them sorted."""
    values = np.asarray(values)
    if not isinstance(others, np.ndarray) and len(others) <= 8:
        keep = np.ones(len(values), dtype=bool)
        for other in others:
            keep &= values != other
        return keep
    sorted_others = np.sort(np.fromiter(others, dtype=np.int64, count=len(others)))
    if not len(sorted_others):
        return np.ones(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_others, values), len(sorted_others) - 1)
    return np.asarray(sorted_others[at] != values)


def rows_matrix(parts: Sequence[LexicalPart], rows: np.ndarray) -> SparseRows:
    """These rows' vectors, in the order given."""
    rows = np.asarray(rows, dtype=np.int64)
    width = parts[0].by_row.shape[1] if parts else 0
    starts = np.zeros(len(rows), dtype=np.int64)
    lengths = np.zeros(len(rows), dtype=np.int64)
    sources = []
    for number, part in enumerate(parts):
        local = rows - part.first_row
        inside = (local >= 0) & (local < part.count)
        if len(parts) == 1 and not inside.all():
            raise IndexError(f"row out of range: {rows[~inside][:3].tolist()}")
        indptr = part.by_row.indptr
        chosen = local[inside]
        starts[inside] = indptr[chosen]
        lengths[inside] = indptr[chosen + 1] - indptr[chosen]
        sources.append((number, inside))
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    if len(parts) == 1:
        at = spans(starts, lengths)
        by_row = parts[0].by_row
        return SparseRows(indptr, by_row.indices[at], by_row.data[at], (len(rows), width))
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    for number, inside in sources:
        if inside.any():
            by_row = parts[number].by_row
            source = spans(starts[inside], lengths[inside])
            target = spans(indptr[:-1][inside], lengths[inside])
            indices[target] = by_row.indices[source]
            data[target] = by_row.data[source]
    return SparseRows(indptr, indices, data, (len(rows), width))


def _owners(matrix: Any) -> np.ndarray:
    """The row of each stored entry of a CSR matrix (or ``SparseRows``)."""
    indptr = np.asarray(matrix.indptr, dtype=np.int64)
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def cosine(parts: Sequence[LexicalPart], rows: np.ndarray, query: TermVector) -> np.ndarray:
    """The TF-IDF cosine of each row with the query."""
    if not len(rows) or not len(query.terms):
        return np.zeros(len(rows), dtype=np.float32)
    return cosine_with(rows_matrix(parts, rows), query)


def cosine_with(matrix: Any, query: TermVector) -> np.ndarray:
    """The TF-IDF cosine of each row of a CSR matrix (or ``SparseRows``) with the query."""
    count = int(matrix.shape[0])
    if not len(query.terms) or not count:
        return np.zeros(count, dtype=np.float32)
    order = np.argsort(query.terms, kind="stable")
    terms, weights = query.terms[order], query.weights[order]
    total = int(matrix.indptr[count])
    entries = matrix.indices[:total]
    at = np.minimum(np.searchsorted(terms, entries), len(terms) - 1)
    hit = terms[at] == entries
    products = matrix.data[:total][hit].astype(np.float64) * weights[at[hit]]
    found = np.bincount(_owners(matrix)[hit], weights=products, minlength=count)
    return np.asarray(found, dtype=np.float32)


class Products:
    """Dot products between the rows of one CSR matrix (or ``SparseRows``): a query's
    candidates. What every call needs (each stored entry's row and its term's place among the
    matrix's terms) is found once; a call then visits only the entries whose term one of its
    columns holds, without scipy."""

    def __init__(self, matrix: Any) -> None:
        count = int(matrix.shape[0])
        self.count = count
        self.indptr = np.asarray(matrix.indptr, dtype=np.int64)
        total = int(self.indptr[count])
        self.data = np.asarray(matrix.data[:total], dtype=np.float32)
        self.owners = np.repeat(np.arange(count), np.diff(self.indptr))
        terms, self.where = np.unique(matrix.indices[:total], return_inverse=True)
        self.terms = len(terms)

    def __call__(self, columns: np.ndarray) -> np.ndarray:
        """n x m: the dot product of every row with each of the rows ``columns``."""
        columns = np.asarray(columns, dtype=np.int64)
        out = np.zeros((self.count, len(columns)), dtype=np.float32)
        starts = self.indptr[columns]
        lengths = self.indptr[columns + 1] - starts
        at = spans(starts, lengths)
        if not len(at):
            return out
        block = np.zeros((self.terms, len(columns)), dtype=np.float32)
        block[self.where[at], np.repeat(np.arange(len(columns)), lengths)] = self.data[at]
        shared = np.zeros(self.terms, dtype=bool)
        shared[self.where[at]] = True
        hit = np.flatnonzero(shared[self.where])  # entries with a term the columns hold
        owners = self.owners[hit]
        contributions = block[self.where[hit]] * self.data[hit, None]
        firsts = np.flatnonzero(np.concatenate([[True], owners[1:] != owners[:-1]]))
        out[owners[firsts]] = np.add.reduceat(contributions, firsts, axis=0)
        return out


def products(matrix: Any, columns: np.ndarray) -> np.ndarray:
    """n x m: the dot product of every row of ``matrix`` (CSR or ``SparseRows``) with each of
    its rows ``columns`` (see ``Products``)."""
    return Products(matrix)(columns)


def search(
    parts: Sequence[LexicalPart],
    query: TermVector,
    count: int,
    *,
    drop: Collection[int] = (),
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` allowed rows scoring highest on the query's strongest terms (only rows
    in those terms' capped postings), best first: (rows, partial cosines).

    The work is proportional to the postings walked (at most ``QUERY_TERMS`` times
    ``POSTINGS_CAP``), never to the number of rows.
    """
    empty = (np.empty(0, np.int64), np.empty(0, np.float32))
    if not parts or not len(query.terms) or count <= 0:
        return empty
    strongest = np.argsort(-query.weights, kind="stable")[:QUERY_TERMS]
    terms, weights = query.terms[strongest], query.weights[strongest]
    found_rows, found_scores = [], []
    for part in parts:
        indptr, indices, data = part.by_term.indptr, part.by_term.indices, part.by_term.data
        starts, ends = indptr[terms], indptr[terms + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if not total:
            continue
        at = spans(starts.astype(np.int64), lengths.astype(np.int64))  # every walked posting
        found_rows.append(indices[at].astype(np.int64) + part.first_row)
        found_scores.append(data[at] * np.repeat(weights, lengths))
    if not found_rows:
        return empty
    # Each term's postings are in row order: a stable sort merges them (timsort runs).
    walked = np.concatenate(found_rows)
    order = np.argsort(walked, kind="stable")
    walked = walked[order]
    firsts = np.flatnonzero(np.concatenate([[True], walked[1:] != walked[:-1]]))
    hits = walked[firsts]
    weights_walked = np.concatenate(found_scores)[order].astype(np.float64)
    scores = np.add.reduceat(weights_walked, firsts).astype(np.float32)
    keep = scores > 0
    if allowed is not None:
        keep &= allowed[hits]
    if drop:
        keep &= outside(hits, drop)
    hits, scores = hits[keep], scores[keep]
    if len(hits) > count:
        # Of equal scores at the cut, the first rows (``hits`` ascend): a choice that does not
        # depend on which other rows were walked, as argpartition's would.
        cut = np.partition(scores, len(scores) - count)[len(scores) - count]
        above = np.flatnonzero(scores > cut)
        tied = np.flatnonzero(scores == cut)[: count - len(above)]
        best = np.concatenate([above, tied])
        hits, scores = hits[best], scores[best]
    order = np.lexsort((hits, -scores))
    return hits[order], scores[order]
