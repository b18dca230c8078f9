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

    Ranking (see README, "How results are ranked"): ``score = similarity * recency * category``
    where ``recency = 1 - recency_weight + recency_weight * 0.5 ** (age_days / half_life_days)``
    and ``category = 1 + category_boost`` for the query's own category, else 1.
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

    def __post_init__(self) -> None:
        if self.max_body_chars < 0:
            raise InvalidQueryError(f"max_body_chars must be >= 0, got {self.max_body_chars}")
        if self.vector_type not in ("float16", "float32"):
            raise InvalidQueryError(
                f"vector_type must be 'float16' or 'float32', got {self.vector_type!r}"
            )
        if self.batch_size < 1:
            raise InvalidQueryError(f"batch_size must be >= 1, got {self.batch_size}")
        check_ranking(
            half_life_days=self.half_life_days,
            recency_weight=self.recency_weight,
            recency_from=self.recency_from,
            category_boost=self.category_boost,
        )
        if self.candidates < 1:
            raise InvalidQueryError(f"candidates must be >= 1, got {self.candidates}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Settings from a manifest; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def check_ranking(
    *,
    half_life_days: float | None,
    recency_weight: float,
    recency_from: str,
    category_boost: float,
) -> None:
    """Raise InvalidQueryError for a ranking parameter out of its range."""
    if half_life_days is not None and not half_life_days > 0:
        raise InvalidQueryError(f"half_life_days must be > 0 or None, got {half_life_days}")
    if not 0.0 <= recency_weight <= 1.0:
        raise InvalidQueryError(f"recency_weight must be between 0 and 1, got {recency_weight}")
    if recency_from not in ("query", "now"):
        raise InvalidQueryError(f"recency_from must be 'query' or 'now', got {recency_from!r}")
    if not category_boost >= 0.0:
        raise InvalidQueryError(f"category_boost must be >= 0, got {category_boost}")
