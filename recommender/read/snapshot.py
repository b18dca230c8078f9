"""What a reader holds: one consistent state of an index, loaded in memory.

A ``Snapshot`` is immutable; a refresh makes a new one from it (``updated``) reading only the
vector segments and rows committed since, or loads the index anew when a build or compaction
replaced its version (``load``). Queries running meanwhile keep the snapshot they started with.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..articles import quoted
from ..errors import IndexDamagedError, RecommenderError, UnknownArticleError
from ..lexical import LexicalPart, Lexicon, TermVector, rows_matrix, stack_blobs
from ..names import kinds_of
from ..results import CheckReport
from ..settings import CACHED_ARTICLES, RULES, Settings
from ..storage import image, precomputed
from ..storage.check import check_index
from ..storage.mapped import Binding, Ignored, ids_digest
from ..storage.overrides import NONE as NO_OVERRIDES
from ..storage.overrides import Overrides
from ..storage.precomputed import Precomputed
from . import held
from .rerank import Query
from .retrieve import graph_walk
from .shown import Shown, ShownCache, names_language, shown_of

if TYPE_CHECKING:
    pass
from ..storage.columns import Columns, apply_rows
from ..storage.layout import CURRENT, current_name, current_version
from ..storage.manifest import Manifest, read_manifest
from ..storage.table import ArticleTable, listed_fields
from ..storage.vectors import (
    Checksums,
    is_graph,
    new_vector_index,
    read_segment,
    stored_vectors,
    vectors_of,
)

log = logging.getLogger(__name__)


@dataclass
class _LexiconCache:
    """The lexicon of one version, read when text is first vectorized; shared by the
    snapshots of that version (a build or compaction makes a new version)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    lexicon: Lexicon | None = None


@dataclass
class _PointerCache:
    """What CURRENT said when last read, and the identity of the file then (inode, size,
    modification time): a rename or edit changes it, so an unchanged file is not read again."""

    identity: tuple[int, ...] = ()
    name: str | None = None
    file: str = ""  # CURRENT's path, made once: it is looked at on every query


