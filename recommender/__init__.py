"""recommender: related articles for news sites.

from recommender import Recommender
rec = Recommender.open("indexes/news")
rec.similar("a-123", k=5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .articles import Article
from .engine import Recommender
from .errors import (
    IncompatibleIndexError,
    IndexBusyError,
    IndexDamagedError,
    IndexNotFoundError,
    IndexWriteError,
    InputFileError,
    InvalidArticleError,
    InvalidArticlesError,
    InvalidQueryError,
    LabelsError,
    ModelError,
    RecommenderError,
    SettingsError,
    UnknownArticleError,
)
from .results import (
    BuildReport,
    CheckReport,
    IndexInfo,
    Recommendation,
    ReplicaReport,
    UpdateReport,
)
from .retrieve import Filters
from .settings import DEFAULT_MODEL, ENGLISH_MODEL, MULTILINGUAL_MODEL, Ranking, Settings
from .supplied import SuppliedVectorsError, article_content_hash

if TYPE_CHECKING:
    from .tune import TuneReport


def __getattr__(name: str) -> Any:
    """``TuneReport`` is imported when first asked for: tuning is the only reason to."""
    if name == "TuneReport":
        from .tune import TuneReport

        return TuneReport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "ENGLISH_MODEL",
    "MULTILINGUAL_MODEL",
    "Article",
    "BuildReport",
    "CheckReport",
    "Filters",
    "IncompatibleIndexError",
    "IndexBusyError",
    "IndexDamagedError",
    "IndexInfo",
    "IndexNotFoundError",
    "IndexWriteError",
    "InputFileError",
    "InvalidArticleError",
    "InvalidArticlesError",
    "InvalidQueryError",
    "LabelsError",
    "ModelError",
    "Ranking",
    "Recommendation",
    "Recommender",
    "RecommenderError",
    "ReplicaReport",
    "Settings",
    "SettingsError",
    "SuppliedVectorsError",
    "TuneReport",
    "UnknownArticleError",
    "UpdateReport",
    "article_content_hash",
]
