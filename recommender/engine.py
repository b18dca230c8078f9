"""The facade: ``Recommender`` builds an index, opens it once and answers related-article queries.

A web backend opens one ``Recommender`` at start-up and calls ``similar`` from any number of
threads; another process (or the same one) adds and removes articles. The CLI does the same
through ``recommender.cli``. The work is done by the modules it composes, in data-flow order:
``articles`` (reading), ``writer.IndexWriter`` (writing), ``snapshot.Snapshot`` (what a reader
holds), ``retrieve`` (candidates), ``rerank`` (the order) and ``tune``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .articles import Article, check_article, parse_datetime, read_valid
from .errors import (
    IncompatibleIndexError,
    InputFileError,
    InvalidQueryError,
    RecommenderError,
    SettingsError,
    UnknownArticleError,
)
from .language import effective as effective_language
from .lexical import TermVector, lexical_text
from .read.rerank import Listing, Query, fuse, fusion_weight, rank
from .read.retrieve import Filters, Pool, RowFilter, candidate_count, gather
from .read.snapshot import Snapshot, answers_problems, image_problems
from .results import (
    BuildReport,
    CheckReport,
    IndexInfo,
    Recommendation,
    ReplicaReport,
    UpdateReport,
)
from .settings import AUTO_MODEL, MULTILINGUAL_MODEL, MULTILINGUAL_NAMES, Ranking, Settings
from .storage.check import check_index
from .storage.columns import SECONDS_PER_DAY, Columns
from .storage.layout import current_version
from .storage.lists import current_list
from .storage.manifest import Manifest, read_manifest
from .storage.vectors import describe_search
from .text import clean_html, embedding_text

if TYPE_CHECKING:  # imported where used: a query needs none of them (see "Heavy imports")
    from .embedding.encode import Encoder, ProgressFn
    from .embedding.supplied import MissingVectors, SuppliedVectors
    from .quality.tune import TuneReport
    from .write.writer import IndexWriter

DEFAULT_INDEX = Path("indexes") / "news"
#: A query's filters when none is given: what the precomputed lists were made with.
NO_FILTERS = Filters()


def _checked(articles: Iterable[Article]) -> list[Article]:
    """The articles, each as the file reader would accept it (InvalidArticleError if not):
    Article values made in Python get the same checks as records read from a file."""
    chosen = list(articles)
    for article in chosen:
        check_article(article)
    return chosen


def _supplied(path: str | Path | None) -> SuppliedVectors | None:
    """The vectors file given to a build or an update, read and checked on its own."""
    from .embedding.supplied import read_vectors

    return None if path is None else read_vectors(path)


def _check_model(path: Path, snapshot: Snapshot, expected: str | None) -> None:
    if expected in MULTILINGUAL_NAMES:
        expected = MULTILINGUAL_MODEL
    if expected not in (None, AUTO_MODEL) and expected != snapshot.manifest.model:
        raise IncompatibleIndexError(
            f"index at {path} was built with model {snapshot.manifest.model!r}, "
            f"not {expected!r}; rebuild it or use that model"
        )


class Recommender:
    """An opened index: related articles for an indexed id or for new text.

    Open it once with ``Recommender.open(path)`` and share it; every method is safe to call
    from several threads at once.
    """

    def __init__(
        self,
        path: Path,
        snapshot: Snapshot | None,
        encoder: Encoder | None = None,
        *,
        expected_model: str | None = None,
        auto_refresh: float | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        self.path = path
        self._held = snapshot  # None until first needed, when opened with ``lazy``
        self._opened_manifest = manifest if snapshot is None else snapshot.manifest
        self._encoder = encoder
        self._expected_model = expected_model
        self._auto_refresh = auto_refresh
        self._next_check = time.monotonic() + (auto_refresh or 0.0)
        self._refresh_lock = threading.Lock()
        self._writer_lock = threading.Lock()
        self._writer: IndexWriter | None = None

    @property
    def _snapshot(self) -> Snapshot:
        held = self._held
        if held is None:  # opened with ``lazy``: loaded by the first thread that needs it
            with self._refresh_lock:
                if self._held is None:
                    loaded = Snapshot.load(self.path)
                    _check_model(self.path, loaded, self._expected_model)
                    self._held = loaded
                held = self._held
        return held

    @_snapshot.setter
    def _snapshot(self, snapshot: Snapshot) -> None:
        self._held = snapshot

    @property
    def snapshot(self) -> Snapshot:
        """The state queries are answered from now (replaced whole by each refresh)."""
        return self._snapshot

    @property
    def manifest(self) -> Manifest:
        if self._held is None and self._opened_manifest is not None:
            return self._opened_manifest
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
        lists_progress: ProgressFn | None = None,
        records: int | None = None,
        skipped: int = 0,
        duplicates: int = 0,
        wait: bool | float = False,
        vectors: str | Path | None = None,
        missing_vectors: MissingVectors = "embed",
    ) -> BuildReport:
        """Embed ``articles`` and write them as the new index at ``path``.

        Articles whose embedded text is unchanged since the index already at ``path`` was
        written (same model, same text) keep their stored vectors instead of being embedded
        again, so rebuilding with other settings is quick.

        Args:
            articles: the articles; for an id given twice the last one wins.
            path: the index folder; an existing index there is replaced only once the new one
                is complete.
            settings: build settings and default ranking, stored with the index. By default
                the default build settings and, when an index is at ``path``, its ranking
                (e.g. what ``recommend tune`` stored), else the default ranking.
            encoder: the model to embed with; by default ``settings.model``.
            progress: called with (encoded, total) as embedding goes on.
            lists_progress: called with (done, total) as each article's list is precomputed
                (``Settings.precomputed_k``), after embedding.
            records, skipped, duplicates: counts from reading, carried into the report.
            wait: if another process is writing the index, wait for it (True, or at most
                that many seconds) instead of raising IndexBusyError.
            vectors: a file (or folder of Parquet shards) of embeddings computed elsewhere,
                stored instead of embedding those articles (see recommender/supplied.py):
                refused whole (SuppliedVectorsError) for another model or dimension, a row
                for an article not given, or a damaged file; a row for another text (its
                content hash, ``article_content_hash``, differs) is left out and the article
                embedded here. With the model "auto" the vectors' model is used.
            missing_vectors: what to do with articles ``vectors`` does not cover (no row, or
                a stale one) and the index does not already hold: "embed" them here, or
                "refuse" the build (SuppliedVectorsError counting each kind).

        Returns:
            A BuildReport with counts (``supplied``, ``stale``, ``without_vector``,
            ``embedded``, ``reused``),
            seconds and the index size.
        """
        from .write.writer import IndexWriter

        writer = IndexWriter(path, encoder=encoder, wait=wait)
        return writer.build(
            _checked(articles),
            settings,
            progress=progress,
            lists_progress=lists_progress,
            records=records,
            skipped=skipped,
            duplicates=duplicates,
            vectors=_supplied(vectors),
            missing_vectors=missing_vectors,
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
        lists_progress: ProgressFn | None = None,
        wait: bool | float = False,
        vectors: str | Path | None = None,
        missing_vectors: MissingVectors = "embed",
    ) -> BuildReport:
        """Read JSON Lines / CSV files and build the index at ``path`` from them.

        Every record is validated before any is embedded. Invalid ones raise
        InvalidArticlesError (naming file and line) unless ``skip_invalid`` is set, in which
        case they are left out and counted in the report's ``skipped``.
        """
        report = read_valid(files, field_map, drop_fields, skip_invalid)
        if not report.articles:
            names = ", ".join(str(f) for f in files)
            raise InputFileError(f"no articles in {names}; nothing to index")
        return cls.build(
            report.articles,
            path,
            settings=settings,
            encoder=encoder,
            progress=progress,
            lists_progress=lists_progress,
            records=report.records,
            skipped=len(report.invalid),
            duplicates=report.duplicates,
            wait=wait,
            vectors=vectors,
            missing_vectors=missing_vectors,
        )

    @staticmethod
    def stored_ranking(path: str | Path) -> Ranking | None:
        """The ranking settings of the index at ``path`` (None when there is none); a rebuild
        keeps them unless told otherwise."""
        from .write.writer import stored_ranking

        return stored_ranking(Path(path))

    @staticmethod
    def check(path: str | Path = DEFAULT_INDEX) -> CheckReport:
        """Verify every file and stored article of the index at ``path`` (``recommend check``).

        Reads only, without opening the index for queries, so that it reports what would stop
        ``open`` too. Returns a ``CheckReport``: ``sound`` when ``problems`` is empty.
        """
        report = check_index(Path(path))
        if report.sound:  # the image is compared with the articles once they are known sound
            with contextlib.suppress(RecommenderError):
                report.problems.extend(image_problems(Path(path)))
                report.problems.extend(answers_problems(Path(path)))
        return report

    @staticmethod
    def replicate(
        path: str | Path, replica: str | Path, *, wait: bool | float = False
    ) -> ReplicaReport:
        """Copy the index at ``path`` to ``replica`` for read-only serving (``recommend
        replicate``), from one consistent state, without stopping its writer or readers.

        The copy is a new version folder of ``replica``, named in its ``CURRENT`` only once
        complete and flushed; older copies are then deleted. Nothing is written when
        ``replica`` already holds the current state, so it can run every minute. ``replica``
        must be missing, empty or an earlier replica, outside ``path``; writers refuse to write
        to a replica. ``wait``: if another ``replicate`` is writing ``replica``, False fails
        with IndexBusyError, True waits, a number waits that many seconds at most. The writer
        of ``path`` is never waited for. Returns a ``ReplicaReport``.
        """
        from .write.replicate import replicate

        return replicate(Path(path), Path(replica), wait=wait)

    # -- opening and refreshing -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path = DEFAULT_INDEX,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        auto_refresh: bool | float = False,
        lazy: bool = False,
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
            lazy: read only the manifest now (IndexNotFoundError, the model check) and the
                rest when first needed: for a process that only adds or removes articles,
                which never needs the index in memory.
        """
        path = Path(path)
        expected = model or (encoder.name if encoder is not None else None)
        interval = 1.0 if auto_refresh is True else (float(auto_refresh) or None)
        if lazy:
            manifest = read_manifest(current_version(path))
            if expected in MULTILINGUAL_NAMES:
                expected = MULTILINGUAL_MODEL
            if expected not in (None, AUTO_MODEL) and expected != manifest.model:
                raise IncompatibleIndexError(
                    f"index at {path} was built with model {manifest.model!r}, "
                    f"not {expected!r}; rebuild it or use that model"
                )
            return cls(
                path,
                None,
                encoder,
                expected_model=expected,
                auto_refresh=interval,
                manifest=manifest,
            )
        snapshot = Snapshot.load(path)
        _check_model(path, snapshot, expected)
        return cls(path, snapshot, encoder, expected_model=expected, auto_refresh=interval)

    def refresh(self) -> bool:
        """Load what was written to the index since it was opened or last refreshed.

        Cheap when little changed: only new vector segments and changed rows are read (a
        rebuilt index is loaded whole). Queries running meanwhile keep the state they started
        with. Returns whether anything changed.
        """
        if self._held is None:
            return False  # nothing loaded yet: the first use loads what is current
        with self._refresh_lock:
            return self._refresh()

    def _refresh(self) -> bool:
        old = self._snapshot
        if old.replaced:
            new = self._reload()
        elif old.changed:
            for attempt in range(3):
                try:
                    new = old.updated()
                    break
                except RecommenderError:
                    if old.replaced:
                        new = self._reload()  # compacted or rebuilt meanwhile
                        break
                    if attempt == 2:
                        raise
                    # else the writer merged away a segment file named in the list: read it again
        else:
            return False
        self._snapshot = new
        return True

    def _reload(self) -> Snapshot:
        new = Snapshot.load(self.path)
        _check_model(self.path, new, self._expected_model)
        if new.manifest.model != self._snapshot.manifest.model:
            with self._writer_lock:
                self._encoder = None
                self._writer = None
        return new

    def _current(self) -> Snapshot:
        """The state to answer from. A rebuilt or compacted index is loaded before answering,
        so that removals made in its new version are never missed."""
        self._maybe_refresh()
        snapshot = self._snapshot
        if snapshot.replaced:
            with self._refresh_lock:
                if self._snapshot is snapshot:
                    with contextlib.suppress(RecommenderError):  # keep answering from the old
                        self._refresh()
            snapshot = self._snapshot
        return snapshot

    def _maybe_refresh(self) -> None:
        if self._auto_refresh is None or time.monotonic() < self._next_check:
            return
        if self._held is None:
            return
        if self._refresh_lock.acquire(blocking=False):  # one thread refreshes, others go on
            try:
                self._next_check = time.monotonic() + self._auto_refresh
                with contextlib.suppress(RecommenderError):  # answer from what is loaded;
                    self._refresh()  # the next check tries again
            finally:
                self._refresh_lock.release()

    def close(self) -> None:
        if self._held is not None:
            self._held.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- updating -------------------------------------------------------------------------

    def _index_writer(self, wait: bool | float) -> IndexWriter:
        """The writer of this index, with this Recommender's encoder (made once: it keeps the
        lexicon it read)."""
        from .write.writer import IndexWriter

        with self._writer_lock:
            if self._writer is None:
                self._writer = IndexWriter(self.path, encoder=self._query_encoder_unchecked())
            self._writer.wait = wait
            return self._writer

    def add(
        self,
        articles: Iterable[Article],
        *,
        progress: ProgressFn | None = None,
        wait: bool | float = False,
        vectors: str | Path | None = None,
        missing_vectors: MissingVectors = "embed",
    ) -> UpdateReport:
        """Insert new articles and update changed ones (same id) in the index on disk.

        Only articles whose embedded text (title and body start) changed are embedded;
        other changes (category, date, url, ...) rewrite the stored fields only. The change
        is committed at once, whole or not at all; this Recommender is refreshed after it,
        others see it on ``refresh``. One writer at a time: see ``wait`` in ``build``.
        ``vectors``: embeddings computed elsewhere, as in ``build`` (checked against the
        index's model and dimension), ``missing_vectors`` as in ``build``.
        """
        report = self._index_writer(wait).add(
            _checked(articles),
            progress=progress,
            vectors=_supplied(vectors),
            missing_vectors=missing_vectors,
        )
        self.refresh()
        return report

    def add_from_files(
        self,
        files: Sequence[str | Path],
        *,
        field_map: Mapping[str, str] | None = None,
        drop_fields: Iterable[str] = (),
        skip_invalid: bool = False,
        progress: ProgressFn | None = None,
        wait: bool | float = False,
        vectors: str | Path | None = None,
        missing_vectors: MissingVectors = "embed",
    ) -> UpdateReport:
        """``add`` the articles of JSON Lines / CSV files (validated as in ``build_from_files``)."""
        report = read_valid(files, field_map, drop_fields, skip_invalid)
        result = self.add(
            report.articles,
            progress=progress,
            wait=wait,
            vectors=vectors,
            missing_vectors=missing_vectors,
        )
        return replace(
            result, skipped=len(report.invalid), duplicates=result.duplicates + report.duplicates
        )

    def remove(self, ids: Iterable[str], *, wait: bool | float = False) -> UpdateReport:
        """Take articles out of the index: no query returns them from the moment this returns,
        in this process or any other, refreshed or not. Unknown ids are counted, not errors."""
        report = self._index_writer(wait).remove(ids)
        self.refresh()
        return report

    def store_settings(self, settings: Settings, *, wait: bool | float = False) -> None:
        """Make ``settings`` the index's own (its query-time defaults); the build-time ones
        (model, text, vectors, lexicon) cannot change without a build (SettingsError)."""
        self._index_writer(wait).store_settings(settings)
        self.refresh()

    def precompute(self, *, progress: ProgressFn | None = None, wait: bool | float = False) -> str:
        """Bring the precomputed lists (``Settings.precomputed_k``) up to date: the lists that
        updates since they were computed touched are computed again, the others kept, so that
        queries look them all up again (a build or compaction computes them all). Worth running
        (``recommend precompute``) from cron on a busy site. ``progress``: called with (done,
        total). Returns what ``info().precomputed`` says then."""
        self._index_writer(wait).precompute(progress)
        self.refresh()
        return self._snapshot.lists_status()

    def tune(
        self,
        relevance: Mapping[str, frozenset[str]],
        *,
        queries: int = 2000,
        seed: int = 0,
        start: Ranking | None = None,
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
            start: where the search starts; by default the index's ranking.
            dry_run: only report; never store the new settings.
            progress: called with (stage, done, total).
            wait: as in ``build``, when the new settings are stored.

        Returns:
            A TuneReport: the split, old and new settings, their metrics on the tuning and
            held-out queries, and whether the new ones were stored (only when they win on the
            held-out queries, see recommender/tune.py).
        """
        from .quality.tune import tune

        def store(ranking: Ranking) -> None:
            def listing(done: int, total: int) -> None:
                if progress is not None:
                    progress("precomputing lists", done, total)

            self._index_writer(wait).store_ranking(ranking, listing)
            self.refresh()

        return tune(
            self._current(),
            relevance,
            queries=queries,
            seed=seed,
            start=start,
            store=None if dry_run else store,
            progress=progress,
        )

    def _query_encoder_unchecked(self) -> Encoder:
        from .embedding.encode import load_encoder

        if self._encoder is None:
            settings = Settings.from_dict(self.manifest.settings)
            self._encoder = load_encoder(settings.model, batch_size=settings.batch_size)
        return self._encoder

    def _query_encoder(self, snapshot: Snapshot) -> Encoder:
        from .write.writer import checked_encoder

        with self._writer_lock:
            encoder = self._query_encoder_unchecked()
        return checked_encoder(encoder, snapshot.manifest.dimension, self.path)

    # -- looking up -----------------------------------------------------------------------

    def __len__(self) -> int:
        snapshot = self._current()
        alive = snapshot.columns.alive
        gone = sum(1 for row in self._removed(snapshot) if row < len(alive) and alive[row])
        return len(snapshot.columns.row_of) - gone

    def __contains__(self, article_id: object) -> bool:
        snapshot = self._current()
        row = snapshot.columns.row_of.get(article_id) if isinstance(article_id, str) else None
        return row is not None and row not in self._removed(snapshot)

    def ids(self) -> list[str]:
        """Every indexed article id, in index order."""
        snapshot = self._current()
        removed = self._removed(snapshot)
        columns = snapshot.columns
        return [columns.ids[row] for row in sorted(columns.row_of.values()) if row not in removed]

    def language(self, article_id: str) -> str | None:
        """The language the index keeps for an article (what ``same_language`` and
        ``evaluate``'s breakdown go by): its ``lang`` field, else the one detected from its
        title and body when it was indexed, None when detection was unsure or the article was
        indexed before languages were kept. UnknownArticleError if it is not indexed."""
        snapshot = self._current()
        return snapshot.columns.language(self._live_row(snapshot, article_id))

    def get(self, article_id: str) -> Article:
        """The stored article with this id; UnknownArticleError if there is none."""
        snapshot = self._current()
        row = snapshot.row(article_id)
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
            model_choice=snapshot.manifest.model_choice,
            dimension=snapshot.manifest.dimension,
            format_version=snapshot.manifest.format_version,
            built_at=snapshot.manifest.built_at,
            build_seconds=snapshot.manifest.build_seconds,
            bytes_on_disk=sum(p.stat().st_size for p in snapshot.version.iterdir() if p.is_file()),
            settings=dict(snapshot.manifest.settings),
            generation=snapshot.generation,
            removed_rows=int((~snapshot.columns.alive).sum()),
            segments=len(snapshot.parts),
            vector_search=describe_search(snapshot.manifest.search),
            search=dict(snapshot.manifest.search) or {"type": "flat"},
            precomputed=snapshot.lists_status(),
        )

    # -- querying -------------------------------------------------------------------------

    def similar(
        self,
        article_id: str,
        k: int = 10,
        *,
        ranking: Ranking | None = None,
        filters: Filters | None = None,
        same_category: bool = False,
        categories: Iterable[str] | None = None,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        exclude: Iterable[str] = (),
        same_language: bool = False,
        now: datetime | None = None,
        **overrides: Any,
    ) -> list[Recommendation]:
        """The ``k`` articles most related to the indexed article ``article_id``, best first.

        Args:
            article_id: an id in the index (UnknownArticleError otherwise).
            k: how many to return (0 gives an empty list; fewer come back if fewer qualify).
            ranking: the ranking to use instead of the index's own (``Ranking``).
            filters: which articles may be listed (``Filters``), instead of the six keywords
                below.
            same_category: only articles in the query article's category.
            categories: only articles in these categories.
            since, until: only articles published in this range (bounds included; a bare
                date as ``until`` includes that day).
            exclude: ids never to return.
            same_language: only articles in the query article's language (its ``lang``
                field, else the language detected when it was indexed; see
                ``Recommender.language``); articles of unknown language are left out. When the
                query article's language is unknown, this filter is not applied.
            now: the current time, for ``recency_from="now"``.
            **overrides: any field of ``Ranking`` by name, overriding the index's (or
                ``ranking``'s) value for this query: ``half_life_days`` (None turns recency
                off), ``recency_weight``, ``recency_from`` ("query" or "now"),
                ``category_boost`` (0 turns it off), ``lexical_weight`` and
                ``lexical_weight_short`` (the TF-IDF share of the similarity, with body text
                and for headline-length queries), ``neighbour_weight``, ``mmr_lambda`` (below
                1 trades score for diversity), ... (see ``Ranking``).

        Left out of the list: the query article and its copies (same url, same normalised
        title, or nearly the same text); copies of each other are listed once (see
        ``Recommendation.copies``). Neither the model nor torch is loaded.
        """
        snapshot = self._current()
        removed = self._removed(snapshot)
        row = self._live_row(snapshot, article_id, removed)
        chosen = self._ranking(snapshot, ranking, overrides)
        wanted = _filters(filters, same_category, categories, since, until, exclude, same_language)
        if wanted == NO_FILTERS and _count(k):
            listed = self._listed(snapshot, row, k, chosen, removed)
            if listed is not None:
                return listed
        query = snapshot.query(row)
        if chosen.recency_from == "now":
            query = replace(query, day=_days(now or datetime.now(timezone.utc)))
        vector, terms = snapshot.vector(row), snapshot.terms(row)
        language = snapshot.columns.language(row)
        return self._related(
            snapshot, vector, terms, k, query, {row}, chosen, wanted, language, removed=removed
        )

    def _removed(self, snapshot: Snapshot) -> frozenset[int]:
        """Rows of ``snapshot`` removed by another process since it was taken (the table
        knows at once; a refresh would drop them from the snapshot itself)."""
        size = len(snapshot.columns.ids)
        return frozenset(
            row for row in snapshot.table.removed_since(snapshot.generation) if row < size
        )

    def _live_row(
        self, snapshot: Snapshot, article_id: str, removed: frozenset[int] | None = None
    ) -> int:
        """The row of a live article: in the snapshot and not removed since (``removed``:
        ``_removed(snapshot)``, if the caller has it)."""
        row = snapshot.row(article_id)
        if row in (self._removed(snapshot) if removed is None else removed):
            raise UnknownArticleError(f"article {article_id!r} is not in index {self.path}")
        return row

    def similar_to_text(
        self,
        text: str,
        k: int = 10,
        *,
        category: str | None = None,
        published_at: datetime | str | None = None,
        lang: str | None = None,
        ranking: Ranking | None = None,
        filters: Filters | None = None,
        same_category: bool = False,
        categories: Iterable[str] | None = None,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        exclude: Iterable[str] = (),
        same_language: bool = False,
        now: datetime | None = None,
        **overrides: Any,
    ) -> list[Recommendation]:
        """The ``k`` indexed articles most related to a text that is not indexed (yet).

        ``text`` is embedded like an article (first line as its title, HTML cleaned). Its
        ``category`` and ``published_at`` play the query article's part in the weighting; an
        undated text is taken to be published ``now``. Its language is ``lang`` if given (a
        language code such as ``az`` or ``ru-RU``), else detected from the text as an
        indexed article's is (unknown when detection is unsure): it chooses the stop words of
        the TF-IDF side and, with ``same_language``, the articles that may be listed (none
        when no indexed article is in that language; the filter is not applied when the
        language is unknown). Other arguments as in ``similar``.
        """
        snapshot = self._current()
        chosen = self._ranking(snapshot, ranking, overrides)
        wanted = _filters(filters, same_category, categories, since, until, exclude, same_language)
        cleaned = clean_html(text)
        if not cleaned:
            raise InvalidQueryError("the query text is empty")
        try:
            moment = parse_datetime(published_at) if published_at is not None else None
        except ValueError as exc:
            raise InvalidQueryError(f"published_at {exc}") from None
        current = _days(now or datetime.now(timezone.utc))
        title, _, body = cleaned.partition("\n")
        vector = self._query_encoder(snapshot).encode(
            [embedding_text(title, body, snapshot.settings.max_body_chars)]
        )[0]
        language = effective_language(lang, title, body)
        terms = snapshot.lexicon().vectorize([lexical_text(title, body)], [language])[0]
        day = current if moment is None or chosen.recency_from == "now" else _days(moment)
        query = Query(day=day, category=snapshot.columns.category_code(category), indexed=False)
        return self._related(snapshot, vector, terms, k, query, set(), chosen, wanted, language)

    def candidates(self, article_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The candidate stage of ``similar(article_id, k)`` on its own, without filters.

        Returns (id, similarity) pairs: the embedding's nearest and the TF-IDF's best
        together, by their fused similarity (the index's lexical weight), before neighbours,
        reranking and copies: what ranking chooses from. Useful to see why an article is
        missing.
        """
        snapshot = self._current()
        rows, pool = self._pool(snapshot, article_id, k, None)
        fused = fuse(pool.dense, pool.lexical, fusion_weight(pool, snapshot.settings.ranking))
        order = np.lexsort((rows, -fused))
        ids = snapshot.columns.ids
        return [(ids[int(rows[i])], float(fused[i])) for i in order]

    def pool(
        self, article_id: str, k: int = 10, *, until_day: float | None = None
    ) -> tuple[np.ndarray, Pool]:
        """The candidate rows of ``similar(article_id, k)`` and their pool, unfiltered (only
        articles published up to ``until_day``, days since 1970, if given): what ranking
        chooses from, to be ranked again with other settings (``tune``)."""
        return self._pool(self._current(), article_id, k, until_day)

    def _pool(
        self, snapshot: Snapshot, article_id: str, k: int, until_day: float | None
    ) -> tuple[np.ndarray, Pool]:
        row = self._live_row(snapshot, article_id)
        count = candidate_count(snapshot, k, snapshot.settings.ranking.candidates)
        return gather(
            snapshot,
            snapshot.vector(row),
            snapshot.terms(row),
            count,
            drop={row, *self._removed(snapshot)},
            filters=RowFilter(until_day=until_day),
        )

    def _ranking(
        self, snapshot: Snapshot, ranking: Ranking | None, overrides: Mapping[str, Any]
    ) -> Ranking:
        """The ranking of one query: ``ranking`` or the index's, with ``overrides``."""
        base = ranking if ranking is not None else snapshot.settings.ranking
        known = {f.name for f in fields(Ranking)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
        try:
            return replace(base, **overrides) if overrides else base
        except SettingsError as exc:
            raise InvalidQueryError(str(exc)) from None

    def _listed(
        self,
        snapshot: Snapshot,
        row: int,
        k: int,
        ranking: Ranking,
        removed: frozenset[int],
    ) -> list[Recommendation] | None:
        """``similar`` of ``row`` from the version's precomputed lists (``answers``), when they
        hold what it would answer now; None otherwise (answer it the long way)."""
        found = snapshot.answers
        if found is None or ranking.recency_from != "query":
            return None
        if not found.serves(k, ranking, candidate_count(snapshot, k, ranking.candidates)):
            return None
        if removed:
            # Rows removed since the snapshot are dropped from its search, which asks FAISS for
            # as many more: of copies with equal cosines at the cut it then keeps others than the
            # list holds. Searched until the next refresh.
            return None
        changed = snapshot.changed_rows
        held = None if changed is None else current_list(snapshot, found, changed, row)
        if held is None:
            return None
        listed = held[1]
        heads = listed.heads[:k].tolist()
        stored = snapshot.table.articles(heads)
        if len(stored) < len(heads):
            return None  # removed meanwhile
        columns = snapshot.columns
        ids = columns.ids
        return [
            _recommendation_of(
                stored[head],
                columns.language(head),
                score=float(listed.score[at]),
                similarity=float(listed.similarity[at]),
                recency=float(listed.recency[at]),
                category=float(listed.category[at]),
                dense=float(listed.dense[at]),
                lexical=float(listed.lexical[at]),
                copy_ids=tuple(ids[r] for r in listed.copies[at].tolist()),
            )
            for at, head in enumerate(heads)
        ]

    def _related(
        self,
        snapshot: Snapshot,
        vector: np.ndarray,
        terms: TermVector,
        k: int,
        query: Query,
        drop: set[int],
        ranking: Ranking,
        filters: Filters,
        language: str | None,
        *,
        removed: frozenset[int] | None = None,
    ) -> list[Recommendation]:
        _count(k)
        columns = snapshot.columns
        row_filter = filters.resolve(columns, query.category, self.path, language)
        if k == 0:
            return []
        drop.update(columns.row_of[i] for i in filters.exclude if i in columns.row_of)
        # Rows removed since the last refresh are left out: the table knows at once.
        drop.update(self._removed(snapshot) if removed is None else removed)
        count = candidate_count(snapshot, k, ranking.candidates)
        rows, pool = gather(snapshot, vector, terms, count, drop=drop, filters=row_filter)
        limit = k + 5
        while True:
            listing = rank(pool, ranking, query, limit=limit)
            # A row removed after the check above is missing here: rank further down for it.
            heads = [int(rows[group[0]]) for group in listing.groups]
            stored = snapshot.table.articles(heads[:k])
            if len(stored) < len(heads[:k]):
                stored.update(snapshot.table.articles(heads[k:]))
            results = [
                _recommendation(stored[head], rows, group, pool, listing, columns)
                for group in listing.groups
                if (head := int(rows[group[0]])) in stored
            ][:k]
            if len(results) == k or len(listing.groups) < limit:
                return results
            limit *= 2


def _days(moment: datetime) -> float:
    return moment.timestamp() / SECONDS_PER_DAY


def _filters(
    given: Filters | None,
    same_category: bool,
    categories: Iterable[str] | None,
    since: datetime | date | str | None,
    until: datetime | date | str | None,
    exclude: Iterable[str],
    same_language: bool = False,
) -> Filters:
    """The filters of one query: ``given``, with any of the keywords given beside it."""
    keywords: dict[str, Any] = {
        "same_category": same_category,
        "categories": categories,
        "since": since,
        "until": until,
        "exclude": tuple(exclude),
        "same_language": same_language,
    }
    defaults = Filters()
    chosen = {name: value for name, value in keywords.items() if value != getattr(defaults, name)}
    return replace(given or defaults, **chosen)


def _count(k: object) -> int:
    """``k`` checked: a whole number, 0 or more (InvalidQueryError otherwise)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidQueryError(f"k must be a whole number, got {k!r}")
    if k < 0:
        raise InvalidQueryError(f"k must be 0 or more, got {k}")
    return int(k)


def _recommendation(
    article: Article,
    rows: np.ndarray,
    group: np.ndarray,
    pool: Pool,
    listing: Listing,
    columns: Columns,
) -> Recommendation:
    shown = int(group[0])
    ids = columns.ids
    return _recommendation_of(
        article,
        columns.language(int(rows[shown])),
        score=float(listing.scores[group].max()),
        similarity=float(listing.similarity[shown]),
        recency=float(listing.recency[shown]),
        category=float(listing.category[shown]),
        dense=float(pool.dense[shown]),
        lexical=float(pool.lexical[shown]),
        copy_ids=tuple(ids[int(rows[i])] for i in group[1:]),
    )


def _recommendation_of(
    article: Article,
    language: str | None,
    *,
    score: float,
    similarity: float,
    recency: float,
    category: float,
    dense: float,
    lexical: float,
    copy_ids: tuple[str, ...],
) -> Recommendation:
    return Recommendation(
        id=article.id,
        score=score,
        similarity=similarity,
        recency_factor=recency,
        category_factor=category,
        title=article.title,
        category=article.category,
        published_at=article.published_at,
        url=article.url,
        source=article.source,
        lang=article.lang,
        language=language,
        tags=article.tags,
        metadata=dict(article.metadata),
        dense_similarity=dense,
        lexical_similarity=lexical,
        copies=len(copy_ids) + 1,
        copy_ids=copy_ids,
    )