@dataclass(frozen=True)
class Snapshot:
    """One consistent state of an index: its version, settings, rows and vectors."""

    path: Path  # the index folder
    version: Path  # the version folder within it
    manifest: Manifest
    settings: Settings
    table: ArticleTable
    generation: int
    parts: tuple[tuple[int, Any], ...]  # (first row, FAISS index), in row order
    columns: Columns
    lexical: tuple[LexicalPart, ...]  # TF-IDF rows, in row order
    lexicon_size: int
    #: What the version's database says its derived files are bound to (``mapped.Binding``).
    binding: Binding = field(default_factory=Binding)
    #: Why the version's image was not used (``mapped.Ignored``), None when it was or there
    #: is none.
    image_ignored: str | None = None
    from_image: bool = False  # opened from the version's image
    #: The editorial overrides (``storage.overrides``), as of ``generation``.
    overrides: Overrides = NO_OVERRIDES
    #: What related lists show of the articles listed most recently (``shown``).
    shown_cache: ShownCache = field(
        default_factory=lambda: ShownCache(CACHED_ARTICLES), repr=False, compare=False
    )
    #: Which lexicon terms are names, and of which kind (``names.kinds_of``; empty: the
    #: version stores none).
    names: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8), compare=False)
    _lexicon: _LexiconCache = field(default_factory=_LexiconCache, repr=False, compare=False)
    _pointer: _PointerCache = field(default_factory=_PointerCache, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path, cached_articles: int = CACHED_ARTICLES) -> Snapshot:
        """The current state of the index at ``path``, read whole; its related lists keep
        what they show of up to ``cached_articles`` articles (``shown``)."""
        for attempt in range(5):
            try:
                found = cls.of_version(path, current_version(path))
                return replace(found, shown_cache=ShownCache(cached_articles))
            except RecommenderError:
                # A writer may have replaced this version, or merged segments, while it loaded.
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def of_version(cls, path: Path, version: Path, *, use_image: bool = True) -> Snapshot:
        """The current state of one version folder of the index at ``path`` (from its image
        and the rows changed since, unless ``use_image`` is False: every row from SQLite)."""
        manifest = read_manifest(version)
        table = ArticleTable(version)
        try:
            empty = apply_rows(None, [])
            settings = Settings.from_dict(manifest.settings)
            size = table.lexicon_size()
            segments = table.segments()
            # The segments are verified meanwhile, on a thread of their own.
            checksums = Checksums(version, [segment.file for segment in segments])
            start = cls(
                path, version, manifest, settings, table, -1, (), empty, (), size, table.binding()
            )
            start = replace(start, names=kinds_of(*table.name_terms(), size))
            if not use_image:
                return start.updated(checksums)
            mapped, used = start._from_image(sum(segment.count for segment in segments))
            try:
                return mapped.updated(checksums)
            except IndexDamagedError as exc:
                if used is None:
                    raise
                # Bound to the version and named by it, yet not its rows (which the engine
                # never writes): every row is read instead, and a damaged version says so.
                log.info("%s ignored: %s", used, exc)
                reason = f"{used.name}: does not agree with the stored rows"
                return replace(start, image_ignored=reason).updated(checksums)
        except BaseException:
            table.close()
            raise

    def _from_image(self, rows: int) -> tuple[Snapshot, Path | None]:
        """This (empty) snapshot with the columns and TF-IDF rows of the version's newest
        image (``image``) bound to it (its build, a generation it has reached, no more than
        its ``rows``), and that image's path: ``updated`` then reads only the rows changed
        since it was written, and the vectors, which are mapped. Images that cannot be used
        are ignored, the reason for the newest kept (``image_ignored``); with none (path
        None), every row is read instead."""
        generation = self.table.generation()
        reason = None
        for _, path in image.candidates(self.version):
            try:
                found, columns, lexical = image.load_image(
                    path, self.lexicon_size, self.binding, generation, rows
                )
            except Ignored as exc:
                log.info("%s ignored: %s", path, exc)
                reason = reason or f"{path.name}: {exc}"
                continue
            loaded = replace(
                self,
                generation=found,
                columns=columns,
                lexical=(lexical,),
                from_image=True,
                image_ignored=reason,
            )
            return loaded, path
        return replace(self, image_ignored=reason), None

    @property
    def build(self) -> str | None:
        """The version's build id (``table.BUILD``), None when it records none."""
        return self.binding.build

    def save_image(self) -> Path:
        """Write the image of this snapshot into its version (see ``image``), bound to its
        build (which a writer records first, ``table.ensure_build``), and name it in the
        version's database: for writers (under the writer lock)."""
        if self.build is None:
            raise ValueError(f"{self.version} records no build id: its image would bind to none")
        whole = image.lexical_whole(self.lexical, self.lexicon_size)
        return image.write_image(
            self.version, self.generation, self.columns, whole, self.lexicon_size, self.build
        )

    @property
    def precomputed(self) -> Precomputed | None:
        """The version's precomputed lists, when there are usable ones for this snapshot."""
        return self._lists[0]

    @cached_property
    def _lists(self) -> tuple[Precomputed | None, str | None]:
        """The version's newest precomputed lists bound to this snapshot's version and state
        (``mapped.refusal``), if any, and why the newest lists' file was ignored, if it was."""
        reason = None
        for path in precomputed.candidates(self.version):
            try:
                found = precomputed.load(path, self.binding, self.generation, len(self.columns.ids))
            except Ignored as exc:
                log.info("%s ignored: %s", path, exc)
                reason = reason or f"{path.name}: {exc}"
                continue
            return found, reason
        return None, reason

    @cached_property
    def changed_rows(self) -> held.Changed | None:
        """The rows changed since the lists were computed (``held.Changed``); None when there
        are no lists or too many such rows to check a query against."""
        found = self.precomputed
        if found is None:
            return None
        rows = self.table.changed_since(found.generation, held.MAX_CHANGED)
        if rows is None:
            return None
        size = len(self.columns.ids)
        return held.Changed.of(self, np.array([r for r in rows if r < size], dtype=np.int64))

    @cached_property
    def hidden_rows(self) -> frozenset[int]:
        """The rows of the hidden articles (``overrides.hidden``): found once per snapshot,
        not on every query."""
        row_of = self.columns.row_of
        return frozenset(row_of[i] for i in self.overrides.hidden if i in row_of)

    def graph_walk(self, wanted: int) -> int | str | None:
        """How a query for ``wanted`` rows walks the graph (HNSW) part of this snapshot, if it
        has one (``retrieve.graph_walk``: its efSearch, or "scan"); None without a graph.
        Precomputed lists hold only for queries walked as theirs were: removals widen the walk
        once they are a large enough share."""
        known = self._walks.get(wanted, False)
        if known is not False:  # found once per snapshot: every lookup asks (FAISS's efSearch)
            return known
        share = self._graph_share
        if share is None:
            found: int | str | None = None
        else:
            walk = graph_walk(self.parts[0][1], wanted, share)
            found = "scan" if walk is None else walk
        if len(self._walks) < 64:
            self._walks[wanted] = found
        return found

    @cached_property
    def _walks(self) -> dict[int, int | str | None]:
        """``graph_walk``'s answers, by ``wanted``."""
        return {}

    @cached_property
    def _graph_share(self) -> float | None:
        """The share of the graph part's rows a search may return (None: no graph part)."""
        if not self.parts or not is_graph(self.parts[0][1]):
            return None
        total = int(self.parts[0][1].ntotal)
        if not self.columns.removed_rows or not total:
            return 1.0
        return int(np.count_nonzero(self.columns.alive[:total])) / total

    def lists_status(self) -> str:
        """What the precomputed lists are to this snapshot's queries (``recommend info``)."""
        k = self.settings.precomputed_k
        found = self.precomputed
        if found is None:
            if not k:
                return "none (precomputed_k=0)"
            ignored = self._lists[1]
            if ignored is not None:
                return f"not usable ({ignored}): every query searches"
            return "none: built before lists were precomputed, or with recency from now"
        what = f"{found.k} related articles for each of {found.rows:,} rows"
        if found.ranking != self.settings.ranking:
            return f"{what}, made with another ranking: not used until the next build"
        if found.rules != RULES:
            return f"{what}, made by older ranking rules: not used until the next build"
        changed = self.changed_rows
        if changed is None:
            return (
                f"{what}; more than {held.MAX_CHANGED:,} rows changed since: not used "
                "until the next build or compaction"
            )
        if found.walk != self.graph_walk(found.candidates + 1):
            return (
                f"{what}; {len(changed.rows):,} rows changed since, so many removed that the "
                "graph search walks wider: not used until recomputed (recommend precompute)"
            )
        return f"{what}; {len(changed.rows):,} rows changed since (checked per query)"

    @property
    def replaced(self) -> bool:
        """Whether a build or compaction made another version current since."""
        cache = self._pointer
        if not cache.file:
            cache.file = os.fspath(self.path / CURRENT)
        try:
            info = os.stat(cache.file)
        except OSError:
            return True
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if identity != cache.identity:
            cache.name, cache.identity = current_name(self.path), identity
        return cache.name != self.version.name

    @property
    def changed(self) -> bool:
        """Whether updates were committed to this version since."""
        return self.table.generation() != self.generation

    def updated(self, checksums: Checksums | None = None) -> Snapshot:
        """This snapshot with the rows and vectors committed since it was taken (``checksums``:
        of its segment files, computed beforehand).

        Only vectors past the rows already held are read: segments the writer merged since
        (same rows, a new file) cost nothing, and a segment read in part is cut to the new rows.
        """
        held_terms = sum(part.count for part in self.lexical)
        found = self.table.snapshot(self.generation, held_terms)
        generation, segments, rows, terms, edits = found
        held = sum(int(index.ntotal) for _, index in self.parts)
        parts = list(self.parts)
        for segment in segments:
            end = segment.first_row + segment.count
            if end <= held:
                continue
            index = read_segment(
                self.version, segment, self.manifest.dimension, mapped=True, checksums=checksums
            )
            if held > segment.first_row:
                part = new_vector_index(self.manifest.dimension, self.settings.vector_type)
                part.add(index.reconstruct_n(held - segment.first_row, end - held))
                index = part
            parts.append((held, index))
            held = end
        lexical = list(self.lexical)
        if terms:
            matrix = stack_blobs(terms, self.lexicon_size)
            lexical.append(LexicalPart.of_matrix(held_terms, matrix))
        first = 0 if self.generation < 0 else 1  # keep the big first part as it is
        if parts and is_graph(parts[0][1]):
            first = 1  # a graph is never copied into an exhaustive index
        if len(parts) - first > 4:  # one index searches faster than several
            parts = [*parts[:first], (parts[first][0], self._joined(parts[first:]))]
        if len(lexical) - first > 4:
            lexical = [*lexical[:first], LexicalPart.joined(lexical[first:])]
        columns = apply_rows(None if self.generation < 0 else self.columns, rows)
        if not held == held_terms + len(terms) == len(columns.ids):
            raise IndexDamagedError(
                f"index at {self.path} is damaged: {held} vectors and "
                f"{held_terms + len(terms)} term vectors for {len(columns.ids)} rows; "
                "build it again"
            )
        manifest, binding, shown = self.manifest, self.binding, self.shown_cache
        if self.generation >= 0 and rows:  # what they show of the rows written is read again
            shown = shown.carried(row[0] for row in rows)
        if self.generation >= 0:  # ``recommend tune`` may have stored new settings
            manifest = read_manifest(self.version)
            # New lists (``recommend precompute``), or a first build id, since.
            binding = self.table.binding()
        return replace(
            self,
            binding=binding,
            manifest=manifest,
            settings=Settings.from_dict(manifest.settings),
            generation=generation,
            overrides=Overrides.of_rows(edits) if edits else NO_OVERRIDES,
            parts=tuple(parts),
            columns=columns,
            lexical=tuple(lexical),
            shown_cache=shown,
        )

    def _joined(self, parts: Sequence[tuple[int, Any]]) -> Any:
        """One FAISS index holding the vectors of consecutive parts."""
        joined = new_vector_index(self.manifest.dimension, self.settings.vector_type)
        for _, index in parts:
            # Copied, not merge_from, which empties its source: an older snapshot that queries
            # are still using holds these parts.
            joined.add(index.reconstruct_n(0, index.ntotal))
        return joined

    def row(self, article_id: str) -> int:
        """The row of a live article; UnknownArticleError if there is none with this id."""
        try:
            return self.columns.row_of[str(article_id)]
        except KeyError:
            raise UnknownArticleError(
                f"article {quoted(article_id)} is not in index {self.path}"
            ) from None

    def shown(self, rows: Sequence[int]) -> dict[int, Shown]:
        """What related lists show of the stored articles at ``rows`` (removed ones left
        out), by row: from this snapshot's cache (``shown``), else read and checked."""
        return self.shown_cache.get(self, rows)

    def shown_pieces(self, rows: Sequence[int]) -> dict[int, tuple[str, str]]:
        """The id and piece of JSON of what related lists show of the stored articles at
        ``rows`` (removed ones left out), by row (``ShownCache.pieces``)."""
        return self.shown_cache.pieces(self, rows)

    def query(self, row: int) -> Query:
        """What the indexed article at ``row`` contributes to ranking as a query: its date
        (the recency reference), category, duplicate keys and language."""
        columns = self.columns
        day = float(columns.published_days[row])
        return Query(
            day=None if np.isnan(day) else day,
            category=int(columns.category_codes[row]),
            title_code=int(columns.title_codes[row]),
            url_code=int(columns.url_codes[row]),
            language=columns.language_code(columns.language(row)),
        )

    def vector(self, row: int) -> np.ndarray:
        return np.asarray(self.vectors(np.array([row]))[0])

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of these rows (float32), in the order given."""
        return vectors_of(self.parts, rows, self.manifest.dimension, self._views)

    @cached_property
    def _views(self) -> tuple[np.ndarray | None, ...]:
        """Each part's stored vectors as a numpy view (``stored_vectors``), made once."""
        return tuple(stored_vectors(index) for _, index in self.parts)

    def terms(self, row: int) -> TermVector:
        matrix = rows_matrix(self.lexical, np.array([row]))
        return TermVector(matrix.indices.astype(np.int32), matrix.data.astype(np.float32))

    def lexicon(self) -> Lexicon:
        """The lexicon of this version (read once, when text is first vectorized)."""
        cache = self._lexicon
        with cache.lock:
            if cache.lexicon is None:
                cache.lexicon = self.table.lexicon(self.settings.lexical_ngrams)
            return cache.lexicon

    def close(self) -> None:
        self.table.close()


