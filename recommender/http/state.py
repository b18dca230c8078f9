"""What a worker holds between requests: its index (``IndexState``) and the title search
cache (``Titles``); ``create_app`` puts one of each on ``app.state``."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from ..articles import Article
from ..embedding.encode import Encoder
from ..engine import Recommender
from ..errors import RecommenderError, UnknownArticleError
from ..settings import CACHED_ARTICLES
from ..text import search_key
from .errors import ApiError, public_message

log = logging.getLogger(__name__)


class IndexState:
    """The worker's Recommender, opened on first use if it could not be at start (at most one
    try a second), and the tag of the state its answers come from, for ETags."""

    def __init__(
        self,
        path: Path | None,
        recommender: Recommender | None,
        encoder: Encoder | None,
        refresh_seconds: float,
        threads: int | None = None,
        *,
        cached_articles: int = CACHED_ARTICLES,
    ) -> None:
        self.path = path if path is not None else (recommender.path if recommender else None)
        self._rec = recommender
        self._owned = recommender is None  # opened here, so closed here
        self._encoder = encoder
        self._refresh = refresh_seconds
        self._threads = threads
        self._cached_articles = cached_articles
        self._lock = threading.Lock()
        self._failure = "not opened yet"
        self._next_try = 0.0
        self._next_refresh = 0.0

    def open(self) -> Recommender:
        """The Recommender; ApiError 503 while the index cannot be opened."""
        rec = self._rec
        if rec is not None:
            return rec
        with self._lock:
            if self._rec is None:
                now = time.monotonic()
                if now >= self._next_try and self.path is not None:
                    self._next_try = now + 1.0
                    try:
                        self._rec = Recommender.open(
                            self.path,
                            encoder=self._encoder,
                            auto_refresh=self._refresh or False,
                            threads=self._threads,
                            cached_articles=self._cached_articles,
                        )
                    except RecommenderError as exc:
                        self._failure = public_message(str(exc), self.path)
                        log.warning("cannot open the index: %s", exc)
            if self._rec is None:
                raise ApiError("index-unavailable", f"the index is not open: {self._failure}")
            return self._rec

    @property
    def loaded(self) -> Recommender | None:
        """The Recommender if it is open; never tries to open it (for /metrics)."""
        return self._rec

    @property
    def settled(self) -> bool:
        """Whether the index is open and ``tag()`` would not look for changes now: an answer
        then reads only what is loaded (no file opened, no snapshot loaded)."""
        return self._rec is not None and (
            not self._refresh or time.monotonic() < self._next_refresh
        )

    @property
    def is_open(self) -> bool:
        try:
            self.open()
        except ApiError:
            return False
        return True

    def tag(self) -> str:
        """The version and generation of the index state that answers come from, read from
        the loaded snapshot (no file read, no row counted): it changes with every update,
        rebuild or compaction the worker has loaded.

        The worker looks for changes written by others here too, at most every
        ``refresh_seconds``: a client that only revalidates (``If-None-Match``) runs no query,
        and would otherwise be told 304 after the index changed."""
        rec = self.open()
        now = time.monotonic()
        if self._refresh and now >= self._next_refresh:
            self._next_refresh = now + self._refresh
            try:
                rec.refresh()  # cheap when nothing changed
            except RecommenderError as exc:  # answer from what is loaded; try again later
                log.warning("cannot refresh the index: %s", exc)
        snapshot = rec.snapshot
        return f"{snapshot.version.name}:{snapshot.generation}"

    def close(self) -> None:
        """Close the Recommender if it was opened here (not one given to ``create_app``)."""
        if self._owned and self._rec is not None:
            self._rec.close()


class Titles:
    """Title search over the index, from public facade calls only (ids() and get()).

    Titles are read once (with ``get``), then on a change of generation only for new ids;
    a new index version (a rebuild or compaction) reads them all again. Matches are read
    again before they are returned, so a listed title is always the current one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tag = ""
        self._version = ""
        self._rows: dict[str, tuple[str, str, str | None, datetime | None]] = {}

    def search(self, rec: Recommender, tag: str, words: list[str], limit: int) -> list[Article]:
        """The newest ``limit`` articles whose title (or id) holds every word of ``words``,
        both compared by ``search_key`` ("acildi" finds "Açildi" with dotless i's, "lirova"
        "LİROVA");
        ``tag``: ``IndexState.tag()``."""
        with self._lock:
            if tag != self._tag:
                self._update(rec, tag)
            rows = self._rows
        keys = [key for key in map(search_key, words) if key]
        if not keys:  # combining marks alone, say: nothing to look for
            return []
        found: list[tuple[float, str]] = []
        for article_id, (folded, _, _, published) in rows.items():
            if all(key in folded for key in keys) or article_id.casefold() == " ".join(words):
                found.append((-(published.timestamp() if published else 0.0), article_id))
        found.sort()
        out: list[Article] = []
        for _, article_id in found:
            if len(out) >= limit:
                break
            try:
                article = rec.get(article_id)
            except UnknownArticleError:
                continue
            out.append(article)
        return out

    def _update(self, rec: Recommender, tag: str) -> None:
        version = tag.split(":", 1)[0]
        ids = rec.ids()
        rows = dict(self._rows) if version == self._version else {}
        present = set(ids)
        for gone in [i for i in rows if i not in present]:
            del rows[gone]
        for article_id in ids:
            if article_id not in rows:
                try:
                    article = rec.get(article_id)
                except UnknownArticleError:
                    continue
                rows[article_id] = (
                    search_key(f"{article.title} {article.id}"),
                    article.title,
                    article.category,
                    article.published_at,
                )
        self._rows, self._tag, self._version = rows, tag, version
