"""recommender: related articles for news sites.

from recommender import Recommender
rec = Recommender.open("indexes/news")
rec.similar("a-123", k=5)
"""

from __future__ import annotations

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
from .tune import TuneReport

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
