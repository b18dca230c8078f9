"""What the engine returns: related articles with their score parts, build and index reports,
and how they are written as JSON (``to_json``, the CLI's ``--json`` and the HTTP service's)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Recommendation:
    """One related article (or group of copies): why it is here, in parts.

    ``similarity`` fuses ``dense_similarity`` (embedding cosine) and ``lexical_similarity``
    (TF-IDF cosine), with the neighbour term (see README, "How results are ranked");
    ``score = similarity * recency_factor * category_factor`` (for a negative similarity, an
    unrelated article, the factors divide instead). When copies of one article (same title,
    url, or nearly the same text) are among the candidates, they are listed once, as the
    best-scored copy (the earliest published among equal scores): ``copies`` counts them all
    (1 when it has none) and ``copy_ids`` names the others.
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
    language: str | None = None  # the effective language: lang, else detected (None: unknown)
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    dense_similarity: float = 0.0
    lexical_similarity: float = 0.0
    copies: int = 1
    copy_ids: tuple[str, ...] = ()


#: A ``Recommendation``'s fields, in order.
RECOMMENDATION_FIELDS = tuple(f.name for f in fields(Recommendation))
_new_object = object.__new__
_set_attribute = object.__setattr__


def recommendation(*values: Any) -> Recommendation:
    """``Recommendation(*values)`` (every field given, in order), made in half the time: its
    fields set at once rather than one frozen ``__setattr__`` each (a related list makes ten
    on every query)."""
    if len(values) != len(RECOMMENDATION_FIELDS):
        return Recommendation(*values)
    found = _new_object(Recommendation)
    _set_attribute(found, "__dict__", dict(zip(RECOMMENDATION_FIELDS, values, strict=True)))
    return found


#: The fields of a ``Recommendation`` that come from its article as stored (all but its id),
#: in field order: ``RelatedList`` writes them as one piece made once per article.
SHOWN_FIELDS = (
    "title",
    "category",
    "published_at",
    "url",
    "source",
    "lang",
    "language",
    "tags",
    "metadata",
)


class RelatedList(list[Recommendation]):
    """A related list as ``similar`` returns it: a list of ``Recommendation``, which also
    writes itself as JSON (``json``) from a piece of JSON made once per article (its
    ``SHOWN_FIELDS``, ``shown_json``), what ``to_json`` writes of the list byte for byte,
    without a dict per item. Changed after it was made, it is written as any list is."""

    __slots__ = ("_pieces",)

    def __init__(self, pieces: Iterable[tuple[Recommendation, str]] = ()) -> None:
        """``pieces``: each recommendation and the JSON of its shown fields."""
        held = tuple(pieces)
        super().__init__(item for item, _ in held)
        self._pieces = held

    def json(self) -> str:
        """The list as ``to_json`` writes it."""
        held = getattr(self, "_pieces", ())
        if len(held) != len(self) or any(a is not b for a, (b, _) in zip(self, held, strict=True)):
            return to_json(list(self))
        return "[" + ", ".join(_item_json(item, shown) for item, shown in held) + "]"


def shown_json(values: Sequence[object]) -> str:
    """The JSON piece of a recommendation's ``SHOWN_FIELDS`` (``values``, in that order), as
    ``to_json`` writes them inside its object."""
    return to_json(dict(zip(SHOWN_FIELDS, values, strict=True)))[1:-1]


_string = json.encoder.encode_basestring  # what to_json writes a string with (ensure_ascii off)


#: One recommendation as ``to_json`` writes it, for plain finite numbers (``_item_json``):
#: ``%r`` of a float is what json writes of it.
_ITEM = (
    '{"id": %s, "score": %r, "similarity": %r, "recency_factor": %r, "category_factor": %r, '
    '%s, "dense_similarity": %r, "lexical_similarity": %r, "copies": %d, "copy_ids": [%s]}'
)


def _item_json(item: Recommendation, shown: str) -> str:
    numbers = (
        item.score,
        item.similarity,
        item.recency_factor,
        item.category_factor,
        item.dense_similarity,
        item.lexical_similarity,
    )
    found = None
    if type(item.copies) is int:
        found = item_json(item.id, numbers, item.copies, item.copy_ids, shown)
    return to_json(item) if found is None else found


def item_json(
    article_id: str, numbers: Sequence[float], copies: int, copy_ids: Sequence[str], shown: str
) -> str | None:
    """A ``Recommendation`` as ``to_json`` writes it, from its id, its six numbers (score,
    similarity, recency and category factors, embedding and TF-IDF cosines), copies and the
    piece of its ``SHOWN_FIELDS`` (``shown_json``); None unless the numbers are plain finite
    floats (and ints), which json spells otherwise."""
    total = sum(numbers)
    if type(total) is not float or total - total != 0:
        return None
    listed = ", ".join(map(_string, copy_ids))
    return _ITEM % (_string(article_id), *numbers[:4], shown, *numbers[4:], copies, listed)


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
    reused: int = 0  # articles whose stored vector was kept instead of embedding again
    supplied: int = 0  # articles whose vector came from the file given (--vectors)
    stale: int = 0  # supplied vectors left out: made from another text (embedded here)
    without_vector: int = 0  # articles embedded here that the supplied vectors did not cover
    embedded: int = 0  # articles embedded by the build

    @property
    def articles_per_second(self) -> float:
        return self.articles / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class UpdateReport:
    """The outcome of adding or removing articles."""

    index: str
    added: int = 0  # new ids
    replaced: int = 0  # known ids whose embedded text changed: embedded again
    fields_only: int = 0  # known ids with the same text: stored fields rewritten, no embedding
    removed: int = 0
    missing: int = 0  # ids to remove that were not in the index
    duplicates: int = 0
    skipped: int = 0  # invalid input records left out
    embedded: int = 0
    seconds: float = 0.0
    compacted: bool = False  # the update also rewrote the index without removed rows
    supplied: int = 0  # new or changed articles whose vector came from the file given
    stale: int = 0  # supplied vectors left out: made from another text (embedded here)
    without_vector: int = 0  # articles embedded here that the supplied vectors did not cover


