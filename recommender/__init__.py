"""recommender: related articles for news sites.

from recommender import Recommender
rec = Recommender.open("indexes/news")
rec.similar("a-123", k=5)
"""

from __future__ import annotations

import logging
from importlib import import_module
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
    SourceError,
    UnknownArticleError,
)
from .read.retrieve import Filters
from .results import (
    Answers,
    BuildReport,
    CheckReport,
    IndexInfo,
    IndexStatus,
    Override,
    Recommendation,
    ReplicaReport,
    SyncReport,
    UpdateReport,
)
from .settings import DEFAULT_MODEL, ENGLISH_MODEL, MULTILINGUAL_MODEL, Ranking, Settings

# The library's modules log under "recommender"; the program using it decides where to.
logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from .embedding.supplied import SuppliedVectorsError, article_content_hash
    from .quality.tune import TuneReport

#: Names imported from their module when first asked for (see docs/contributing.md): answering
#: queries needs neither supplied vectors nor tuning.
_LAZY = {
    "SuppliedVectorsError": "embedding.supplied",
    "article_content_hash": "embedding.supplied",
    "TuneReport": "quality.tune",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # asked for once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "DEFAULT_MODEL",
    "ENGLISH_MODEL",
    "MULTILINGUAL_MODEL",
    "Answers",
    "Article",
    "BuildReport",
    "CheckReport",
    "Filters",
    "IncompatibleIndexError",
    "IndexBusyError",
    "IndexDamagedError",
    "IndexInfo",
    "IndexNotFoundError",
    "IndexStatus",
    "IndexWriteError",
    "InputFileError",
    "InvalidArticleError",
    "InvalidArticlesError",
    "InvalidQueryError",
    "LabelsError",
    "ModelError",
    "Override",
    "Ranking",
    "Recommendation",
    "Recommender",
    "RecommenderError",
    "ReplicaReport",
    "Settings",
    "SettingsError",
    "SourceError",
    "SuppliedVectorsError",
    "SyncReport",
    "TuneReport",
    "UnknownArticleError",
    "UpdateReport",
    "article_content_hash",
]
