"""What an opened index answers from: the current ``Snapshot``, replaced whole by a refresh.

A ``Reader`` is shared by every thread of a process. Queries take ``current()`` and keep
that snapshot to the end; a refresh builds a new one beside it (only the segments and rows
written since, or the whole index when a build or compaction replaced its version) and swaps
it in. Rows removed by another process since the snapshot was taken are known at once from the
table (``removed``), so no query returns them, refreshed or not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..articles import Article, quoted
from ..errors import IncompatibleIndexError, RecommenderError, UnknownArticleError
from ..language import recognised
from ..results import Answers, IndexInfo, IndexStatus
from ..settings import (
    AUTO_MODEL,
    CACHED_ARTICLES,
    MULTILINGUAL_MODEL,
    MULTILINGUAL_NAMES,
    checked_cached_articles,
)
from ..storage.layout import current_version, last_written
from ..storage.manifest import Manifest, read_manifest
from ..storage.vectors import describe_search
from .snapshot import Snapshot

log = logging.getLogger(__name__)


def check_model(path: Path, model: str, expected: str | None) -> None:
    """IncompatibleIndexError when the index at ``path``, built with ``model``, is not of the
    ``expected`` model (None or "auto": any)."""
    if expected in MULTILINGUAL_NAMES:
        expected = MULTILINGUAL_MODEL
    if expected not in (None, AUTO_MODEL) and expected != model:
        raise IncompatibleIndexError(
            f"index at {path} was built with model {model!r}, not {expected!r}; "
            "rebuild it or use that model"
        )


class Reader:
    """The current snapshot of the index at ``path``, refreshed on demand or every
    ``auto_refresh`` seconds; with ``lazy``, loaded when first needed (only the manifest is
    read at once). ``on_model_change`` is called when a rebuild changed the index's model;
    ``cached_articles``: how many articles' shown fields each snapshot keeps (``shown``)."""

    def __init__(
        self,
        path: Path,
        *,
        expected_model: str | None = None,
        auto_refresh: float | None = None,
        lazy: bool = False,
        on_model_change: Callable[[], None] = lambda: None,
        cached_articles: int = CACHED_ARTICLES,
    ) -> None:
        self.path = path
        self._expected = expected_model
        self._auto_refresh = auto_refresh
        self._next_check = time.monotonic() + (auto_refresh or 0.0)
        self._lock = threading.Lock()
        self._on_model_change = on_model_change
        self._cached_articles = checked_cached_articles(cached_articles)
        self._held: Snapshot | None = None
        self._manifest: Manifest | None = None
        self._refreshed_at = 0.0  # Unix time of the last load or check that succeeded
        self._answers_lock = threading.Lock()
        self._answers = [0, 0]  # precomputed, searched
        if lazy:
            self._manifest = read_manifest(current_version(path))
            check_model(path, self._manifest.model, expected_model)
        else:
            self._held = self._load()

    def _load(self) -> Snapshot:
        loaded = Snapshot.load(self.path, self._cached_articles)
        check_model(self.path, loaded.manifest.model, self._expected)
        self._refreshed_at = time.time()
        return loaded

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot held now (loaded by the first thread that needs it, if lazy)."""
        held = self._held
        if held is None:
            with self._lock:
                if self._held is None:
                    self._held = self._load()
                held = self._held
        return held

    @property
    def manifest(self) -> Manifest:
        if self._held is None and self._manifest is not None:
            return self._manifest
        return self.snapshot.manifest

    def refresh(self) -> bool:
        """Load what was written since; whether anything changed."""
        if self._held is None:
            return False  # nothing loaded yet: the first use loads what is current
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        old = self.snapshot
        if old.replaced:
            new = self._reload(old)
        elif old.changed:
            for attempt in range(3):
                try:
                    new = old.updated()
                    break
                except RecommenderError:
                    if old.replaced:
                        new = self._reload(old)  # compacted or rebuilt meanwhile
                        break
                    if attempt == 2:
                        raise
                    # else the writer merged away a segment file named in the list: read it again
        else:
            self._refreshed_at = time.time()
            return False
        self._held = new
        self._refreshed_at = time.time()
        return True

    def _reload(self, old: Snapshot) -> Snapshot:
        new = self._load()
        if new.manifest.model != old.manifest.model:
            self._on_model_change()
        return new

    def current(self) -> Snapshot:
        """The snapshot to answer from. A rebuilt or compacted index is loaded before
        answering, so that removals made in its new version are never missed."""
        self._maybe_refresh()
        snapshot = self.snapshot
        if snapshot.replaced:
            with self._lock:
                if self._held is snapshot:
                    try:
                        self._refresh()
                    except RecommenderError as exc:  # keep answering from the old one
                        log.warning("could not load the new version of %s: %s", self.path, exc)
            snapshot = self.snapshot
        return snapshot

    def _maybe_refresh(self) -> None:
        if self._auto_refresh is None or self._held is None:
            return
        if time.monotonic() < self._next_check:
            return
        if self._lock.acquire(blocking=False):  # one thread refreshes, the others go on
            try:
                self._next_check = time.monotonic() + self._auto_refresh
                self._refresh()
            except RecommenderError as exc:  # answer from what is loaded; the next check retries
                log.warning("automatic refresh of %s failed: %s", self.path, exc)
            finally:
                self._lock.release()

    def current_and_removed(self) -> tuple[Snapshot, frozenset[int]]:
        """``current()`` and its rows removed since (``removed``)."""
        snapshot = self.current()
        return snapshot, self.removed(snapshot)

    def removed(self, snapshot: Snapshot) -> frozenset[int]:
        """Rows of ``snapshot`` removed by another process since it was taken (the table
        knows at once; a refresh would drop them from the snapshot itself)."""
        size = len(snapshot.columns.ids)
        return frozenset(
            row for row in snapshot.table.removed_since(snapshot.generation) if row < size
        )

    def live_row(
        self, snapshot: Snapshot, article_id: str, removed: frozenset[int] | None = None
    ) -> int:
        """The row of a live article: in the snapshot and not removed since."""
        row = snapshot.row(article_id)
        if row in (self.removed(snapshot) if removed is None else removed):
            raise UnknownArticleError(f"article {quoted(article_id)} is not in index {self.path}")
        return row

    def live_count(self) -> int:
        """How many articles the index holds now."""
        return self._live_count(self.current())

    def _live_count(self, snapshot: Snapshot) -> int:
        alive = snapshot.columns.alive
        gone = sum(1 for row in self.removed(snapshot) if row < len(alive) and alive[row])
        return len(snapshot.columns.row_of) - gone

    def contains(self, article_id: object) -> bool:
        snapshot = self.current()
        row = snapshot.columns.row_of.get(article_id) if isinstance(article_id, str) else None
        return row is not None and row not in self.removed(snapshot)

    def ids(self) -> list[str]:
        """Every live article id, in row order."""
        snapshot = self.current()
        removed = self.removed(snapshot)
        columns = snapshot.columns
        return [columns.ids[row] for row in sorted(columns.row_of.values()) if row not in removed]

    def language(self, article_id: str) -> str | None:
        """The language kept for a live article (its ``lang``, else detected), if known."""
        snapshot = self.current()
        return snapshot.columns.language(self.live_row(snapshot, article_id))

    def get(self, article_id: str) -> Article:
        """The stored article with this id; UnknownArticleError if there is none."""
        snapshot = self.current()
        row = snapshot.row(article_id)
        found = snapshot.table.articles([row])
        if row not in found:  # removed since the last refresh
            raise UnknownArticleError(f"article {quoted(article_id)} is not in index {self.path}")
        return found[row]

    def answered(self, precomputed: bool) -> None:
        """Count an answer of ``similar``: from the precomputed lists, or searched."""
        with self._answers_lock:
            self._answers[0 if precomputed else 1] += 1

    def answers(self) -> Answers:
        with self._answers_lock:
            return Answers(*self._answers)

    def status(self) -> IndexStatus:
        """Live articles, generation and version of the current snapshot, when the index was
        last written and this process last refreshed, and the answers counted."""
        articles = self.live_count()  # refreshes first when due, as a query does
        snapshot = self.snapshot
        return IndexStatus(
            articles=articles,
            generation=snapshot.generation,
            version=snapshot.version.name,
            written_at=last_written(self.path, snapshot.version),
            refreshed_at=self._refreshed_at,
            answers=self.answers(),
        )

    def info(self) -> IndexInfo:
        """Counts, model, settings and size of the index (``recommend info``), all of one
        snapshot: the current one, loaded first if a build or compaction replaced the one held.

        That build deletes the version folder the held snapshot was read from, so its size
        cannot be read; one landing between taking the snapshot and reading its folder is
        answered from its own new version."""
        for attempt in range(3):
            snapshot = self.current()
            try:
                return self._info(snapshot)
            except OSError:
                if attempt == 2 or not snapshot.replaced:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _info(self, snapshot: Snapshot) -> IndexInfo:
        manifest = snapshot.manifest
        languages = snapshot.columns.live_languages
        categories = snapshot.columns.live_category_counts
        return IndexInfo(
            index=str(self.path),
            version=snapshot.version.name,
            articles=self._live_count(snapshot),
            categories=len(categories),
            model=manifest.model,
            model_choice=manifest.model_choice,
            dimension=manifest.dimension,
            format_version=manifest.format_version,
            built_at=manifest.built_at,
            build_seconds=manifest.build_seconds,
            bytes_on_disk=sum(p.stat().st_size for p in snapshot.version.iterdir() if p.is_file()),
            settings=dict(manifest.settings),
            generation=snapshot.generation,
            removed_rows=int((~snapshot.columns.alive).sum()),
            segments=len(snapshot.parts),
            vector_search=describe_search(manifest.search),
            search=dict(manifest.search) or {"type": "flat"},
            precomputed=snapshot.lists_status(),
            languages=languages,
            unrecognised_languages=sorted(code for code in languages if not recognised(code)),
            category_counts=categories,
            overrides=snapshot.overrides.counts(),
        )

    def close(self) -> None:
        if self._held is not None:
            self._held.close()
