"""The facade: ``Recommender`` builds an index, opens it once and answers related-article queries.

A web backend opens one ``Recommender`` at start-up and calls ``similar`` from any number of
threads; another process (or the same one) adds and removes articles. The CLI does the same
through ``recommender.cli``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .articles import Article, ReadReport, parse_datetime, read_articles
from .encode import Encoder, ProgressFn, SentenceTransformerEncoder, encode_all
from .errors import (
    IncompatibleIndexError,
    IndexDamagedError,
    InputFileError,
    InvalidArticlesError,
    InvalidQueryError,
    ModelError,
    RecommenderError,
    UnknownArticleError,
)
from .lexical import LexicalPart, Lexicon, TermVector, cosine_with, lexical_text, rows_matrix
from .lexical import fit as fit_lexicon
from .lexical import search as lexical_search
from .rerank import Listing, Pool, Query, dot, fuse, lexical_weight, rank, ranking_of
from .results import BuildReport, IndexInfo, Recommendation, UpdateReport
from .retrieve import Filters, allowed_rows, retrieve_parts
from .settings import BUILD_FIELDS, RANKING_FIELDS, Settings, check_ranking
from .store import (
    CURRENT,
    REUSABLE_FORMAT,
    SECONDS_PER_DAY,
    ArticleTable,
    Columns,
    Manifest,
    apply_rows,
    current_version,
    new_vector_index,
    read_manifest,
    read_segment,
)
from .text import clean_html, content_hash, embedding_text
from .writer import (
    Change,
    apply_change,
    maintain,
    replace_manifest,
    stored_vectors,
    write_version,
)
from .writer import writer_lock as _writer_lock

if TYPE_CHECKING:
    from .tune import TuneReport

DEFAULT_INDEX = Path("indexes") / "news"


class _Unset:
    def __repr__(self) -> str:
        return "<from index settings>"


#: Default of the per-query ranking options: use the value stored with the index.
FROM_SETTINGS: Any = _Unset()


def _versions() -> dict[str, str]:
    found = {}
    for name in ("recommender", "faiss-cpu", "sentence-transformers", "numpy"):
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def _day(value: datetime | date | str | None, *, end_of_day: bool = False) -> float | None:
    """A bound as days since 1970; a bare date as an ``until`` bound includes that whole day."""
    if value is None:
        return None
    bare_date = (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and len(value.strip()) == 10
    )
    try:
        moment = parse_datetime(value)
    except ValueError as exc:
        raise InvalidQueryError(f"date {exc}") from None
    assert moment is not None
    if bare_date and end_of_day:
        moment += timedelta(days=1) - timedelta(microseconds=1)
    return moment.timestamp() / SECONDS_PER_DAY


def _read_valid(
    files: Sequence[str | Path],
    field_map: Mapping[str, str] | None,
    drop_fields: Iterable[str],
    skip_invalid: bool,
) -> ReadReport:
    """Read input files; any invalid record fails the whole import unless skipped."""
    report = read_articles(files, field_map=field_map, drop_fields=drop_fields)
    if report.invalid and not skip_invalid:
        raise InvalidArticlesError(report.invalid)
    return report


def _texts_and_hashes(
    articles: Sequence[Article], settings: Settings
) -> tuple[list[str], list[str]]:
    """The text each article is embedded from, and its content hash."""
    texts = [embedding_text(a.title, a.body, settings.max_body_chars) for a in articles]
    return texts, [content_hash(text) for text in texts]


def _last_wins(articles: Iterable[Article]) -> tuple[list[Article], int]:
    """The articles with one per id (the last given), and how many earlier ones were dropped."""
    unique: dict[str, Article] = {}
    duplicates = 0
    for article in articles:
        if article.id in unique:
            duplicates += 1
            del unique[article.id]  # re-inserted below, so order follows the winning record
        unique[article.id] = article
    return list(unique.values()), duplicates


@dataclass(frozen=True)
class _Snapshot:
    """One consistent state of an index as loaded in memory; replaced whole on refresh."""

    version: Path
    manifest: Manifest
    settings: Settings
    table: ArticleTable
    generation: int
    parts: tuple[tuple[int, Any], ...]  # (first row, FAISS index), in row order
    columns: Columns
    lexical: tuple[LexicalPart, ...]  # TF-IDF rows, in row order
    lexicon_size: int

    @classmethod
    def load(cls, path: Path) -> _Snapshot:
        for attempt in range(5):
            version = current_version(path)
            try:
                manifest = read_manifest(version)
                table = ArticleTable(version)
                empty = apply_rows(None, [])
                settings = Settings.from_dict(manifest.settings)
                size = table.lexicon_size()
                return cls(version, manifest, settings, table, -1, (), empty, (), size).updated()
            except RecommenderError:
                # A writer may have replaced this version, or merged segments, while it loaded.
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def updated(self) -> _Snapshot:
        """This snapshot with the rows and vectors committed since it was taken.

        Only vectors past the rows already held are read: segments the writer merged since
        (same rows, a new file) cost nothing, and a segment read in part is cut to the new rows.
        """
        held_terms = sum(part.count for part in self.lexical)
        generation, segments, rows, terms = self.table.snapshot(self.generation, held_terms)
        held = sum(int(index.ntotal) for _, index in self.parts)
        parts = list(self.parts)
        for segment in segments:
            end = segment.first_row + segment.count
            if end <= held:
                continue
            index = read_segment(self.version, segment, self.manifest.dimension)
            if held > segment.first_row:
                part = new_vector_index(self.manifest.dimension, self.settings.vector_type)
                part.add(index.reconstruct_n(held - segment.first_row, end - held))
                index = part
            parts.append((held, index))
            held = end
        lexical = list(self.lexical)
        if terms:
            lexical.append(LexicalPart.of(held_terms, terms, self.lexicon_size))
        first = 0 if self.generation < 0 else 1  # keep the big first part as it is
        if len(parts) - first > 4:  # one index searches faster than several
            parts = [*parts[:first], (parts[first][0], self._joined(parts[first:]))]
        if len(lexical) - first > 4:
            lexical = [*lexical[:first], LexicalPart.joined(lexical[first:])]
        columns = apply_rows(None if self.generation < 0 else self.columns, rows)
        if not held == held_terms + len(terms) == len(columns.ids):
            raise IndexDamagedError(
                f"index at {self.version.parent} is damaged: {held} vectors and "
                f"{held_terms + len(terms)} term vectors for {len(columns.ids)} rows; "
                "build it again"
            )
        manifest = self.manifest
        if self.generation >= 0:  # ``recommend tune`` may have stored new settings
            manifest = read_manifest(self.version)
        return replace(
            self,
            manifest=manifest,
            settings=Settings.from_dict(manifest.settings),
            generation=generation,
            parts=tuple(parts),
            columns=columns,
            lexical=tuple(lexical),
        )

    def _joined(self, parts: Sequence[tuple[int, Any]]) -> Any:
        """One FAISS index holding the vectors of consecutive parts."""
        joined = new_vector_index(self.manifest.dimension, self.settings.vector_type)
        for _, index in parts:
            # Copied, not merge_from, which empties its source: an older snapshot that queries
            # are still using holds these parts.
            joined.add(index.reconstruct_n(0, index.ntotal))
        return joined

    def vector(self, row: int) -> np.ndarray:
        return np.asarray(self.vectors(np.array([row]))[0])

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of these rows (float32), in the order given."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.manifest.dimension), dtype=np.float32)
        for first_row, index in self.parts:
            inside = (rows >= first_row) & (rows < first_row + int(index.ntotal))
            if inside.any():
                out[inside] = index.reconstruct_batch(rows[inside] - first_row)
        return out

    def terms(self, row: int) -> TermVector:
        matrix = rows_matrix(self.lexical, np.array([row]))
        return TermVector(matrix.indices.astype(np.int32), matrix.data.astype(np.float32))


@dataclass(frozen=True)
class _Anchor:
    """What the query contributes: rows never to return, its date, category, duplicate keys."""

    rows: tuple[int, ...]
    day: float
    category: int
    keys: tuple[int, int]


@dataclass(frozen=True)
class _Ask:
    """The options of one query, as given; ranking options not given are FROM_SETTINGS."""

    given: tuple[tuple[str, Any], ...]  # (name, value) for each of RANKING_FIELDS
    same_category: bool
    categories: Iterable[str] | None
    since: datetime | date | str | None
    until: datetime | date | str | None
    exclude: tuple[str, ...]
    now: datetime | None

    def ranking(self, settings: Settings) -> dict[str, Any]:
        """The ranking settings of this query: as given, else the index's."""
        return {
            name: getattr(settings, name) if value is FROM_SETTINGS else value
            for name, value in self.given
        }