def check(path: Path) -> CheckReport:
    """Verify every file and stored article of the index at ``path`` without opening it
    (``storage.check``), then, once they are sound, its derived files (the image, the
    precomputed lists): each one ignored, and why (``derived_problems``)."""
    report = check_index(path)
    if report.sound:
        try:
            problems, notes = derived_problems(path)
        except RecommenderError as exc:
            log.warning("derived files of %s not compared: %s", path, exc)
        else:
            report.problems.extend(problems)
            report.notes.extend(notes)
            report = replace(report, ignored_files=len(problems))
    return report


#: What a reader does instead of using an ignored derived file, by kind.
_INSTEAD = {"image": "opening reads every row instead", "lists": "queries search instead"}


def derived_problems(path: Path) -> tuple[list[str], list[str]]:
    """The problems and notes of the derived files of the index's current version
    (``recommend check``): every image and lists' file ignored, and why (a problem; a note
    for one written by an earlier version of recommender, before files were bound to their
    build), an image that differs from the articles as SQLite holds them (edited outside the
    engine), lists whose rows are not the stored articles or whose records are damaged.
    An ignored file changes no answer: the reader reads or searches instead, only slower."""
    version = current_version(path)
    problems, notes = _strays(version)
    plain = Snapshot.of_version(path, version, use_image=False)
    try:
        bound = (plain.binding, plain.generation, len(plain.columns.ids))

        def ignored(name: str, kind: str, exc: Ignored) -> None:
            if exc.older:
                notes.append(
                    f"ignored {name}: {exc}; {_INSTEAD[kind]} (slower) until recommend "
                    "precompute writes it again"
                )
            else:
                problems.append(
                    f"ignored {name}: {exc}; {_INSTEAD[kind]} (slower); delete it "
                    "(recommend precompute writes the version's own)"
                )

        used_image = None
        for _, found in image.candidates(version):
            if used_image is not None:
                notes.append(_older(found.name, used_image.name))
                continue
            try:
                image.load_image(found, plain.lexicon_size, *bound)
            except Ignored as exc:
                ignored(found.name, "image", exc)
            else:
                used_image = found
        if used_image is not None:
            mapped = Snapshot.of_version(path, version)
            try:
                differences = _differences(mapped, plain)
                if not mapped.from_image:
                    ignored(
                        used_image.name, "image", Ignored("does not agree with the stored rows")
                    )
            finally:
                mapped.close()
            problems += [
                f"{used_image.name} does not match the stored articles ({d})" for d in differences
            ]
        used_lists = None
        for found in precomputed.candidates(version):
            if used_lists is not None:
                notes.append(_older(found.name, used_lists.name))
                continue
            try:
                lists = precomputed.load(found, *bound)
            except Ignored as exc:
                ignored(found.name, "lists", exc)
            else:
                used_lists = found
                problems += _lists_problems(found.name, lists, plain.columns.ids)
                problems += _pieces_problems(found.name, lists, plain)
    finally:
        plain.close()
    return problems, notes


