"""The facade: ``Recommender`` builds an index, opens it once and answers related-article queries.

A web backend opens one at start-up and calls ``similar`` from any number of threads, as the CLI
and the HTTP service do. It opens, refreshes and delegates: ``read.reader`` holds the snapshot,
``read.pipeline`` answers (``read.held`` when a precomputed list holds), ``write.writer`` writes,
``sources.sync`` syncs, ``quality.tune`` tunes. The manual is docs/python.md."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .articles import Article, read_valid
from .errors import InputFileError
from .read import pipeline
from .read.explain import Explanation, explain
from .read.held import Lists, lookup
from .read.reader import Reader
from .read.retrieve import Filters
from .read.snapshot import Snapshot, check
from .settings import CACHED_ARTICLES, Ranking, Settings, checked_threads

if TYPE_CHECKING:  # imported where used: a query needs none of them (docs/contributing.md)
    from . import results
    from .embedding.encode import Encoder, ProgressFn
    from .embedding.supplied import MissingVectors
    from .quality.tune import TuneReport
    from .storage.manifest import Manifest
    from .write.writer import IndexWriter, Overrides

DEFAULT_INDEX = Path("indexes") / "news"
#: A query's filters when none is given: what the precomputed lists were made with.
NO_FILTERS = Filters()


class Recommender:
    """An opened index: related articles for an indexed id or for new text.

    Open it once with ``Recommender.open(path)`` and share it: every method is thread-safe."""

    def __init__(
        self, path: Path, encoder: Encoder | None = None, threads: int | None = None, **reading: Any
    ) -> None:  # ``reading``: Reader's options; use ``open``
        self.path = path
        self._encoder = encoder
        self._threads = checked_threads(threads)
        self._writer_lock = threading.Lock()
        self._writer: IndexWriter | None = None
        self._reader = Reader(path, on_model_change=self._forget_model, **reading)
        self.lists = Lists(self._reader)  # ``similar(id, k)`` as JSON (read.held)

    @property
    def snapshot(self) -> Snapshot:
        """The state queries are answered from now (replaced whole by each refresh)."""
        return self._reader.snapshot

    @property
    def manifest(self) -> Manifest:
        return self._reader.manifest

    @property
    def settings(self) -> Settings:
        return self.snapshot.settings

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
    ) -> results.BuildReport:
        """Embed ``articles`` (the last of an id wins) as the new index at ``path``, replacing
        the one there once complete; unchanged articles keep their stored vectors.

        ``settings``: by default the defaults with the ranking of the index at ``path``;
        ``encoder``: by default ``settings.model``'s; ``progress``, ``lists_progress``: called
        with (done, total); ``records``, ``skipped``, ``duplicates``: reading's counts, for the
        report; ``wait``: for another writer, True or at most that many seconds, instead of
        IndexBusyError; ``vectors``: embeddings made elsewhere, ``missing_vectors``: "embed"
        or "refuse" the articles they lack; ``threads``: the model's (default: one per core)."""
        from .write.writer import IndexWriter

        writer = IndexWriter(path, encoder=encoder, wait=wait, threads=threads)
        return writer.build(
            articles,
            settings,
            progress=progress,
            lists_progress=lists_progress,
            records=records,
            skipped=skipped,
            duplicates=duplicates,
            vectors=vectors,
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
    ) -> results.BuildReport:
        """``build`` from JSON Lines / CSV files (an invalid record: InvalidArticlesError)."""
        report = read_valid(files, field_map, drop_fields, skip_invalid)
        if not report.articles:
            raise InputFileError(f"no articles in {', '.join(map(str, files))}; nothing to index")
        counts: dict[str, Any] = {"records": report.records, "duplicates": report.duplicates}
        return cls.build(report.articles, path, skipped=len(report.invalid), **counts, **options)

    @staticmethod
    def stored_ranking(path: str | Path) -> Ranking | None:
        """The ranking settings of the index at ``path`` (None when there is none)."""
        from .write.writer import stored_ranking

        return stored_ranking(Path(path))

    @staticmethod
    def check(path: str | Path = DEFAULT_INDEX) -> results.CheckReport:
        """Verify the files and articles of the index at ``path`` (``recommend check``)."""
        return check(Path(path))

    @staticmethod
    def sync(source: str, path: str | Path = DEFAULT_INDEX, **options: Any) -> results.SyncReport:
        """Bring the index at ``path`` in line with a site's database or feed (docs/sync.md)."""
        from .sources.sync import sync

        return sync(source, Path(path), **options)

    @staticmethod
    def replicate(
        path: str | Path, replica: str | Path, *, wait: bool | float = False
    ) -> results.ReplicaReport:
        """Copy the index at ``path`` to ``replica`` for read-only serving, consistently."""
        from .write.replicate import replicate

        return replicate(Path(path), Path(replica), wait=wait)

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
        cached_articles: int = CACHED_ARTICLES,
    ) -> Recommender:
        """Open the index at ``path`` for queries. ``model``: the one expected
        (IncompatibleIndexError for another); ``encoder``: by default the index's model, loaded
        when needed, with ``threads``; ``auto_refresh``: True, or every that many seconds;
        ``lazy``: read only the manifest (a writer); ``cached_articles``: see ``read.shown``."""
        expected = model or (encoder.name if encoder is not None else None)
        interval = 1.0 if auto_refresh is True else (float(auto_refresh) or None)
        reading = {"auto_refresh": interval, "lazy": lazy, "cached_articles": cached_articles}
        return cls(Path(path), encoder, threads, expected_model=expected, **reading)

    def _forget_model(self) -> None:
        """A rebuild changed the index's model: its encoder and writer are made again."""
        with self._writer_lock:
            self._encoder = None
            self._writer = None

    def refresh(self) -> bool:
        """Load what was written since (queries running meanwhile keep their state); changed?"""
        return self._reader.refresh()

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _index_writer(self, wait: bool | float | None = None) -> IndexWriter:
        """The writer (made once: it keeps its encoder and lexicon); ``wait``: set if given."""
        from .write.writer import IndexWriter

        with self._writer_lock:
            if self._writer is None:
                self._writer = IndexWriter(self.path, encoder=self._encoder, threads=self._threads)
            if wait is not None:
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
    ) -> results.UpdateReport:
        """Insert new articles and update changed ones (same id), committed whole or not at
        all; only a changed text is embedded again. ``wait``, ``vectors``: as in ``build``."""
        options: dict[str, Any] = {"progress": progress, "vectors": vectors}
        report = self._index_writer(wait).add(articles, missing_vectors=missing_vectors, **options)
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
    ) -> results.UpdateReport:
        """``add`` the articles of JSON Lines / CSV files (validated as in ``build_from_files``)."""
        report = read_valid(files, field_map, drop_fields, skip_invalid)
        result = self.add(report.articles, **options)
        return replace(
            result, skipped=len(report.invalid), duplicates=result.duplicates + report.duplicates
        )

    def remove(self, ids: Iterable[str], *, wait: bool | float = False) -> results.UpdateReport:
        """Take articles out: no query in any process returns them once this returns."""
        report = self._index_writer(wait).remove(ids)
        self.refresh()
        return report

    def store_settings(self, settings: Settings, *, wait: bool | float = False) -> None:
        """Make ``settings`` the index's own; build-time ones cannot change (SettingsError)."""
        self._index_writer(wait).store_settings(settings)
        self.refresh()

    def precompute(self, *, progress: ProgressFn | None = None, wait: bool | float = False) -> str:
        """Compute again the precomputed lists updates touched; ``info().precomputed`` then."""
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
        """Search the ranking on ``relevance`` (id -> related ids), from ``start``, on at most
        ``queries`` queries split by time (else at random, ``seed``); the new ranking is stored
        (``wait`` as in ``build``) only if it wins on the held-out ones and not ``dry_run``."""
        from .quality.tune import tune

        def store(ranking: Ranking) -> None:
            listing = None if progress is None else partial(progress, "precomputing lists")
            self._index_writer(wait).store_ranking(ranking, listing)
            self.refresh()

        stored = None if dry_run else store
        options: dict[str, Any] = {"queries": queries, "seed": seed, "start": start}
        return tune(self._reader.current(), relevance, store=stored, progress=progress, **options)

    @property
    def overrides(self) -> Overrides:
        """Editorial overrides: pin, block, hide, list (docs/python.md)."""
        return self._index_writer().overrides(self.refresh, self._reader.current)

    def _query_encoder(self, snapshot: Snapshot) -> Encoder:
        writer = self._index_writer()
        with self._writer_lock:  # loaded once, by the first query that needs it
            return writer.encoder_for(snapshot.manifest)

    def __len__(self) -> int:
        return self._reader.live_count()

    def __contains__(self, article_id: object) -> bool:
        return self._reader.contains(article_id)

    def ids(self) -> list[str]:
        """Every indexed article id, in index order."""
        return self._reader.ids()

    def language(self, article_id: str) -> str | None:
        """The language ``same_language`` goes by: ``lang``, else detected; None if unknown."""
        return self._reader.language(article_id)

    def get(self, article_id: str) -> Article:
        """The stored article with this id; UnknownArticleError if there is none."""
        return self._reader.get(article_id)

    def info(self) -> results.IndexInfo:
        """Counts, model, settings and size of the index."""
        return self._reader.info()

    def status(self) -> results.IndexStatus:
        """For monitoring, cheaply: articles, generation, last write and refresh, ``answers``."""
        return self._reader.status()

    def answers(self) -> results.Answers:
        """``similar`` answers this process gave from the precomputed lists, and searched."""
        return self._reader.answers()

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
    ) -> list[results.Recommendation]:
        """The ``k`` articles most related to the indexed ``article_id``, best first, without
        it, its copies, or copies of each other twice (``Recommendation.copies``); no model.

        ``ranking``: instead of the index's; ``filters``, or its fields as keywords
        (``since``/``until`` included; ``same_language`` not applied to an unknown language);
        ``now``: for ``recency_from="now"``; ``**overrides``: fields of ``Ranking``."""
        snapshot, removed = self._reader.current_and_removed()
        row = self._reader.live_row(snapshot, article_id, removed)
        chosen = pipeline.ranking_with(ranking or snapshot.settings.ranking, overrides)
        given = (same_category, categories, since, until, exclude, same_language)
        wanted = Filters.merged(filters, *given)
        held = wanted == NO_FILTERS and pipeline.checked_k(k)
        listed = lookup(snapshot, row, k, chosen, removed) if held else None
        self._reader.answered(precomputed=listed is not None)
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
    ) -> list[results.Recommendation]:
        """The ``k`` indexed articles most related to a new text, embedded as an article (first
        line its title; read up to ``text.query_chars``: 100,000 characters); its ``category``,
        ``published_at`` (default ``now``) and ``lang`` (default detected) play the query
        article's part. Other arguments as in ``similar``."""
        from .embedding.encode import query_vector

        snapshot, removed = self._reader.current_and_removed()
        chosen = pipeline.ranking_with(ranking or snapshot.settings.ranking, overrides)
        given = (same_category, categories, since, until, exclude, same_language)
        wanted = Filters.merged(filters, *given)
        asked = pipeline.text_query(snapshot, text, chosen, category, published_at, lang, now)
        vector = query_vector(self._query_encoder(snapshot), asked.embedded)
        return pipeline.for_text(snapshot, asked, vector, k, chosen, wanted, removed, self.path)

    def candidates(self, article_id: str, k: int = 10) -> list[tuple[str, float]]:
        """What ``similar(article_id, k)`` ranks, unfiltered: (id, fused similarity), best first."""
        snapshot, removed = self._reader.current_and_removed()
        row = self._reader.live_row(snapshot, article_id, removed)
        return pipeline.fused_candidates(snapshot, row, k, drop={row, *removed})

    def explain(self, article_id: str, k: int = 10, **overrides: Any) -> list[Explanation]:
        """``similar(article_id, k, **overrides)`` searched, with each one's evidence."""
        snapshot, removed = self._reader.current_and_removed()
        row = self._reader.live_row(snapshot, article_id, removed)
        return explain(snapshot, row, k, overrides, removed)
