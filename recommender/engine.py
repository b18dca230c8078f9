"""The facade: ``Recommender`` builds an index, opens it once and answers related-article queries.

A web backend opens one ``Recommender`` at start-up and calls ``similar`` from any number of
threads; another process (or the same one) adds and removes articles. The CLI and the HTTP
service do the same. The facade opens, refreshes and delegates: ``read.reader`` holds the
current snapshot, ``read.pipeline`` answers (``read.held`` when a precomputed list holds),
``write.writer`` writes, ``quality.tune`` tunes. Arguments are described here; the manual is
docs/python.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .articles import Article, check_article, read_valid
from .errors import InputFileError, RecommenderError
from .read import pipeline
from .read.held import lookup
from .read.reader import Reader
from .read.retrieve import Filters
from .read.snapshot import Snapshot, image_problems, precomputed_problems
from .results import (
    BuildReport,
    CheckReport,
    IndexInfo,
    Recommendation,
    ReplicaReport,
    UpdateReport,
)
from .settings import Ranking, Settings
from .storage.check import check_index

if TYPE_CHECKING:  # imported where used: a query needs none of them (docs/contributing.md)
    from .embedding.encode import Encoder, ProgressFn
    from .embedding.supplied import MissingVectors, SuppliedVectors
    from .quality.tune import TuneReport
    from .write.writer import IndexWriter

log = logging.getLogger(__name__)
DEFAULT_INDEX = Path("indexes") / "news"
#: A query's filters when none is given: what the precomputed lists were made with.
NO_FILTERS = Filters()


def _checked(articles: Iterable[Article]) -> list[Article]:
    """The articles, each checked as the file reader would (InvalidArticleError if not)."""
    chosen = list(articles)
    for article in chosen:
        check_article(article)
    return chosen


def _supplied(path: str | Path | None) -> SuppliedVectors | None:
    """The vectors file given to a build or an update, read and checked on its own."""
    from .embedding.supplied import read_vectors

    return None if path is None else read_vectors(path)


class Recommender:
    """An opened index: related articles for an indexed id or for new text.

    Open it once with ``Recommender.open(path)`` and share it; every method is safe to call
    from several threads at once.
    """

    def __init__(
        self, path: Path, encoder: Encoder | None = None, threads: int | None = None, **reading: Any
    ) -> None:  # ``reading``: Reader's options; use ``open``
        self.path = path
        self._encoder = encoder
        self._threads = threads
        self._writer_lock = threading.Lock()
        self._writer: IndexWriter | None = None
        self._reader = Reader(path, on_model_change=self._forget_model, **reading)

    @property
    def snapshot(self) -> Snapshot:
        """The state queries are answered from now (replaced whole by each refresh)."""
        return self._reader.snapshot

    @property
    def manifest(self) -> Any:
        return self._reader.manifest

    @property
    def settings(self) -> Settings:
        return self.snapshot.settings

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
        threads: int | None = None,
    ) -> BuildReport:
        """Embed ``articles`` (the last of an id wins) and write them as the new index at
        ``path``, which replaces the one there only once complete. Articles whose embedded text
        is unchanged since that index keep their stored vectors.

        ``settings``: build settings and default ranking (by default the defaults, with the
        ranking of the index at ``path`` if any); ``encoder``: the model (by default
        ``settings.model``); ``progress`` / ``lists_progress``: called with (done, total) while
        embedding / precomputing lists; ``records``, ``skipped``, ``duplicates``: counts from
        reading, carried into the report; ``wait``: if another process is writing, wait
        (True, or at most that many seconds) instead of raising IndexBusyError; ``vectors``:
        embeddings computed elsewhere (embedding/supplied.py), refused whole
        (SuppliedVectorsError) for another model or dimension, a row for an article not given
        or a damaged file, a stale row left out; ``missing_vectors``: "embed" the articles
        they do not cover, or "refuse" the build; ``threads``: the model's (default: one per
        core). Returns a BuildReport.
        """
        from .write.writer import IndexWriter

        writer = IndexWriter(path, encoder=encoder, wait=wait, threads=threads)
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
        **options: Any,
    ) -> BuildReport:
        """Read JSON Lines / CSV files and ``build`` the index at ``path`` from them (other
        keyword arguments as there). Every record is validated before any is embedded: an
        invalid one raises InvalidArticlesError (naming file and line), or with
        ``skip_invalid`` is left out and counted in the report's ``skipped``."""
        report = read_valid(files, field_map, drop_fields, skip_invalid)
        if not report.articles:
            names = ", ".join(str(f) for f in files)
            raise InputFileError(f"no articles in {names}; nothing to index")
        return cls.build(
            report.articles,
            path,
            records=report.records,
            skipped=len(report.invalid),
            duplicates=report.duplicates,
            **options,
        )

    @staticmethod
    def stored_ranking(path: str | Path) -> Ranking | None:
        """The ranking settings of the index at ``path`` (None when there is none)."""
        from .write.writer import stored_ranking

        return stored_ranking(Path(path))

    @staticmethod
    def check(path: str | Path = DEFAULT_INDEX) -> CheckReport:
        """Verify every file and stored article of the index at ``path`` without opening it
        (``recommend check``); ``sound`` when ``problems`` is empty."""
        report = check_index(Path(path))
        if report.sound:  # derived files are compared with the articles once those are sound
            try:
                report.problems.extend(image_problems(Path(path)))
                report.problems.extend(precomputed_problems(Path(path)))
            except RecommenderError as exc:
                log.warning("derived files of %s not compared: %s", path, exc)
        return report

    @staticmethod
    def replicate(
        path: str | Path, replica: str | Path, *, wait: bool | float = False
    ) -> ReplicaReport:
        """Copy the index at ``path`` to ``replica`` for read-only serving, from one
        consistent state, without stopping its writer or readers (``recommend replicate``).
        Nothing is written when ``replica`` holds the current state already. ``replica`` must
        be missing, empty or an earlier replica, outside ``path``. ``wait``: as in ``build``,
        for another ``replicate`` of ``replica``. Returns a ReplicaReport."""
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
        threads: int | None = None,
    ) -> Recommender:
        """Open the index at ``path`` for queries. ``model``: the model the caller expects
        (IncompatibleIndexError for another);
        ``encoder``: for ``similar_to_text`` and ``add`` (by default the index's model, loaded
        when first needed); ``auto_refresh``: pick up others' changes without ``refresh``,
        True at most once a second, a number every that many seconds; ``lazy``: read only the
        manifest now, the rest when first needed (for a process that only writes); ``threads``:
        the model's, when it is loaded (default: one per core).
        """
        expected = model or (encoder.name if encoder is not None else None)
        interval = 1.0 if auto_refresh is True else (float(auto_refresh) or None)
        return cls(
            Path(path), encoder, threads, expected_model=expected, auto_refresh=interval, lazy=lazy
        )

    def _forget_model(self) -> None:
        """A rebuild changed the index's model: its encoder and writer are made again."""
        with self._writer_lock:
            self._encoder = None
            self._writer = None

    def refresh(self) -> bool:
        """Load what was written to the index since it was opened or last refreshed (only new
        segments and changed rows; a rebuilt index whole). Queries running meanwhile keep the
        state they started with. Returns whether anything changed."""
        return self._reader.refresh()

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- updating -------------------------------------------------------------------------

    def _index_writer(self, wait: bool | float) -> IndexWriter:
        """The writer of this index with this Recommender's encoder (made once: it keeps the
        lexicon it read)."""
        from .write.writer import IndexWriter

        with self._writer_lock:
            if self._writer is None:
                self._writer = IndexWriter(self.path, encoder=self._encoder_unchecked())
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
        """Insert new articles and update changed ones (same id), committed whole or not at
        all; only a changed embedded text is embedded again. This Recommender is refreshed
        after it, others on ``refresh``. ``wait``, ``vectors``, ``missing_vectors``: as in
        ``build``."""
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
        **options: Any,
    ) -> UpdateReport:
        """``add`` the articles of JSON Lines / CSV files (validated as in ``build_from_files``)."""
        report = read_valid(files, field_map, drop_fields, skip_invalid)
        result = self.add(report.articles, **options)
        return replace(
            result, skipped=len(report.invalid), duplicates=result.duplicates + report.duplicates
        )

    def remove(self, ids: Iterable[str], *, wait: bool | float = False) -> UpdateReport:
        """Take articles out of the index: no query returns them from the moment this returns,
        in any process, refreshed or not. Unknown ids are counted, not errors."""
        report = self._index_writer(wait).remove(ids)
        self.refresh()
        return report

    def store_settings(self, settings: Settings, *, wait: bool | float = False) -> None:
        """Make ``settings`` the index's own; build-time ones cannot change (SettingsError)."""
        self._index_writer(wait).store_settings(settings)
        self.refresh()

    def precompute(self, *, progress: ProgressFn | None = None, wait: bool | float = False) -> str:
        """Bring the precomputed lists up to date (``recommend precompute``): those that
        updates touched are computed again. Returns what ``info().precomputed`` says then."""
        self._index_writer(wait).precompute(progress)
        self.refresh()
        return self.snapshot.lists_status()

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
        """Search the ranking settings on labelled history (``recommend tune``): ``relevance``
        maps an article id to its related ids; a seeded sample of at most ``queries``
        queries, split by time (or at random, ``seed``), searched from ``start`` (the index's
        ranking). The new settings are stored (``wait`` as in ``build``) only when they win on
        the held-out queries and not ``dry_run``. ``progress``: (stage, done, total)."""
        from .quality.tune import tune

        def store(ranking: Ranking) -> None:
            listing = None if progress is None else partial(progress, "precomputing lists")
            self._index_writer(wait).store_ranking(ranking, listing)
            self.refresh()

        stored = None if dry_run else store
        snapshot = self._reader.current()
        return tune(snapshot, relevance, queries=queries, seed=seed, start=start, store=stored,
                    progress=progress)  # fmt: skip

    def _encoder_unchecked(self) -> Encoder:
        from .embedding.encode import load_encoder

        if self._encoder is None:
            settings = Settings.from_dict(self.manifest.settings)
            self._encoder = load_encoder(
                settings.model, batch_size=settings.batch_size, threads=self._threads
            )
        return self._encoder

    def _query_encoder(self, snapshot: Snapshot) -> Encoder:
        from .write.writer import checked_encoder

        with self._writer_lock:
            encoder = self._encoder_unchecked()
        return checked_encoder(encoder, snapshot.manifest.dimension, self.path)

    # -- looking up -----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._reader.live_count()

    def __contains__(self, article_id: object) -> bool:
        return self._reader.contains(article_id)

    def ids(self) -> list[str]:
        """Every indexed article id, in index order."""
        return self._reader.ids()

    def language(self, article_id: str) -> str | None:
        """The language kept for an article (what ``same_language`` goes by): its ``lang``,
        else the one detected when it was indexed; None when unsure or unknown."""
        return self._reader.language(article_id)

    def get(self, article_id: str) -> Article:
        """The stored article with this id; UnknownArticleError if there is none."""
        return self._reader.get(article_id)

    def info(self) -> IndexInfo:
        """Counts, model, settings and size of the index."""
        return self._reader.info()

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
        """The ``k`` articles most related to the indexed article ``article_id``, best first
        (UnknownArticleError for an id not indexed; fewer when fewer qualify).

        ``ranking``: instead of the index's own; ``filters`` (``Filters``), or its six fields
        as keywords: ``same_category``, ``categories``, ``since`` / ``until`` (bounds
        included), ``exclude`` (ids), ``same_language`` (not applied when the article's
        language is unknown); ``now``: the time for ``recency_from="now"``;
        ``**overrides``: any field of ``Ranking`` for this query (``half_life_days=None``
        turns recency off). Left out: the query article and its copies; copies of each other
        are listed once (``Recommendation.copies``). Neither the model nor torch is loaded.
        """
        reader = self._reader
        snapshot = reader.current()
        removed = reader.removed(snapshot)
        row = reader.live_row(snapshot, article_id, removed)
        chosen = pipeline.ranking_with(ranking or snapshot.settings.ranking, overrides)
        wanted = Filters.merged(filters, same_category, categories, since, until, exclude,
                                same_language)  # fmt: skip
        if wanted == NO_FILTERS and pipeline.checked_k(k):
            listed = lookup(snapshot, row, k, chosen, removed)
            if listed is not None:
                return listed
        return pipeline.for_row(snapshot, row, k, chosen, wanted, now, removed, self.path)

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

        ``text`` is embedded like an article (first line as its title, HTML cleaned); its
        ``category`` and ``published_at`` (by default ``now``) play the query article's part
        in the weighting; its language is ``lang`` (a code such as ``az`` or ``ru-RU``), else
        detected (unknown when unsure). Other arguments as in ``similar``.
        """
        snapshot = self._reader.current()
        chosen = pipeline.ranking_with(ranking or snapshot.settings.ranking, overrides)
        wanted = Filters.merged(filters, same_category, categories, since, until, exclude,
                                same_language)  # fmt: skip
        asked = pipeline.text_query(snapshot, text, chosen, category, published_at, lang, now)
        vector = self._query_encoder(snapshot).encode([asked.embedded])[0]
        removed = self._reader.removed(snapshot)
        return pipeline.for_text(snapshot, asked, vector, k, chosen, wanted, removed, self.path)

    def candidates(self, article_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The candidate stage of ``similar(article_id, k)`` on its own, without filters:
        (id, fused similarity) pairs, best first, before neighbours, reranking and copies
        (what ranking chooses from: to see why an article is missing)."""
        snapshot = self._reader.current()
        removed = self._reader.removed(snapshot)
        row = self._reader.live_row(snapshot, article_id, removed)
        return pipeline.fused_candidates(snapshot, row, k, drop={row, *removed})
