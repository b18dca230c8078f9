"""The exceptions the library raises: one base class, one subclass per kind of fault."""

from __future__ import annotations


class RecommenderError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidArticleError(RecommenderError):
    """An input record is not a valid article; names the file and line where known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = message
        where = f"{path}:{line}: " if path is not None and line is not None else ""
        super().__init__(f"{where}{message}")


class InputFileError(RecommenderError):
    """An input file cannot be read at all (missing, unknown format, not decodable)."""


class InvalidArticlesError(RecommenderError):
    """Some input records are invalid and the caller did not ask to skip them."""

    def __init__(self, errors: list[InvalidArticleError]) -> None:
        self.errors = errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more invalid records)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}; fix them or pass --skip-invalid to leave them out")


class IndexNotFoundError(RecommenderError):
    """No index exists at the given place."""


class IndexDamagedError(RecommenderError):
    """An index exists but its files are missing, truncated or unreadable."""


class IncompatibleIndexError(RecommenderError):
    """The index was written with another model or a newer format than this version reads."""


class IndexBusyError(RecommenderError):
    """Another process is writing the index (one writer at a time)."""


class IndexWriteError(RecommenderError):
    """The index cannot be written: disk full, permission denied, a file that is not the
    engine's own in the way. Says whether anything was changed (normally nothing)."""


class OutputFileError(RecommenderError):
    """A file a command was asked to write (``--out``) cannot be written."""


class UnknownArticleError(RecommenderError, KeyError):
    """The article id is not in the index."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ModelError(RecommenderError):
    """The embedding model cannot be loaded or fails to encode."""


class InvalidQueryError(RecommenderError, ValueError):
    """A query parameter is out of range or contradicts another."""


class SettingsError(RecommenderError, ValueError):
    """A build or ranking setting is out of its range."""


class LabelsError(RecommenderError, ValueError):
    """Labels given to evaluate or tune are unusable (no labelled, indexed article...)."""


class SourceError(RecommenderError):
    """A source of recommend sync cannot be read: a database that cannot be reached or
    refuses the credentials (never shown), a missing column, a feed that is not XML."""