def _pieces_problems(name: str, lists: Precomputed, plain: Snapshot) -> list[str]:
    """Lists whose pieces of JSON (``read.shown``) differ from what the stored rows unchanged
    since give (a row edited outside the engine, its checksum made again): queries show
    those rows as the pieces hold them."""
    if not lists.has_pieces:
        return []
    changed = plain.table.changed_since(lists.generation, len(plain.columns.ids) + 1) or []
    since = set(changed)
    rows = [row for row in range(min(lists.rows, len(plain.columns.ids))) if row not in since]
    differ = []
    for start in range(0, len(rows), 500):
        part = rows[start : start + 500]
        for row, values in plain.table.checked_rows(part).items():
            piece = lists.piece(row)
            if piece is None or not names_language(piece, plain.columns.language(row)):
                continue  # read from SQLite instead (``read.shown``)
            if piece != shown_of(plain, row, listed_fields(values))[-1]:
                differ.append(row)
    if not differ:
        return []
    named = ", ".join(quoted(plain.columns.ids[row]) for row in differ[:5])
    more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
    return [
        f"{name} does not match the stored articles (what lists show of {named}{more}): "
        "queries show them as it holds them; run recommend precompute"
    ]


def _older(name: str, used: str) -> str:
    return f"ignored {name}: older than {used}, which is used (the next one written deletes it)"