@dataclass(frozen=True)
class SyncReport:
    """The outcome of one ``recommend sync`` of a source (``dry_run``: what it would do)."""

    index: str
    source: str
    kind: str  # "database", "rss", "atom" or "news sitemap"
    read: int = 0  # rows or entries read
    added: int = 0  # new ids
    updated: int = 0  # known ids whose row or entry changed
    unchanged: int = 0  # read again as they were written (ties on the update time, a feed)
    removed: int = 0  # taken down
    invalid: tuple[str, ...] = ()  # the rows left out, each with where it is and why
    embedded: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    built: bool = False  # the first sync of a missing index: a build
    compacted: bool = False
    #: With ``dry_run``: the ids that would be added, updated and removed.
    would_add: tuple[str, ...] = ()
    would_update: tuple[str, ...] = ()
    would_remove: tuple[str, ...] = ()


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
    model_choice: str = ""  # why the build used this model ("auto: ..."); empty if unknown
    generation: int = 0  # updates committed to this version, counting its build as 1
    removed_rows: int = 0  # rows of removed or replaced articles awaiting compaction
    segments: int = 0
    # The vector search of the build's segment, e.g. "hnsw (approximate graph search: M=32,
    # ...)" or "flat (exact: ...)"; segments added since are searched exhaustively.
    vector_search: str = ""
    search: dict[str, Any] = field(default_factory=dict)  # the same, as the manifest holds it
    precomputed: str = ""  # the precomputed lists and whether queries use them
    # Live articles per language kept (language.effective), most first; unknown ones left out.
    languages: dict[str, int] = field(default_factory=dict)
    # Those of ``languages`` that are no language code or name langcodes knows (``xx``): kept
    # as given (language.normalise), so queries must give the same value to match them.
    unrecognised_languages: list[str] = field(default_factory=list)
    # Live articles per category, most first (then by name); those without one left out.
    category_counts: dict[str, int] = field(default_factory=dict)
    # The editorial overrides held: {"pins": n, "blocks": n, "hidden": n}.
    overrides: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Answers:
    """How this process has answered ``similar`` since the index was opened: from the
    precomputed lists, or by searching (filters, another ranking, lists not current)."""

    precomputed: int = 0
    searched: int = 0


@dataclass(frozen=True)
class IndexStatus:
    """What a process serving an index reports about it (``Recommender.status``): cheap to
    ask, for monitoring (the HTTP service's /metrics).

    ``written_at``: when the index folder was last written to (Unix time, its files' times:
    an update, a precompute, a build or a replica's copy); ``refreshed_at``: when this process
    last loaded the index or looked for changes and found it current.
    """

    articles: int
    generation: int
    version: str
    written_at: float
    refreshed_at: float
    answers: Answers


@dataclass(frozen=True)
class CheckReport:
    """What ``recommend check`` found: every problem (empty when the index is sound), notes
    that are not problems (parts written by an earlier version, without checksums), counts."""

    index: str
    version: str | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    articles: int = 0  # live rows
    rows: int = 0  # rows stored, removed ones included
    segments: int = 0
    rows_verified: int = 0  # rows whose checksum was checked
    #: How many of ``problems`` are derived files no reader uses (an image, precomputed lists):
    #: they cost speed, never answers; deleting them or ``precompute`` mends them.
    ignored_files: int = 0

    @property
    def sound(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ReplicaReport:
    """The outcome of ``recommend replicate``: what the replica holds now, and what it cost."""

    index: str  # the index copied
    replica: str  # the replica's folder
    version: str  # the replica's version folder now named in its CURRENT
    source_version: str  # the version of ``index`` it is a copy of
    generation: int  # that version's generation (its updates) at the copy
    articles: int
    copied: bool  # False: the replica was already up to date, nothing written
    bytes_copied: int = 0
    files_linked: int = 0  # segments unchanged since the last copy: hard links, not copies
    tries: int = 1  # copies begun: another when the index changed under one (segments merged)
    seconds: float = 0.0


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def json_default(value: object) -> object:
    """What ``json.dumps`` cannot write itself, as the results hold it: dates as ISO-8601 (UTC
    ending in Z), tuples and sets as lists, other mappings as objects, a result (a dataclass)
    as the object of its fields, which is what ``dataclasses.asdict`` gives (without its deep
    copy: a related list of 10 is written in a third of the time)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {name: getattr(value, name) for name in _field_names(type(value))}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(data: object, *, indent: int | None = None) -> str:
    """``data`` (results, or dicts made of them by ``dataclasses.asdict``) as JSON text,
    characters beyond ASCII kept as they are."""
    if indent is None:
        return _ENCODER.encode(data)  # what json.dumps writes, without an encoder a call
    return json.dumps(data, default=json_default, ensure_ascii=False, indent=indent)


_ENCODER = json.JSONEncoder(default=json_default, ensure_ascii=False)


@dataclass(frozen=True)
class Override:
    """One editorial override (``recommend overrides``): ``kind`` "pin" (``related_id`` shown
    in ``article_id``'s list at ``position``, 1-based), "block" (``related_id`` never shown
    there) or "hide" (``article_id`` shown in no list; ``related_id`` and ``position`` None)."""

    kind: str
    article_id: str
    related_id: str | None = None
    position: int | None = None
