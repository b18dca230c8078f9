"""Writing an index: builds, additions and removals, stored settings (``IndexWriter``).

Each operation runs in one write (``transaction.writing``): one writer at a time, readers never
wait. A build writes a new version (``transaction.write_version``); an update appends to the
current one (``apply_change``) and may compact it after (``compaction.maintain``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..articles import Article, check_article
from ..embedding.encode import (
    Encoder,
    ProgressFn,
    encode_all,
    load_encoder,
    model_dimension,
    model_for,
)
from ..embedding.supplied import (
    MissingVectors,
    SuppliedVectors,
    check_dimension,
    check_model,
    match,
    read_vectors,
    refuse_unsupplied,
    without_vector,
)
from ..errors import (
    IncompatibleIndexError,
    IndexDamagedError,
    RecommenderError,
    SettingsError,
)
from ..language import effective as effective_language
from ..lexical import Lexicon, TermVector, lexical_text
from ..names import proper_terms
from ..read.snapshot import Snapshot
from ..results import BuildReport, UpdateReport
from ..settings import AUTO_MODEL, BUILD_FIELDS, Ranking, Settings, checked_threads
from ..storage import cursors, overrides
from ..storage.files import fsync_dir
from ..storage.layout import ARTICLES, CURRENT, SEGMENT_NAME, current_version, remove_unfinished
from ..storage.manifest import MANIFEST, REUSABLE_FORMAT, Manifest, read_manifest, write_manifest
from ..storage.table import (
    INSERT_ARTICLE,
    INSERT_TERMS,
    ROW_CHECKSUMS,
    ArticleRow,
    ArticleTable,
    add_language_column,
    checkpoint,
    connect,
    ensure_build,
    generation_of,
    row_checksum,
    terms_row,
)
from ..storage.vectors import new_vector_index, search_of, write_segment
from ..text import content_hash, embedding_text
from . import precompute
from .compaction import maintain, stored_vectors
from .lexicon import fit as fit_lexicon
from .overrides import Overrides as Overrides
from .overrides import store as store_override
from .transaction import (
    record,
    remove_leftovers,
    rollback,
    token,
    write_checksums,
    write_version,
    writing,
)

logger = logging.getLogger(__name__)


def _refuse_damaged_rows(
    connection: sqlite3.Connection, version: Path, rows: Sequence[int]
) -> None:
    """IndexDamagedError if a row whose fields are about to be rewritten does not match its
    checksum: its new checksum would otherwise vouch for the damaged title or body it keeps."""
    for start in range(0, len(rows), 500):
        part = [int(row) for row in rows[start : start + 500]]
        found = connection.execute(
            f"SELECT {', '.join(ArticleRow.columns())}, crc FROM articles JOIN row_checksums "
            f"USING (row) WHERE row IN ({','.join('?' * len(part))})",
            part,
        )
        for values in found:
            if values[-1] != row_checksum(values):
                raise IndexDamagedError(
                    f"index at {version.parent} is damaged: the stored article {values[1]!r} "
                    f"(row {values[0]}) does not match its checksum; build the index again"
                )


@dataclass(frozen=True)
class Change:
    """What one update does to a version."""

    new: Sequence[tuple[Article, str]] = ()  # articles to append, with their content hash
    vectors: np.ndarray | None = None  # one per new article
    metadata: Sequence[tuple[int, Article]] = ()  # rows whose fields change, text unchanged
    removed_rows: Sequence[int] = ()
    removed_ids: Sequence[str] = ()
    terms: Sequence[TermVector] = ()  # one per new article
    # the effective language of each new or changed article, by id
    languages: Mapping[str, str | None] = field(default_factory=dict)
    cursor: cursors.Advance | None = None  # a sync's, committed with the articles it covers


def apply_change(version: Path, dimension: int, vector_type: str, change: Change) -> int:
    """Commit one update to a version; returns the number of articles removed by id."""
    connection = connect(version / ARTICLES, write=True)
    try:
        connection.execute(ROW_CHECKSUMS)  # a version written before checksums gets them
        add_language_column(connection)  # and one written before languages, its column
        known = {row[0] for row in connection.execute("SELECT file FROM segments")}
        for entry in os.scandir(version):
            # written by a writer that died before committing: only the engine's own names
            if (
                SEGMENT_NAME.fullmatch(entry.name)
                and entry.name not in known
                and entry.is_file(follow_symlinks=False)
            ):
                os.unlink(entry.path)
        generation = generation_of(connection) + 1
        first_row = connection.execute("SELECT coalesce(max(row) + 1, 0) FROM articles").fetchone()[
            0
        ]
        segments = []
        if change.new:
            assert change.vectors is not None and len(change.vectors) == len(change.new)
            assert len(change.terms) == len(change.new)
            number = connection.execute("SELECT coalesce(max(number), 0) + 1 FROM segments")
            index = new_vector_index(dimension, vector_type)
            index.add(np.ascontiguousarray(change.vectors, dtype=np.float32))
            segments.append(write_segment(version, number.fetchone()[0], first_row, index))
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "UPDATE articles SET removed = 1, changed = ? WHERE row = ? AND removed = 0",
                [(generation, row) for row in change.removed_rows],
            )
            removed = 0
            for start in range(0, len(change.removed_ids), 500):
                part = list(change.removed_ids[start : start + 500])
                cursor = connection.execute(
                    "UPDATE articles SET removed = 1, changed = ? WHERE removed = 0 AND id IN "
                    f"({','.join('?' * len(part))})",
                    [generation, *part],
                )
                removed += cursor.rowcount
                overrides.delete_of(connection, part)  # a removed article's go with it
            connection.executemany(
                INSERT_ARTICLE,
                [
                    ArticleRow.of(
                        first_row + offset,
                        article,
                        text_hash,
                        generation,
                        change.languages.get(article.id),
                    ).values()
                    for offset, (article, text_hash) in enumerate(change.new)
                ],
            )
            connection.executemany(
                INSERT_TERMS,
                [terms_row(first_row + offset, v) for offset, v in enumerate(change.terms)],
            )
            _refuse_damaged_rows(connection, version, [row for row, _ in change.metadata])
            connection.executemany(
                UPDATE_FIELDS,
                [
                    _fields_update(row, article, generation, change.languages.get(article.id))
                    for row, article in change.metadata
                ],
            )
            write_checksums(
                connection,
                [first_row + offset for offset in range(len(change.new))]
                + [row for row, _ in change.metadata],
            )
            if change.cursor is not None:
                cursors.write(connection, change.cursor)
            record(connection, segments, generation)
            connection.execute("COMMIT")
        except BaseException:
            rollback(connection, version)
            for segment in segments:  # named by no transaction: free the space now
                (version / segment.file).unlink(missing_ok=True)
            raise
        checkpoint(connection)
        return removed
    finally:
        connection.close()


def replace_manifest(version: Path, manifest: Manifest) -> None:
    """Write a version's manifest anew (atomically) and bump its generation, so that readers
    pick up the new settings on their next refresh."""
    staged = version / f".{MANIFEST}.{token()}"
    write_manifest(version, manifest, name=staged.name)  # a new file (flushed), or an error
    try:
        os.replace(staged, version / MANIFEST)
    finally:
        staged.unlink(missing_ok=True)
    fsync_dir(version)
    bump_generation(version)


def record_build(version: Path) -> None:
    """Give a version written before builds had an id one (``table.ensure_build``), for its
    derived files to be bound to; nothing for a version that has one."""
    connection = connect(version / ARTICLES, write=True)
    try:
        ensure_build(connection)
        checkpoint(connection)
    finally:
        connection.close()


def bump_generation(version: Path) -> None:
    """Count one more update of a version, changing no row: its readers refresh (and so see
    a new manifest, or new precomputed lists)."""
    connection = connect(version / ARTICLES, write=True)
    try:
        connection.execute(
            "UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        checkpoint(connection)
    finally:
        connection.close()


#: The columns an update of an article's fields rewrites (its text, and so its vectors, stay).
FIELD_COLUMNS = tuple(
    name
    for name in ArticleRow.columns()
    if name not in ("row", "id", "title", "body", "content_hash", "removed")
)
UPDATE_FIELDS = (
    f"UPDATE articles SET {', '.join(f'{name}=?' for name in FIELD_COLUMNS)} WHERE row = ?"
)


def _fields_update(
    row: int, article: Article, generation: int, language: str | None
) -> tuple[Any, ...]:
    stored = ArticleRow.of(row, article, "", generation, language)
    return (*(getattr(stored, name) for name in FIELD_COLUMNS), row)


def _versions() -> dict[str, str]:
    found = {}
    for name in ("recommender", "faiss-cpu", "sentence-transformers", "numpy"):
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def _texts_and_hashes(
    articles: Sequence[Article], settings: Settings
) -> tuple[list[str], list[str]]:
    """The text each article is embedded from, and its content hash."""
    texts = [embedding_text(a.title, a.body, settings.max_body_chars) for a in articles]
    return texts, [content_hash(text) for text in texts]


def last_wins(articles: Iterable[Article]) -> tuple[list[Article], int]:
    """The articles with one per id (the last given), and how many earlier ones were dropped."""
    unique: dict[str, Article] = {}
    duplicates = 0
    for article in articles:
        if article.id in unique:
            duplicates += 1
            del unique[article.id]  # re-inserted below, so order follows the winning record
        unique[article.id] = article
    return list(unique.values()), duplicates


def _stored_overrides(index_dir: Path) -> list[overrides.Row]:
    """The editorial overrides of the index's current version (none without one): a build
    carries them into the new version."""
    if not (index_dir / CURRENT).is_file():
        return []
    try:
        connection = connect(current_version(index_dir) / ARTICLES, write=False)
        try:
            return overrides.read(connection)
        finally:
            connection.close()
    except (RecommenderError, sqlite3.Error) as exc:  # a damaged index is built anew
        logger.warning("editorial overrides of %s not carried over: %s", index_dir, exc)
        return []


def stored_ranking(index_dir: Path) -> Ranking | None:
    """The ranking settings of the index at ``index_dir``; None when there is none."""
    try:
        manifest = read_manifest(current_version(index_dir), oldest=REUSABLE_FORMAT)
    except RecommenderError as exc:
        logger.debug("no stored ranking taken from %s: %s", index_dir, exc)
        return None
    return Settings.from_dict(manifest.settings).ranking


def _reusable_vectors(
    index_dir: Path, model: str, hashes: Sequence[str]
) -> tuple[int | None, dict[str, np.ndarray]]:
    """Stored vectors of the index at ``index_dir`` for these content hashes, if it was built
    with ``model``: (its dimension, hash -> vector). Nothing when there is no usable index."""
    try:
        version = current_version(index_dir)
        manifest = read_manifest(version, oldest=REUSABLE_FORMAT)
    except RecommenderError as exc:
        logger.debug("no stored vectors reused from %s: %s", index_dir, exc)
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


def _given(
    articles: Iterable[Article], vectors: str | Path | SuppliedVectors | None
) -> tuple[list[Article], SuppliedVectors | None]:
    """What a build or an update was given, checked before anything is written: each article
    as the file reader would accept it (InvalidArticleError), the vectors file read whole."""
    chosen = list(articles)
    for article in chosen:
        check_article(article)
    if vectors is None or isinstance(vectors, SuppliedVectors):
        return chosen, vectors
    return chosen, read_vectors(vectors)


class IndexWriter:
    """Writes the index at ``path``: builds, additions, removals, compaction, stored settings.

    Each operation takes the index's writer lock for its duration: one writer at a time, across
    processes. ``wait``: if another process is writing, False fails at once with
    IndexBusyError, True waits as long as it takes, a number waits that many seconds at most.
    ``encoder`` embeds new text; by default the model named in the settings (for a build) or
    in the index (for an update), loaded when first needed, with ``threads`` (see
    ``load_encoder``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        encoder: Encoder | None = None,
        wait: bool | float = False,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.encoder = encoder
        self.wait = wait
        self.threads = checked_threads(threads)
        self._lexicon_lock = threading.Lock()
        self._lexicon_of: tuple[str, Lexicon] | None = None

    def build(
        self,
        articles: Iterable[Article],
        settings: Settings | None = None,
        *,
        progress: ProgressFn | None = None,
        lists_progress: ProgressFn | None = None,
        records: int | None = None,
        skipped: int = 0,
        duplicates: int = 0,
        vectors: str | Path | SuppliedVectors | None = None,
        missing_vectors: MissingVectors = "embed",
        cursor: cursors.Advance | None = None,
    ) -> BuildReport:
        """Embed ``articles`` and write them as the new version of the index (see
        ``Recommender.build``); ``vectors``: embeddings supplied for some or all of them (or
        their file), ``missing_vectors``: embed those they do not cover, or refuse the build;
        ``cursor``: a sync's, written with them (``storage.cursors``)."""
        started = time.perf_counter()
        articles, vectors = _given(articles, vectors)
        if settings is None:
            settings = Settings(ranking=stored_ranking(self.path) or Ranking())
        chosen, dropped = last_wins(articles)
        duplicates += dropped
        encoder = self.encoder
        if encoder is not None:
            model, choice = encoder.name, "the encoder given to the build"
        elif vectors is not None and settings.model == AUTO_MODEL:
            model, choice = vectors.model, f"the model of the vectors supplied in {vectors.path}"
        else:
            chosen_model = model_for(settings.model, chosen)
            model, choice = chosen_model.model, chosen_model.reason
        settings = replace(settings, model=model)
        texts, hashes = _texts_and_hashes(chosen, settings)
        languages = [effective_language(a.lang, a.title, a.body) for a in chosen]
        supplied: dict[int, np.ndarray] = {}
        matched = None
        if vectors is not None:
            check_model(vectors, model, None, "this build")
            known = int(encoder.dimension) if encoder is not None else model_dimension(model)
            check_dimension(vectors, model, known)
            matched = match(vectors, chosen, hashes)
            supplied = matched.vectors
        lexical_texts = [lexical_text(a.title, a.body) for a in chosen]
        lexicon, terms = fit_lexicon(
            lexical_texts, settings.lexical_ngrams, settings.lexical_min_df, languages=languages
        )
        names = proper_terms(lexicon, lexical_texts, languages)
        with writing(self.path, self.wait) as state:
            dimension, reused = _reusable_vectors(self.path, model, hashes)
            if vectors is not None:
                if dimension is not None and dimension != vectors.dimension:
                    reused = {}  # the old index holds vectors of another length: not these
                dimension = vectors.dimension
            missing = [
                i
                for i, text_hash in enumerate(hashes)
                if i not in supplied and text_hash not in reused
            ]
            if matched is not None and missing_vectors == "refuse":
                refuse_unsupplied(matched, chosen, missing)
            if missing or dimension is None:
                encoder = encoder or load_encoder(
                    model, batch_size=settings.batch_size, threads=self.threads
                )
                if vectors is not None:
                    check_dimension(vectors, model, int(encoder.dimension))
                dimension = int(encoder.dimension)
            embedded = np.empty((len(chosen), dimension), dtype=np.float32)
            if missing:
                assert encoder is not None
                embedded[missing] = encode_all(
                    encoder, [texts[i] for i in missing], progress=progress
                )
            for i, text_hash in enumerate(hashes):
                if i in supplied:
                    embedded[i] = supplied[i]
                elif text_hash in reused:
                    embedded[i] = reused[text_hash]
            manifest = Manifest(
                model=model,
                model_choice=choice,
                dimension=dimension,
                settings=settings.to_dict(),
                search=search_of(settings.to_dict(), len(chosen)),
                built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                build_seconds=round(time.perf_counter() - started, 3),
                versions=_versions(),
            )
            carried = overrides.kept(_stored_overrides(self.path), (a.id for a in chosen))
            version = write_version(
                self.path,
                manifest,
                chosen,
                embedded,
                hashes,
                lexicon,
                terms,
                languages,
                lists_progress=lists_progress,
                overrides=carried,
                cursor=cursor,
                names=names,
            )
            state.committed = True
        return BuildReport(
            index=str(self.path),
            articles=len(chosen),
            records=records if records is not None else len(chosen) + duplicates,
            skipped=skipped,
            duplicates=duplicates,
            seconds=time.perf_counter() - started,
            index_bytes=sum(p.stat().st_size for p in version.iterdir() if p.is_file()),
            model=model,
            reused=len(chosen) - len(missing) - len(supplied),
            supplied=len(supplied),
            stale=matched.stale if matched else 0,
            without_vector=without_vector(missing, matched) if matched else 0,
            embedded=len(missing),
        )

    def add(
        self,
        articles: Iterable[Article],
        *,
        progress: ProgressFn | None = None,
        vectors: str | Path | SuppliedVectors | None = None,
        missing_vectors: MissingVectors = "embed",
        removed: Sequence[str] = (),
        cursor: cursors.Advance | None = None,
    ) -> UpdateReport:
        """Insert new articles and update changed ones (see ``Recommender.add``);
        ``vectors``: embeddings supplied for some or all of them (or their file),
        ``missing_vectors``: embed those they do not cover, or refuse the update;
        ``removed``: ids to take out, ``cursor``: a sync's, both in the same commit."""
        started = time.perf_counter()
        articles, vectors = _given(articles, vectors)
        chosen, duplicates = last_wins(articles)
        with writing(self.path, self.wait) as state:
            version, manifest, settings = self._writable()
            texts, hashes = _texts_and_hashes(chosen, settings)
            languages = {a.id: effective_language(a.lang, a.title, a.body) for a in chosen}
            supplied: dict[int, np.ndarray] = {}
            matched = None
            if vectors is not None:
                check_model(vectors, manifest.model, manifest.dimension, f"the index {self.path}")
                matched = match(vectors, chosen, hashes)
                supplied = matched.vectors
            table = ArticleTable(version)
            try:
                stored = table.live_hashes(a.id for a in chosen)
            finally:
                table.close()
            new, fields_only, replaced_rows, embed = [], [], [], []
            for i, (article, text_hash) in enumerate(zip(chosen, hashes, strict=True)):
                found = stored.get(article.id)
                if found is not None and found[1] == text_hash:
                    fields_only.append((found[0], article))
                    continue
                if found is not None:
                    replaced_rows.append(found[0])
                new.append((article, text_hash))
                embed.append(i)
            unsupplied = [i for i in embed if i not in supplied]
            if matched is not None and missing_vectors == "refuse":
                refuse_unsupplied(matched, chosen, unsupplied)
            new_vectors = None
            if embed:
                new_vectors = np.empty((len(embed), manifest.dimension), dtype=np.float32)
                local = [at for at, i in enumerate(embed) if i not in supplied]
                for at, i in enumerate(embed):
                    if i in supplied:
                        new_vectors[at] = supplied[i]
                if local:
                    encoder = self._encoder(manifest, settings)
                    new_vectors[local] = encode_all(
                        encoder, [texts[embed[at]] for at in local], progress=progress
                    )
            terms = (
                self._lexicon(version, settings).vectorize(
                    [lexical_text(article.title, article.body) for article, _ in new],
                    languages=[languages[article.id] for article, _ in new],
                )
                if new
                else []
            )
            taken_out = apply_change(
                version,
                manifest.dimension,
                settings.vector_type,
                Change(
                    new=new,
                    vectors=new_vectors,
                    metadata=fields_only,
                    removed_rows=replaced_rows,
                    removed_ids=list(dict.fromkeys(removed)),
                    terms=terms,
                    languages=languages,
                    cursor=cursor,
                ),
            )
            state.committed = True
            compacted = maintain(self.path, version, manifest) == "compacted"
        return UpdateReport(
            index=str(self.path),
            added=len(new) - len(replaced_rows),
            replaced=len(replaced_rows),
            fields_only=len(fields_only),
            removed=taken_out,
            duplicates=duplicates,
            embedded=len(unsupplied),
            supplied=len(embed) - len(unsupplied),
            stale=matched.stale if matched else 0,
            without_vector=without_vector(unsupplied, matched) if matched else 0,
            seconds=time.perf_counter() - started,
            compacted=compacted,
        )

    def remove(self, ids: Iterable[str]) -> UpdateReport:
        """Take articles out of the index (see ``Recommender.remove``)."""
        started = time.perf_counter()
        wanted = list(dict.fromkeys(str(i) for i in ids))
        with writing(self.path, self.wait) as state:
            version, manifest, settings = self._writable()
            removed = apply_change(
                version, manifest.dimension, settings.vector_type, Change(removed_ids=wanted)
            )
            state.committed = True
            compacted = maintain(self.path, version, manifest) == "compacted"
        return UpdateReport(
            index=str(self.path),
            removed=removed,
            missing=len(wanted) - removed,
            seconds=time.perf_counter() - started,
            compacted=compacted,
        )

    def override(
        self, kind: str, article: str, related: str, position: int | None, undo: bool
    ) -> None:
        """Add or undo one editorial override (see ``write.overrides``)."""
        with writing(self.path, self.wait) as state:
            version, _, _ = self._writable()
            store_override(version, kind, article, related, position, undo)
            state.committed = True

    def overrides(
        self, refresh: Callable[[], object], current: Callable[[], Snapshot]
    ) -> Overrides:
        """The editorial overrides of this index (``Recommender.overrides``)."""
        return Overrides(self, refresh, current)

    def store_ranking(self, ranking: Ranking, progress: ProgressFn | None = None) -> None:
        """Make ``ranking`` the index's own (its queries' defaults); readers pick it up on
        their next refresh. Build settings cannot change without a build. The precomputed
        lists are computed again for a new ranking (``progress``: called with (done, total))."""
        with writing(self.path, self.wait):
            version, manifest, settings = self._writable()
            replace_manifest(
                version, replace(manifest, settings=replace(settings, ranking=ranking).to_dict())
            )
            if ranking != settings.ranking:
                self._relist(version, progress)

    def precompute(self, progress: ProgressFn | None = None) -> Path | None:
        """Compute the precomputed lists of the current version anew, at its generation
        (none when its settings ask for none); the file written."""
        with writing(self.path, self.wait):
            version, _, _ = self._writable()
            return self._relist(version, progress)

    def _relist(self, version: Path, progress: ProgressFn | None = None) -> Path | None:
        """Compute the precomputed lists of ``version`` again, at its current generation, then
        count one more generation so that readers refresh and take them up. A version with no
        usable image (one written before images were bound to their build, or one copied in
        from another) gets its own first."""
        record_build(version)  # a version written before builds had an id gets one
        snapshot = Snapshot.of_version(self.path, version)
        try:
            if not snapshot.from_image:
                snapshot.save_image()
            written = precompute.save(snapshot, progress)
        finally:
            snapshot.close()
        if written is not None:
            bump_generation(version)
        return written

    def store_settings(self, settings: Settings) -> None:
        """Like ``store_ranking``; SettingsError if a build setting differs from the index's."""
        with writing(self.path, self.wait):
            version, manifest, stored = self._writable()
            changed = [
                name
                for name in BUILD_FIELDS
                if name != "batch_size" and getattr(settings, name) != getattr(stored, name)
            ]
            if changed:
                raise SettingsError(
                    f"{', '.join(changed)} can only change with a new build (recommend build-index)"
                )
            replace_manifest(version, replace(manifest, settings=settings.to_dict()))
            if settings.ranking != stored.ranking:
                self._relist(version)

    def _writable(self) -> tuple[Path, Manifest, Settings]:
        """The version to update (under the writer lock), with what interrupted writers left
        beside it deleted first."""
        version = current_version(self.path)
        manifest = read_manifest(version)
        remove_leftovers(self.path, keep=version.name)
        remove_unfinished(version)  # an image, lists or manifest a killed writer was writing
        if self.encoder is not None and self.encoder.name != manifest.model:
            raise IncompatibleIndexError(
                f"index at {self.path} was built with model {manifest.model!r}, not "
                f"{self.encoder.name!r}; open it again or build it with that model"
            )
        return version, manifest, Settings.from_dict(manifest.settings)

    def _encoder(self, manifest: Manifest, settings: Settings) -> Encoder:
        if self.encoder is None:
            self.encoder = load_encoder(
                manifest.model, batch_size=settings.batch_size, threads=self.threads
            )
        return checked_encoder(self.encoder, manifest.dimension, self.path)

    def encoder_for(self, manifest: Manifest) -> Encoder:
        """The encoder of the index of ``manifest`` (loaded once): what embeds its articles,
        and a query's text."""
        return self._encoder(manifest, Settings.from_dict(manifest.settings))

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


def checked_encoder(encoder: Encoder, dimension: int, where: Path) -> Encoder:
    """``encoder``, if it gives vectors of the index's dimension; ModelError otherwise."""
    if encoder.dimension != dimension:
        from ..errors import ModelError

        raise ModelError(
            f"model {encoder.name!r} gives vectors of dimension {encoder.dimension}, "
            f"the index at {where} holds {dimension}"
        )
    return encoder
