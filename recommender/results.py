"""What the engine returns: related articles with their score parts, build and index reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Recommendation:
    """One related article: ``score = similarity * recency_factor * category_factor``.

    (For a negative similarity, an unrelated article, the factors divide instead.)
    """

    id: str
    score: float
    similarity: float
    recency_factor: float
    category_factor: float
    title: str
    category: str | None = None
    published_at: datetime | None = None
    url: str | None = None
    source: str | None = None
    lang: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildReport:
    """The outcome of building an index."""

    index: str
    articles: int
    records: int
    skipped: int
    duplicates: int
    seconds: float
    index_bytes: int
    model: str

    @property
    def articles_per_second(self) -> float:
        return self.articles / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class IndexInfo:
    """What ``recommend info`` shows about an index."""

    index: str
    version: str
    articles: int
    categories: int
    model: str
    dimension: int
    format_version: int
    built_at: str
    build_seconds: float
    bytes_on_disk: int
    settings: dict[str, Any]
