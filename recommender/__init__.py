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
    InputFileError,
    InvalidArticleError,
    InvalidArticlesError,
    InvalidQueryError,
    ModelError,
    RecommenderError,
    UnknownArticleError,
)
from .results import BuildReport, IndexInfo, Recommendation, UpdateReport
from .settings import DEFAULT_MODEL, Settings
from .tune import TuneReport

__all__ = [
    "DEFAULT_MODEL",
    "Article",
    "BuildReport",
    "IncompatibleIndexError",
    "IndexBusyError",
    "IndexDamagedError",
    "IndexInfo",
    "IndexNotFoundError",
    "InputFileError",
    "InvalidArticleError",
    "InvalidArticlesError",
    "InvalidQueryError",
    "ModelError",
    "Recommendation",
    "Recommender",
    "RecommenderError",
    "Settings",
    "TuneReport",
    "UnknownArticleError",
    "UpdateReport",
]
