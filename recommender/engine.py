"""The facade: ``Recommender`` builds an index, opens it once and answers related-article queries.

A web backend opens one ``Recommender`` at start-up and calls ``similar`` from any number of
threads; the CLI does the same through ``recommender.cli``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from .articles import Article, parse_datetime, read_articles
from .encode import Encoder, ProgressFn, SentenceTransformerEncoder, encode_all
from .errors import (
    IncompatibleIndexError,
    InvalidArticlesError,
    InvalidQueryError,
    ModelError,
    UnknownArticleError,
)
from .rerank import first_of_each, rerank
from .results import BuildReport, IndexInfo, Recommendation
from .retrieve import Filters, allowed_rows, retrieve
from .settings import Settings, check_ranking
from .store import (
    SECONDS_PER_DAY,
    ArticleTable,
    Columns,
    Manifest,
    current_version,
    read_manifest,
    read_vectors,
    write_index,
)
from .text import content_hash, embedding_text

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


class Recommender:
    """An opened index: related articles for an indexed id or for new text.

    Open it once with ``Recommender.open(path)`` and share it; every method is safe to call
    from several threads at once.
    """

    def __init__(
        self,
        path: Path,
        version: Path,
        manifest: Manifest,
        vectors: Any,
        table: ArticleTable,
        columns: Columns,
        encoder: Encoder | None = None,
    ) -> None:
        self.path = path
        self._version = version
        self.manifest = manifest
        self.settings = Settings.from_dict(manifest.settings)
        self._vectors = vectors
        self._table = table
        self._columns = columns
        self._encoder = encoder

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
    ) -> BuildReport:
        """Embed ``articles`` and write them as the new index at ``path``.

        Args:
            articles: the articles; for an id given twice the last one wins.
            path: the index folder; an existing index there is replaced only once the new one
                is complete.
            settings: text and default ranking settings, stored with the index.
            encoder: the model to embed with; by default ``settings.model``.
            progress: called with (encoded, total) as embedding goes on.
            records, skipped, duplicates: counts from reading, carried into the report.

        Returns:
            A BuildReport with counts, seconds and the index size.
        """
        started = time.perf_counter()
        settings = settings or Settings()
        unique: dict[str, Article] = {}
        for article in articles:
            if article.id in unique:
                duplicates += 1
                del unique[article.id]
            unique[article.id] = article
        chosen = list(unique.values())
        encoder = encoder or SentenceTransformerEncoder(
            settings.model, batch_size=settings.batch_size
        )
        settings = replace(settings, model=encoder.name)
        texts = [embedding_text(a.title, a.body, settings.max_body_chars) for a in chosen]
        vectors = encode_all(encoder, texts, progress=progress)
        manifest = Manifest(
            model=encoder.name,
            dimension=int(encoder.dimension),
            count=len(chosen),
            settings=settings.to_dict(),
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            build_seconds=0.0,
            versions=_versions(),
        )
        path = Path(path)
        seconds = time.perf_counter() - started
        manifest = replace(manifest, build_seconds=round(seconds, 3))
        written = write_index(path, chosen, vectors, [content_hash(t) for t in texts], manifest)
        return BuildReport(
            index=str(path),
            articles=len(chosen),
            records=records if records is not None else len(chosen) + duplicates,
            skipped=skipped,
            duplicates=duplicates,
            seconds=time.perf_counter() - started,
            index_bytes=sum(int(f["bytes"]) for f in written.files.values()),
            model=encoder.name,
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
    ) -> BuildReport:
        """Read JSON Lines / CSV files and build the index at ``path`` from them.

        Every record is validated before any is embedded. Invalid ones raise
        InvalidArticlesError (naming file and line) unless ``skip_invalid`` is set, in which
        case they are left out and counted in the report's ``skipped``.
        """
        report = read_articles(files, field_map=field_map, drop_fields=drop_fields)
        if report.invalid and not skip_invalid:
            raise InvalidArticlesError(report.invalid)
        return cls.build(
            report.articles,
            path,
            settings=settings,
            encoder=encoder,
            progress=progress,
            records=report.records,
            skipped=len(report.invalid),
            duplicates=report.duplicates,
        )

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path = DEFAULT_INDEX,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
    ) -> Recommender:
        """Open the index at ``path`` for queries.

        Args:
            path: the index folder written by ``build``.
            model: if given, the model the caller expects; an index built with another one
                raises IncompatibleIndexError.
            encoder: the encoder for ``similar_to_text``; by default the index's own model,
                loaded only when first needed.
        """
        path = Path(path)
        version = current_version(path)
        manifest = read_manifest(version)
        for expected in (model, encoder.name if encoder is not None else None):
            if expected is not None and expected != manifest.model:
                raise IncompatibleIndexError(
                    f"index at {path} was built with model {manifest.model!r}, "
                    f"not {expected!r}; rebuild it or use that model"
                )
        vectors = read_vectors(version, manifest)
        table = ArticleTable(version)
        return cls(path, version, manifest, vectors, table, table.columns(), encoder)

    def close(self) -> None:
        self._table.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- looking up -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._columns.ids)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._columns.row_of

    def _row(self, article_id: str) -> int:
        try:
            return self._columns.row_of[str(article_id)]
        except KeyError:
            raise UnknownArticleError(
                f"article {article_id!r} is not in index {self.path}"
            ) from None

    def ids(self) -> list[str]:
        """Every indexed article id, in index order."""
        return list(self._columns.ids)

    def get(self, article_id: str) -> Article:
        """The stored article with this id; UnknownArticleError if there is none."""
        row = self._row(article_id)
        return self._table.articles([row])[row]

    def info(self) -> IndexInfo:
        """Counts, model, settings and size of the index."""
        return IndexInfo(
            index=str(self.path),
            version=self._version.name,
            articles=len(self),
            categories=len(self._columns.categories),
            model=self.manifest.model,
            dimension=self.manifest.dimension,
            format_version=self.manifest.format_version,
            built_at=self.manifest.built_at,
            build_seconds=self.manifest.build_seconds,
            bytes_on_disk=sum(p.stat().st_size for p in self._version.iterdir() if p.is_file()),
            settings=dict(self.manifest.settings),
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
            same_category: only articles in the query article's category.
            categories: only articles in these categories.
            since, until: only articles published in this range (bounds included; a bare
                date as ``until`` includes that day).
            exclude: ids never to return.
            now: the current time, for ``recency_from="now"``.

        The query article never appears, nor articles with the same url or normalised title
        as it or as an article above them in the list. Neither the model nor torch is loaded.
        """
        row = self._row(article_id)
        columns = self._columns
        query_category = int(columns.category_codes[row])
        return self._related(
            self._vectors.reconstruct(row),
            k,
            query_rows=(row,),
            query_day=float(columns.published_days[row]),
            query_category=query_category,
            query_keys=(int(columns.title_codes[row]), int(columns.url_codes[row])),
            options=dict(
                half_life_days=half_life_days,
                category_boost=category_boost,
                recency_weight=recency_weight,
                recency_from=recency_from,
            ),
            same_category=same_category,
            categories=categories,
            since=since,
            until=until,
            exclude=exclude,
            now=now,
        )

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
        from .text import clean_html

        cleaned = clean_html(text)
        if not cleaned:
            raise InvalidQueryError("the query text is empty")
        title, _, body = cleaned.partition("\n")
        vector = self._query_encoder().encode(
            [embedding_text(title, body, self.settings.max_body_chars)]
        )[0]
        moment = parse_datetime(published_at) if published_at is not None else None
        moment = moment or now or datetime.now(timezone.utc)
        return self._related(
            vector,
            k,
            query_rows=(),
            query_day=moment.timestamp() / SECONDS_PER_DAY,
            query_category=self._columns.category_code(category),
            query_keys=(-1, -1),
            options=dict(
                half_life_days=half_life_days,
                category_boost=category_boost,
                recency_weight=recency_weight,
                recency_from=recency_from,
            ),
            same_category=same_category,
            categories=categories,
            since=since,
            until=until,
            exclude=exclude,
            now=now,
        )

    def candidates(self, article_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The candidate stage of ``similar(article_id, k)`` on its own, without filters.

        Returns (id, cosine similarity) pairs, nearest first, before reranking and duplicate
        removal: what reranking chooses from. Useful to see why an article is missing.
        """
        row = self._row(article_id)
        found = retrieve(
            self._vectors, self._vectors.reconstruct(row), self._candidate_count(k), drop={row}
        )
        ids = self._columns.ids
        return [
            (ids[int(r)], float(s)) for r, s in zip(found.rows, found.similarities, strict=True)
        ]

    def _candidate_count(self, k: int) -> int:
        return min(len(self._columns.ids), max(self.settings.candidates, 3 * int(k)))

    def _query_encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = SentenceTransformerEncoder(
                self.manifest.model, batch_size=self.settings.batch_size
            )
        if self._encoder.dimension != self.manifest.dimension:
            raise ModelError(
                f"model {self._encoder.name!r} gives vectors of dimension "
                f"{self._encoder.dimension}, the index at {self.path} holds "
                f"{self.manifest.dimension}"
            )
        return self._encoder

    def _related(
        self,
        vector: np.ndarray,
        k: int,
        *,
        query_rows: tuple[int, ...],
        query_day: float,
        query_category: int,
        query_keys: tuple[int, int],
        options: dict[str, Any],
        same_category: bool,
        categories: Iterable[str] | None,
        since: datetime | date | str | None,
        until: datetime | date | str | None,
        exclude: Iterable[str],
        now: datetime | None,
    ) -> list[Recommendation]:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise InvalidQueryError(f"k must be a whole number, got {k!r}")
        if k < 0:
            raise InvalidQueryError(f"k must be 0 or more, got {k}")
        ranking = {
            name: getattr(self.settings, name) if value is FROM_SETTINGS else value
            for name, value in options.items()
        }
        check_ranking(**ranking)
        columns = self._columns
        filters = self._filters(query_category, same_category, categories, since, until)
        if k == 0:
            return []

        drop = set(query_rows)
        drop.update(columns.row_of[i] for i in exclude if i in columns.row_of)
        found = retrieve(
            self._vectors,
            vector,
            self._candidate_count(k),
            drop=drop,
            allowed=allowed_rows(columns, filters) if filters.active else None,
        )
        rows = found.rows
        if ranking["recency_from"] == "now":
            moment = now or datetime.now(timezone.utc)
            reference: float | None = moment.timestamp() / SECONDS_PER_DAY
        else:
            reference = None if np.isnan(query_day) else query_day
        ranked = rerank(
            found.similarities,
            columns.published_days[rows],
            columns.category_codes[rows],
            reference_day=reference,
            query_category=query_category,
            half_life_days=ranking["half_life_days"],
            recency_weight=ranking["recency_weight"],
            category_boost=ranking["category_boost"],
            future_is_fresh=ranking["recency_from"] == "now",
        )
        chosen = first_of_each(
            ranked.order,
            columns.title_codes[rows],
            columns.url_codes[rows],
            taken=query_keys,
            limit=int(k),
        )
        stored = self._table.articles([int(rows[i]) for i in chosen])
        results = []
        for i in chosen:
            article = stored[int(rows[i])]
            results.append(
                Recommendation(
                    id=article.id,
                    score=float(ranked.scores[i]),
                    similarity=float(found.similarities[i]),
                    recency_factor=float(ranked.recency[i]),
                    category_factor=float(ranked.category[i]),
                    title=article.title,
                    category=article.category,
                    published_at=article.published_at,
                    url=article.url,
                    source=article.source,
                    lang=article.lang,
                    tags=article.tags,
                    metadata=dict(article.metadata),
                )
            )
        return results

    def _filters(
        self,
        query_category: int,
        same_category: bool,
        categories: Iterable[str] | None,
        since: datetime | date | str | None,
        until: datetime | date | str | None,
    ) -> Filters:
        columns = self._columns
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