def _lists_problems(name: str, lists: Precomputed, ids: list[str]) -> list[str]:
    """Lists bound to the version whose rows are not its stored articles (a database put
    back from a copy and written to since), or whose records are damaged."""
    if ids_digest(ids[: lists.rows]) != lists.ids:
        return [
            f"{name} was computed for other articles than the stored ones (their ids differ "
            "row by row) and queries use it; delete it, then run recommend precompute"
        ]
    damaged = lists.problems()
    if not damaged:
        return []
    return [
        f"{name}: the lists of {', '.join(damaged)} are damaged; those queries search "
        "instead (slower)"
    ]


def _strays(version: Path) -> tuple[list[str], list[str]]:
    """Entries of a version named as its derived files that a reader never looks at: a
    symbolic link or anything else but a plain file is a problem, a folder (someone's own,
    left alone by every write) a note."""
    problems, notes = [], []
    try:
        entries = sorted(os.scandir(version), key=lambda entry: entry.name)
    except OSError:
        return [], []
    for entry in entries:
        if not (image.NAME.fullmatch(entry.name) or precomputed.NAME.fullmatch(entry.name)):
            continue
        if entry.is_dir(follow_symlinks=False):
            notes.append(f"ignored {entry.name}: a folder, not a file the engine wrote")
        elif not entry.is_file(follow_symlinks=False):
            kind = "a symbolic link" if entry.is_symlink() else "not a plain file"
            problems.append(
                f"ignored {entry.name}: {kind}, never read (only files the engine wrote "
                "are); delete it"
            )
    return problems, notes


def _differences(mapped: Snapshot, plain: Snapshot) -> list[str]:
    ours, theirs = mapped.columns, plain.columns
    if ours.ids != theirs.ids:
        return ["ids"]
    found = []

    def named(codes: np.ndarray, names: tuple[str, ...]) -> list[str | None]:
        return [names[code] if code >= 0 else None for code in codes.tolist()]

    for label, same in (
        ("dates", np.array_equal(ours.published_days, theirs.published_days, equal_nan=True)),
        (
            "categories",
            named(ours.category_codes, ours.categories)
            == named(theirs.category_codes, theirs.categories),
        ),
        (
            "languages",
            named(ours.language_codes, ours.languages)
            == named(theirs.language_codes, theirs.languages),
        ),
        ("titles", np.array_equal(ours.title_codes, theirs.title_codes)),
        ("urls", np.array_equal(ours.url_codes, theirs.url_codes)),
        ("removed rows", np.array_equal(ours.alive, theirs.alive)),
    ):
        if not same:
            found.append(label)
    rows = np.arange(len(ours.ids))
    a, b = rows_matrix(mapped.lexical, rows), rows_matrix(plain.lexical, rows)
    if not (
        np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
    ):
        found.append("term vectors")
    return found