class Recommender:
    """An opened index: related articles for an indexed id or for new text.

    Open it once with ``Recommender.open(path)`` and share it; every method is safe to call
    from several threads at once.
    """

    def __init__(
        self,
        path: Path,
        snapshot: _Snapshot,
        encoder: Encoder | None = None,
        *,
        expected_model: str | None = None,
        auto_refresh: float | None = None,
    ) -> None:
        self.path = path
        self._snapshot = snapshot
        self._encoder = encoder
        self._expected_model = expected_model
        self._auto_refresh = auto_refresh
        self._next_check = time.monotonic() + (auto_refresh or 0.0)
        self._refresh_lock = threading.Lock()
        self._lexicon_lock = threading.Lock()
        self._lexicon_of: tuple[str, Lexicon] | None = None

    @property
    def manifest(self) -> Manifest:
        return self._snapshot.manifest

    @property
    def settings(self) -> Settings:
        return self._snapshot.settings

    # -- building -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        articles: Iterable[Article],
        path: str | Path = DEFAULT_INDEX,
        *,
        settings: Settings | None = None,
        encoder: Encoder | None = None,
        progress: ProgressFn | None = None,
        records: int | None = None,
        skipped: int = 0,
        duplicates: int = 0,
        wait: bool | float = False,
    ) -> BuildReport:
        """Embed ``articles`` and write them as the new index at ``path``.

        Articles whose embedded text is unchanged since the index already at ``path`` was
        written (same model, same text) keep their stored vectors instead of being embedded
        again, so rebuilding with other settings is quick.

        Args:
            articles: the articles; for an id given twice the last one wins.
            path: the index folder; an existing index there is replaced only once the new one
                is complete.
            settings: text and default ranking settings, stored with the index. By default
                the default text settings and, when an index is at ``path``, its ranking
                settings (e.g. those ``recommend tune`` stored), else the defaults.
            encoder: the model to embed with; by default ``settings.model``.
            progress: called with (encoded, total) as embedding goes on.
            records, skipped, duplicates: counts from reading, carried into the report.
            wait: if another process is writing the index, wait for it (True, or at most
                that many seconds) instead of raising IndexBusyError.

        Returns:
            A BuildReport with counts, seconds and the index size.
        """
        started = time.perf_counter()
        path = Path(path)
        settings = settings or Settings.from_dict(cls.stored_ranking(path))
        chosen, dropped = _last_wins(articles)
        duplicates += dropped
        model = encoder.name if encoder is not None else settings.model
        settings = replace(settings, model=model)
        texts, hashes = _texts_and_hashes(chosen, settings)
        lexicon, terms = fit_lexicon(
            [lexical_text(a.title, a.body) for a in chosen],
            settings.lexical_ngrams,
            settings.lexical_min_df,
        )
        with _writer_lock(path, wait):
            dimension, reused = _reusable_vectors(path, model, hashes)
            missing = [i for i, text_hash in enumerate(hashes) if text_hash not in reused]
            if missing:
                encoder = encoder or SentenceTransformerEncoder(
                    model, batch_size=settings.batch_size
                )
                dimension = int(encoder.dimension)
                fresh = encode_all(encoder, [texts[i] for i in missing], progress=progress)
            if dimension is None:  # nothing to embed and no index to take the size from
                encoder = encoder or SentenceTransformerEncoder(model)
                dimension = int(encoder.dimension)
            vectors = np.empty((len(chosen), dimension), dtype=np.float32)
            if missing:
                vectors[missing] = fresh
            for i, text_hash in enumerate(hashes):
                if text_hash in reused:
                    vectors[i] = reused[text_hash]
            manifest = Manifest(
                model=model,
                dimension=dimension,
                settings=settings.to_dict(),
                built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                build_seconds=round(time.perf_counter() - started, 3),
                versions=_versions(),
            )
            version = write_version(path, manifest, chosen, vectors, hashes, lexicon, terms)
        return BuildReport(
            index=str(path),
            articles=len(chosen),
            records=records if records is not None else len(chosen) + duplicates,
            skipped=skipped,
            duplicates=duplicates,
            seconds=time.perf_counter() - started,
            index_bytes=sum(p.stat().st_size for p in version.iterdir() if p.is_file()),
            model=model,
            reused=len(chosen) - len(missing),
        )

    @classmethod
    def build_from_files(
        cls,
        files: Sequence[str | Path],
        path: str | Path = DEFAULT_INDEX,
        *,
        field_map: Mapping[str, str] | None = None,
        drop_fields: Iterable[str] = (),
        skip_invalid: bool = False,
        settings: Settings | None = None,
        encoder: Encoder | None = None,
        progress: ProgressFn | None = None,
        wait: bool | float = False,
    ) -> BuildReport:
        """Read JSON Lines / CSV files and build the index at ``path`` from them.

        Every record is validated before any is embedded. Invalid ones raise
        InvalidArticlesError (naming file and line) unless ``skip_invalid`` is set, in which
        case they are left out and counted in the report's ``skipped``.
        """
        report = _read_valid(files, field_map, drop_fields, skip_invalid)
        if not report.articles:
            names = ", ".join(str(f) for f in files)
            raise InputFileError(f"no articles in {names}; nothing to index")
        return cls.build(
            report.articles,
            path,
            settings=settings,
            encoder=encoder,
            progress=progress,
            records=report.records,
            skipped=len(report.invalid),
            duplicates=report.duplicates,
            wait=wait,
        )

    @staticmethod
    def stored_ranking(path: str | Path) -> dict[str, Any]:
        """The ranking settings (all but the build's) of the index at ``path``; empty when
        there is none. A rebuild keeps them unless told otherwise."""
        try:
            manifest = read_manifest(current_version(Path(path)), oldest=REUSABLE_FORMAT)
        except RecommenderError:
            return {}
        known = Settings().to_dict()
        return {
            name: value
            for name, value in manifest.settings.items()
            if name in known and name not in BUILD_FIELDS
        }

    # -- opening and refreshing -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path = DEFAULT_INDEX,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        auto_refresh: bool | float = False,
    ) -> Recommender:
        """Open the index at ``path`` for queries.

        Args:
            path: the index folder written by ``build``.
            model: if given, the model the caller expects; an index built with another one
                raises IncompatibleIndexError.
            encoder: the encoder for ``similar_to_text`` and ``add``; by default the index's
                own model, loaded only when first needed.
            auto_refresh: also pick up changes written by others without calling
                ``refresh``: True checks at most once a second, a number every that many
                seconds (the check is a file read and one small SQLite query).
        """
        path = Path(path)
        snapshot = _Snapshot.load(path)
        expected = model or (encoder.name if encoder is not None else None)
        _check_model(path, snapshot.manifest, expected)
        interval = 1.0 if auto_refresh is True else (float(auto_refresh) or None)
        return cls(path, snapshot, encoder, expected_model=expected, auto_refresh=interval)

    def refresh(self) -> bool:
        """Load what was written to the index since it was opened or last refreshed.

        Cheap when little changed: only new vector segments and changed rows are read (a
        rebuilt index is loaded whole). Queries running meanwhile keep the state they started
        with. Returns whether anything changed.
        """
        with self._refresh_lock:
            return self._refresh()

    def _refresh(self) -> bool:
        old = self._snapshot
        if _current_name(self.path) != old.version.name:
            new = self._reload()
        elif old.table.generation() != old.generation:
            for attempt in range(3):
                try:
                    new = old.updated()
                    break
                except RecommenderError:
                    if _current_name(self.path) != old.version.name:
                        new = self._reload()  # compacted or rebuilt meanwhile
                        break
                    if attempt == 2:
                        raise
                    # else the writer merged away a segment file named in the list: read it again
        else:
            return False
        self._snapshot = new
        return True

    def _reload(self) -> _Snapshot:
        new = _Snapshot.load(self.path)
        _check_model(self.path, new.manifest, self._expected_model)
        if new.manifest.model != self._snapshot.manifest.model:
            self._encoder = None
        return new

    def _query_snapshot(self) -> _Snapshot:
        """The state to answer from. A rebuilt or compacted index is loaded before answering,
        so that removals made in its new version are never missed."""
        self._maybe_refresh()
        snapshot = self._snapshot
        if _current_name(self.path) != snapshot.version.name:
            with self._refresh_lock:
                if self._snapshot is snapshot:
                    with contextlib.suppress(RecommenderError):  # keep answering from the old
                        self._refresh()
            snapshot = self._snapshot
        return snapshot

    def _maybe_refresh(self) -> None:
        if self._auto_refresh is None or time.monotonic() < self._next_check:
            return
        if self._refresh_lock.acquire(blocking=False):  # one thread refreshes, others go on
            try:
                self._next_check = time.monotonic() + self._auto_refresh
                with contextlib.suppress(RecommenderError):  # answer from what is loaded;
                    self._refresh()  # the next check tries again
            finally:
                self._refresh_lock.release()

    def close(self) -> None:
        self._snapshot.table.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- updating -------------------------------------------------------------------------

    def add(
        self,
        articles: Iterable[Article],
        *,
        progress: ProgressFn | None = None,
        wait: bool | float = False,
    ) -> UpdateReport:
        """Insert new articles and update changed ones (same id) in the index on disk.

        Only articles whose embedded text (title and body start) changed are embedded;
        other changes (category, date, url, ...) rewrite the stored fields only. The change
        is committed at once, whole or not at all; this Recommender is refreshed after it,
        others see it on ``refresh``. One writer at a time: see ``wait`` in ``build``.
        """
        started = time.perf_counter()
        chosen, duplicates = _last_wins(articles)
        with _writer_lock(self.path, wait):
            version, manifest, settings = self._writable()
            texts, hashes = _texts_and_hashes(chosen, settings)
            table = ArticleTable(version)
            try:
                stored = table.live_hashes(a.id for a in chosen)
            finally:
                table.close()
            new, metadata, replaced_rows, embed = [], [], [], []
            for i, (article, text_hash) in enumerate(zip(chosen, hashes, strict=True)):
                found = stored.get(article.id)
                if found is not None and found[1] == text_hash:
                    metadata.append((found[0], article))
                    continue
                if found is not None:
                    replaced_rows.append(found[0])
                new.append((article, text_hash))
                embed.append(texts[i])
            vectors = encode_all(self._query_encoder(), embed, progress=progress) if embed else None
            terms = (
                self._lexicon(version, settings).vectorize(
                    lexical_text(article.title, article.body) for article, _ in new
                )
                if new
                else []
            )
            apply_change(
                version,
                manifest.dimension,
                settings.vector_type,
                Change(
                    new=new,
                    vectors=vectors,
                    metadata=metadata,
                    removed_rows=replaced_rows,
                    terms=terms,
                ),
            )
            compacted = self._compact_if_needed(version, manifest)
        self.refresh()
        return UpdateReport(
            index=str(self.path),
            added=len(new) - len(replaced_rows),
            replaced=len(replaced_rows),
            fields_only=len(metadata),
            removed=0,
            missing=0,
            duplicates=duplicates,
            embedded=len(embed),
            seconds=time.perf_counter() - started,
            compacted=compacted,
        )

    def add_from_files(
        self,
        files: Sequence[str | Path],
        *,
        field_map: Mapping[str, str] | None = None,
        drop_fields: Iterable[str] = (),
        skip_invalid: bool = False,
        progress: ProgressFn | None = None,
        wait: bool | float = False,
    ) -> UpdateReport:
        """``add`` the articles of JSON Lines / CSV files (validated as in ``build_from_files``)."""
        report = _read_valid(files, field_map, drop_fields, skip_invalid)
        result = self.add(report.articles, progress=progress, wait=wait)
        return replace(
            result, skipped=len(report.invalid), duplicates=result.duplicates + report.duplicates
        )

    def remove(self, ids: Iterable[str], *, wait: bool | float = False) -> UpdateReport:
        """Take articles out of the index: no query returns them from the moment this returns,
        in this process or any other, refreshed or not. Unknown ids are counted, not errors."""
        started = time.perf_counter()
        wanted = list(dict.fromkeys(str(i) for i in ids))
        with _writer_lock(self.path, wait):
            version, manifest, settings = self._writable()
            removed = apply_change(
                version, manifest.dimension, settings.vector_type, Change(removed_ids=wanted)
            )
            compacted = self._compact_if_needed(version, manifest)
        self.refresh()
        return UpdateReport(
            index=str(self.path),
            removed=removed,
            missing=len(wanted) - removed,
            seconds=time.perf_counter() - started,
            compacted=compacted,
        )

    def _writable(self) -> tuple[Path, Manifest, Settings]:
        version = current_version(self.path)
        manifest = read_manifest(version)
        if manifest.model != self.manifest.model:
            raise IncompatibleIndexError(
                f"index at {self.path} was rebuilt with model {manifest.model!r} since it was "
                f"opened with {self.manifest.model!r}; open it again"
            )
        return version, manifest, Settings.from_dict(manifest.settings)

    def _lexicon(self, version: Path, settings: Settings) -> Lexicon:
        """The lexicon of a version (read once; a build or compaction makes a new version)."""
        with self._lexicon_lock:
            if self._lexicon_of is None or self._lexicon_of[0] != version.name:
                table = ArticleTable(version)
                try:
                    self._lexicon_of = (version.name, table.lexicon(settings.lexical_ngrams))
                finally:
                    table.close()
            return self._lexicon_of[1]

    def _compact_if_needed(self, version: Path, manifest: Manifest) -> bool:
        return maintain(self.path, version, manifest) == "compacted"

    # -- looking up -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._snapshot.columns.row_of)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._snapshot.columns.row_of

    def ids(self) -> list[str]:
        """Every indexed article id, in index order."""
        columns = self._snapshot.columns
        return [columns.ids[row] for row in sorted(columns.row_of.values())]

    def _row(self, snapshot: _Snapshot, article_id: str) -> int:
        try:
            return snapshot.columns.row_of[str(article_id)]
        except KeyError:
            raise UnknownArticleError(
                f"article {article_id!r} is not in index {self.path}"
            ) from None

    def get(self, article_id: str) -> Article:
        """The stored article with this id; UnknownArticleError if there is none."""
        snapshot = self._snapshot
        row = self._row(snapshot, article_id)
        found = snapshot.table.articles([row])
        if row not in found:  # removed since the last refresh
            raise UnknownArticleError(f"article {article_id!r} is not in index {self.path}")
        return found[row]

    def info(self) -> IndexInfo:
        """Counts, model, settings and size of the index."""
        snapshot = self._snapshot
        return IndexInfo(
            index=str(self.path),
            version=snapshot.version.name,
            articles=len(self),
            categories=len(snapshot.columns.live_categories),
            model=snapshot.manifest.model,
            dimension=snapshot.manifest.dimension,
            format_version=snapshot.manifest.format_version,
            built_at=snapshot.manifest.built_at,
            build_seconds=snapshot.manifest.build_seconds,
            bytes_on_disk=sum(p.stat().st_size for p in snapshot.version.iterdir() if p.is_file()),
            settings=dict(snapshot.manifest.settings),
            generation=snapshot.generation,
            removed_rows=int((~snapshot.columns.alive).sum()),
            segments=len(snapshot.parts),
        )

    # -- querying -------------------------------------------------------------------------

    def similar(
        self,
        article_id: str,
        k: int = 10,
        *,
        half_life_days: float | None = FROM_SETTINGS,
        category_boost: float = FROM_SETTINGS,
        recency_weight: float = FROM_SETTINGS,
        recency_from: str = FROM_SETTINGS,
        lexical_weight: float = FROM_SETTINGS,
        lexical_weight_short: float = FROM_SETTINGS,
        neighbour_weight: float = FROM_SETTINGS,
        mmr_lambda: float = FROM_SETTINGS,
        same_category: bool = False,
        categories: Iterable[str] | None = None,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        exclude: Iterable[str] = (),
        now: datetime | None = None,
    ) -> list[Recommendation]:
        """The ``k`` articles most related to the indexed article ``article_id``, best first.

        Args:
            article_id: an id in the index (UnknownArticleError otherwise).
            k: how many to return (0 gives an empty list; fewer come back if fewer qualify).
            half_life_days: recency half-life; None turns recency off.
            category_boost: extra weight for the query's category; 0.0 turns it off.
            recency_weight: how much recency can change a score (0 to 1).
            recency_from: "query" measures age from the query article's date, "now" from
                ``now`` (default: the current time).
            lexical_weight: the TF-IDF share of the similarity (0 = embedding only, 1 =
                TF-IDF only) for a query with body text; ``lexical_weight_short`` for a
                headline-length query.
            neighbour_weight: how much closeness to the query's nearest candidates counts
                (0 turns it off).
            mmr_lambda: below 1, trade score for diversity (maximal marginal relevance).
            same_category: only articles in the query article's category.
            categories: only articles in these categories.
            since, until: only articles published in this range (bounds included; a bare
                date as ``until`` includes that day).
            exclude: ids never to return.
            now: the current time, for ``recency_from="now"``.

        Left out of the list: the query article and its copies (same url, same normalised
        title, or nearly the same text); copies of each other are listed once (see
        ``Recommendation.copies``). Every option left out takes the index's setting. Neither
        the model nor torch is loaded.
        """
        snapshot = self._query_snapshot()
        row = self._row(snapshot, article_id)
        columns = snapshot.columns
        anchor = _Anchor(
            rows=(row,),
            day=float(columns.published_days[row]),
            category=int(columns.category_codes[row]),
            keys=(int(columns.title_codes[row]), int(columns.url_codes[row])),
        )
        given = locals()  # the ranking options, by name, as this method received them
        ask = _Ask(
            tuple((name, given[name]) for name in RANKING_FIELDS),
            same_category,
            categories,
            since,
            until,
            tuple(exclude),
            now,
        )
        return self._related(snapshot, snapshot.vector(row), snapshot.terms(row), k, anchor, ask)

    def similar_to_text(
        self,
        text: str,
        k: int = 10,
        *,
        category: str | None = None,
        published_at: datetime | str | None = None,
        half_life_days: float | None = FROM_SETTINGS,
        category_boost: float = FROM_SETTINGS,
        recency_weight: float = FROM_SETTINGS,
        recency_from: str = FROM_SETTINGS,
        lexical_weight: float = FROM_SETTINGS,
        lexical_weight_short: float = FROM_SETTINGS,
        neighbour_weight: float = FROM_SETTINGS,
        mmr_lambda: float = FROM_SETTINGS,
        same_category: bool = False,
        categories: Iterable[str] | None = None,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        exclude: Iterable[str] = (),
        now: datetime | None = None,
    ) -> list[Recommendation]:
        """The ``k`` indexed articles most related to a text that is not indexed (yet).

        ``text`` is embedded like an article (first line as its title, HTML cleaned). Its
        ``category`` and ``published_at`` play the query article's part in the weighting; an
        undated text is taken to be published ``now``. Other arguments as in ``similar``.
        """
        snapshot = self._query_snapshot()
        cleaned = clean_html(text)
        if not cleaned:
            raise InvalidQueryError("the query text is empty")
        title, _, body = cleaned.partition("\n")
        vector = self._query_encoder().encode(
            [embedding_text(title, body, snapshot.settings.max_body_chars)]
        )[0]
        terms = self._lexicon(snapshot.version, snapshot.settings).vectorize(
            [lexical_text(title, body)]
        )[0]
        try:
            moment = parse_datetime(published_at) if published_at is not None else None
        except ValueError as exc:
            raise InvalidQueryError(f"published_at {exc}") from None
        moment = moment or now or datetime.now(timezone.utc)
        anchor = _Anchor(
            rows=(),
            day=moment.timestamp() / SECONDS_PER_DAY,
            category=snapshot.columns.category_code(category),
            keys=(-1, -1),
        )
        given = locals()  # the ranking options, by name, as this method received them
        ask = _Ask(
            tuple((name, given[name]) for name in RANKING_FIELDS),
            same_category,
            categories,
            since,
            until,
            tuple(exclude),
            now,
        )
        return self._related(snapshot, vector, terms, k, anchor, ask)

    def candidates(self, article_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The candidate stage of ``similar(article_id, k)`` on its own, without filters.

        Returns (id, similarity) pairs: the embedding's nearest and the TF-IDF's best
        together, by their fused similarity (the index's lexical weight), before neighbours,
        reranking and copies: what ranking chooses from. Useful to see why an article is
        missing.
        """
        snapshot = self._snapshot
        row = self._row(snapshot, article_id)
        terms = snapshot.terms(row)
        rows, pool = self._pool(snapshot, snapshot.vector(row), terms, k, {row}, Filters())
        fused = fuse(pool.dense, pool.lexical, lexical_weight(pool, ranking_of(snapshot.settings)))
        order = np.lexsort((rows, -fused))
        ids = snapshot.columns.ids
        return [(ids[int(rows[i])], float(fused[i])) for i in order]

    def _candidate_count(self, snapshot: _Snapshot, k: int) -> int:
        return min(len(snapshot.columns.ids), max(snapshot.settings.candidates, 3 * int(k)))

    def _pool(
        self,
        snapshot: _Snapshot,
        vector: np.ndarray,
        terms: TermVector,
        k: int,
        drop: set[int],
        filters: Filters,
    ) -> tuple[np.ndarray, Pool]:
        """The candidate rows (the embedding's nearest, then the TF-IDF's best not among them)
        and their pool."""
        columns = snapshot.columns
        allowed = allowed_rows(columns, filters) if filters.active else None
        if not columns.alive.all():
            allowed = columns.alive if allowed is None else allowed & columns.alive
        count = self._candidate_count(snapshot, k)
        dense = retrieve_parts(snapshot.parts, vector, count, drop=drop, allowed=allowed)
        lexical_rows, _ = lexical_search(snapshot.lexical, terms, count, drop=drop, allowed=allowed)
        rows = np.concatenate([dense.rows, lexical_rows[~np.isin(lexical_rows, dense.rows)]])
        vectors = snapshot.vectors(rows)
        matrix = rows_matrix(snapshot.lexical, rows)
        pool = Pool(
            dense=dot(vectors, np.asarray(vector, dtype=np.float32)[None, :])[:, 0],
            lexical=cosine_with(matrix, terms),
            vectors=vectors,
            terms=matrix,
            published_days=columns.published_days[rows],
            category_codes=columns.category_codes[rows],
            title_codes=columns.title_codes[rows],
            url_codes=columns.url_codes[rows],
            query_terms=len(terms.terms),
        )
        return rows, pool

    def _replayable(
        self, article_id: str, k: int, *, until_day: float | None = None
    ) -> tuple[np.ndarray, Pool, Query]:
        """The candidate pool of ``similar(article_id, k)`` (only articles published up to
        ``until_day`` if given), for ranking it again with other settings (``tune``)."""
        snapshot = self._snapshot
        row = self._row(snapshot, article_id)
        columns = snapshot.columns
        rows, pool = self._pool(
            snapshot,
            snapshot.vector(row),
            snapshot.terms(row),
            k,
            {row},
            Filters(until_day=until_day),
        )
        day = float(columns.published_days[row])
        query = Query(
            day=None if np.isnan(day) else day,
            category=int(columns.category_codes[row]),
            title_code=int(columns.title_codes[row]),
            url_code=int(columns.url_codes[row]),
        )
        return rows, pool, query

    def tune(
        self,
        relevance: Mapping[str, frozenset[str]],
        *,
        queries: int = 2000,
        seed: int = 0,
        dry_run: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
        wait: bool | float = False,
    ) -> TuneReport:
        """Search the ranking settings on labelled history (``recommend tune``).

        Args:
            relevance: article id -> ids of its related articles, e.g. from
                ``recommender.evaluate.relevance_from_labels`` or ``relevance_from_pairs``.
            queries: use a seeded sample of at most this many queries.
            seed: seed of the sample and of a random split.
            dry_run: only report; never store the new settings.
            progress: called with (stage, done, total).
            wait: as in ``build``, when the new settings are stored.

        Returns:
            A TuneReport: the split, old and new settings, their metrics on the tuning and
            held-out queries, and whether the new ones were stored (only when they win on the
            held-out queries, see recommender/tune.py).
        """
        from .tune import tune

        return tune(
            self,
            relevance,
            queries=queries,
            seed=seed,
            dry_run=dry_run,
            progress=progress,
            wait=wait,
        )

    def store_settings(self, settings: Settings, *, wait: bool | float = False) -> None:
        """Make ``settings`` the index's own (its query-time defaults); the build-time ones
        (model, text, vectors, lexicon) cannot change without a build."""
        with _writer_lock(self.path, wait):
            version, manifest, stored = self._writable()
            changed = [
                name
                for name in BUILD_FIELDS
                if name != "batch_size" and getattr(settings, name) != getattr(stored, name)
            ]
            if changed:
                raise InvalidQueryError(
                    f"{', '.join(changed)} can only change with a new build (recommend build-index)"
                )
            replace_manifest(version, replace(manifest, settings=settings.to_dict()))
        self.refresh()

    def _query_encoder(self) -> Encoder:
        manifest = self._snapshot.manifest
        if self._encoder is None:
            self._encoder = SentenceTransformerEncoder(
                manifest.model, batch_size=self._snapshot.settings.batch_size
            )
        if self._encoder.dimension != manifest.dimension:
            raise ModelError(
                f"model {self._encoder.name!r} gives vectors of dimension "
                f"{self._encoder.dimension}, the index at {self.path} holds {manifest.dimension}"
            )
        return self._encoder

    def _related(
        self,
        snapshot: _Snapshot,
        vector: np.ndarray,
        terms: TermVector,
        k: int,
        anchor: _Anchor,
        ask: _Ask,
    ) -> list[Recommendation]:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise InvalidQueryError(f"k must be a whole number, got {k!r}")
        if k < 0:
            raise InvalidQueryError(f"k must be 0 or more, got {k}")
        settings = snapshot.settings
        chosen = ask.ranking(settings)
        check_ranking(**chosen)
        columns = snapshot.columns
        filters = self._filters(
            columns, anchor.category, ask.same_category, ask.categories, ask.since, ask.until
        )
        if k == 0:
            return []

        drop = set(anchor.rows)
        drop.update(columns.row_of[i] for i in ask.exclude if i in columns.row_of)
        rows, pool = self._pool(snapshot, vector, terms, k, drop, filters)
        if chosen["recency_from"] == "now":
            moment = ask.now or datetime.now(timezone.utc)
            reference: float | None = moment.timestamp() / SECONDS_PER_DAY
        else:
            reference = None if np.isnan(anchor.day) else anchor.day
        ranking = ranking_of({**settings.to_dict(), **chosen})
        query = Query(
            day=reference,
            category=anchor.category,
            title_code=anchor.keys[0],
            url_code=anchor.keys[1],
            indexed=bool(anchor.rows),
        )
        listing = rank(pool, ranking, query, limit=k + 5)
        results: list[Recommendation] = []
        # Rows removed since the last refresh are skipped here: the table knows at once.
        stored = snapshot.table.articles([int(rows[g[0]]) for g in listing.groups])
        for group in listing.groups:
            if len(results) == k:
                break
            article = stored.get(int(rows[group[0]]))
            if article is not None:
                results.append(_recommendation(article, rows, group, pool, listing, columns.ids))
        return results

    def _filters(
        self,
        columns: Columns,
        query_category: int,
        same_category: bool,
        categories: Iterable[str] | None,
        since: datetime | date | str | None,
        until: datetime | date | str | None,
    ) -> Filters:
        codes: set[int] | None = None
        if categories is not None:
            names = [categories] if isinstance(categories, str) else list(categories)
            unknown = [name for name in names if name not in columns.categories]
            if unknown:
                known = ", ".join(columns.categories[:12]) or "none"
                raise InvalidQueryError(
                    f"category {unknown[0]!r} is not in index {self.path} (known: {known})"
                )
            codes = {columns.category_code(name) for name in names}
        if same_category and query_category >= 0:
            codes = {query_category} if codes is None else codes & {query_category}
        since_day = _day(since)
        until_day = _day(until, end_of_day=True)
        if since_day is not None and until_day is not None and since_day > until_day:
            raise InvalidQueryError(f"since ({since}) is after until ({until})")
        return Filters(
            categories=frozenset(codes) if codes is not None else None,
            since_day=since_day,
            until_day=until_day,
        )


def _recommendation(
    article: Article,
    rows: np.ndarray,
    group: np.ndarray,
    pool: Pool,
    listing: Listing,
    ids: Sequence[str],
) -> Recommendation:
    shown = int(group[0])
    return Recommendation(
        id=article.id,
        score=float(listing.scores[group].max()),
        similarity=float(listing.similarity[shown]),
        recency_factor=float(listing.recency[shown]),
        category_factor=float(listing.category[shown]),
        title=article.title,
        category=article.category,
        published_at=article.published_at,
        url=article.url,
        source=article.source,
        lang=article.lang,
        tags=article.tags,
        metadata=dict(article.metadata),
        dense_similarity=float(pool.dense[shown]),
        lexical_similarity=float(pool.lexical[shown]),
        copies=len(group),
        copy_ids=tuple(ids[int(rows[i])] for i in group[1:]),
    )


def _current_name(path: Path) -> str | None:
    try:
        return (path / CURRENT).read_text().strip()
    except OSError:
        return None


def _check_model(path: Path, manifest: Manifest, expected: str | None) -> None:
    if expected is not None and expected != manifest.model:
        raise IncompatibleIndexError(
            f"index at {path} was built with model {manifest.model!r}, "
            f"not {expected!r}; rebuild it or use that model"
        )


def _reusable_vectors(
    path: Path, model: str, hashes: Sequence[str]
) -> tuple[int | None, dict[str, np.ndarray]]:
    """Stored vectors of the index at ``path`` for these content hashes, if it was built with
    ``model``: (its dimension, hash -> vector). Nothing when there is no usable index."""
    try:
        version = current_version(path)
        manifest = read_manifest(version, oldest=REUSABLE_FORMAT)
    except RecommenderError:
        return None, {}
    if manifest.model != model:
        return None, {}
    wanted = set(hashes)
    table = ArticleTable(version)
    try:
        rows = {h: row for row, h in table.live_hashes().values() if h in wanted}
    finally:
        table.close()
    if not rows:
        return manifest.dimension, {}
    found = stored_vectors(version, manifest.dimension, list(rows.values()))
    return manifest.dimension, dict(zip(rows, found, strict=True))
