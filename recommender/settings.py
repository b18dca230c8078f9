"""One frozen settings object: how text is embedded and how results are weighted by default."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InvalidQueryError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

RecencyFrom = Literal["query", "now"]


@dataclass(frozen=True)
class Settings:
    """Build-time and default query-time settings, stored in the index manifest.

    Text: the embedded text is the title, then the cleaned body cut to ``max_body_chars``
    characters (at a word boundary). all-MiniLM-L6-v2 reads at most 256 word pieces, roughly
    1,000 characters of English, so more body would be cut by the model anyway.

    Vectors are stored as ``vector_type``: float16 halves memory and doubles the speed of
    the exhaustive search for cosine errors below 1e-4; float32 is exact.

    Lexical side (fixed at build): TF-IDF over the title and whole body, terms of 1 to
    ``lexical_ngrams`` words found in at least ``lexical_min_df`` articles.

    Ranking (see README, "How results are ranked", and rerank.py): the similarity fuses the
    embedding cosine and the TF-IDF cosine, ``(1 - w) * dense + w * lexical`` with
    ``w = lexical_weight``, or ``lexical_weight_short`` for a query whose TF-IDF vector has
    fewer than ``short_terms`` terms (a headline); it is then averaged with its mean similarity
    to the query's ``neighbours`` nearest candidates, weighted ``neighbour_weight``. Then
    ``score = similarity * recency * category`` where
    ``recency = 1 - recency_weight + recency_weight * 0.5 ** (age_days / half_life_days)`` and
    ``category = 1 + category_boost`` for the query's own category, else 1. Copies (same title,
    url, or TF-IDF cosine >= ``duplicate_threshold``) are listed once; ``mmr_lambda < 1``
    trades score for diversity. ``candidates`` are taken from each side (embedding, TF-IDF).
    """

    model: str = DEFAULT_MODEL
    max_body_chars: int = 1000
    batch_size: int = 64
    vector_type: Literal["float16", "float32"] = "float16"
    half_life_days: float | None = 7.0
    recency_weight: float = 0.1
    recency_from: RecencyFrom = "query"
    category_boost: float = 0.1
    candidates: int = 100
    lexical_ngrams: int = 2
    lexical_min_df: int = 2
    lexical_weight: float = 0.7
    lexical_weight_short: float = 0.3
    short_terms: int = 20
    neighbours: int = 2
    neighbour_weight: float = 1.0
    duplicate_threshold: float = 0.9
    mmr_lambda: float = 1.0

    def __post_init__(self) -> None:
        if self.max_body_chars < 0:
            raise InvalidQueryError(f"max_body_chars must be >= 0, got {self.max_body_chars}")
        if self.vector_type not in ("float16", "float32"):
            raise InvalidQueryError(
                f"vector_type must be 'float16' or 'float32', got {self.vector_type!r}"
            )
        if self.batch_size < 1:
            raise InvalidQueryError(f"batch_size must be >= 1, got {self.batch_size}")
        check_ranking(**{name: getattr(self, name) for name in RANKING_FIELDS})
        for name in ("candidates", "lexical_ngrams", "lexical_min_df"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidQueryError(
                    f"{name} must be a whole number >= 1, got {getattr(self, name)!r}"
                )
        for name in ("short_terms", "neighbours"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise InvalidQueryError(
                    f"{name} must be a whole number >= 0, got {getattr(self, name)!r}"
                )
        if not 0.0 < self.duplicate_threshold <= 1.0:
            raise InvalidQueryError(
                f"duplicate_threshold must be above 0 and at most 1, got {self.duplicate_threshold}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Settings from a manifest; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


#: Settings fixed by a build (the stored text, vectors and lexicon depend on them).
BUILD_FIELDS = (
    "model",
    "max_body_chars",
    "batch_size",
    "vector_type",
    "lexical_ngrams",
    "lexical_min_df",
)

#: The settings a query may override (and ``recommend tune`` may change).
RANKING_FIELDS = (
    "half_life_days",
    "recency_weight",
    "recency_from",
    "category_boost",
    "lexical_weight",
    "lexical_weight_short",
    "neighbour_weight",
    "mmr_lambda",
)


def check_ranking(
    *,
    half_life_days: float | None,
    recency_weight: float,
    recency_from: str,
    category_boost: float,
    lexical_weight: float = 0.0,
    lexical_weight_short: float = 0.0,
    neighbour_weight: float = 0.0,
    mmr_lambda: float = 1.0,
) -> None:
    """Raise InvalidQueryError for a ranking parameter out of its range."""
    for name, value in (
        ("lexical_weight", lexical_weight),
        ("lexical_weight_short", lexical_weight_short),
        ("mmr_lambda", mmr_lambda),
    ):
        if not 0.0 <= value <= 1.0:
            raise InvalidQueryError(f"{name} must be between 0 and 1, got {value}")
    if not neighbour_weight >= 0.0:
        raise InvalidQueryError(f"neighbour_weight must be >= 0, got {neighbour_weight}")
    if half_life_days is not None and not half_life_days > 0:
        raise InvalidQueryError(f"half_life_days must be > 0 or None, got {half_life_days}")
    if not 0.0 <= recency_weight <= 1.0:
        raise InvalidQueryError(f"recency_weight must be between 0 and 1, got {recency_weight}")
    if recency_from not in ("query", "now"):
        raise InvalidQueryError(f"recency_from must be 'query' or 'now', got {recency_from!r}")
    if not category_boost >= 0.0:
        raise InvalidQueryError(f"category_boost must be >= 0, got {category_boost}")
