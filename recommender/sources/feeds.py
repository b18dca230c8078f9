"""A site's feeds as a source of articles: RSS 2.0, Atom and Google News sitemaps, by URL or file.

Every document is parsed first with defusedxml, which refuses entity declarations (the
"billion laughs") and external entities, and so tells a document that is not XML at all;
feeds are then read by feedparser, news sitemaps from that tree. An entry's id is its guid
(Atom: id), else its link; its body the content, else the summary; its language the entry's,
else the feed's. A feed lists only its latest entries, so one that drops out of it is not
taken down.
"""

from __future__ import annotations

import calendar
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SourceError

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

#: The largest document read, in bytes: a feed is a few hundred KB, a news sitemap at most
#: 1,000 entries.
MAX_BYTES = 50 * 1024 * 1024
#: Seconds to wait for a feed's server.
TIMEOUT = 30
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
NEWS = "{http://www.google.com/schemas/sitemap-news/0.9}"


@dataclass(frozen=True)
class Entries:
    """A document's entries as records of the article fields, each with where it is."""

    kind: str  # "rss", "atom" or "news sitemap"
    records: list[tuple[str, dict[str, Any]]]


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def fetch(source: str) -> bytes:
    """The bytes of a feed at a URL or in a file; SourceError when it cannot be had."""
    if not is_url(source):
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"{source} is neither a database URL, nor a feed URL, nor a file")
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise SourceError(f"cannot read {source}: {exc.strerror or exc}") from None
    else:
        request = urllib.request.Request(source, headers={"User-Agent": "recommender-sync"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                data = answer.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise SourceError(f"cannot fetch {source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(f"cannot fetch {source} ({reason})") from None
    if len(data) > MAX_BYTES:
        raise SourceError(f"{source} is larger than {MAX_BYTES // (1024 * 1024)} MB; not read")
    return data


def parse(source: str, data: bytes) -> Entries:
    """The entries of a feed or news sitemap; SourceError for a document that is not XML, or
    not one of these."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        root = fromstring(data)
    except ParseError as exc:
        raise SourceError(f"{source} is not XML ({exc})") from None
    except DefusedXmlException as exc:
        raise SourceError(f"{source} is refused: {exc}") from None
    name = root.tag.rpartition("}")[2].lower()
    if name == "urlset":
        return Entries("news sitemap", _sitemap_records(source, root))
    if name in ("rss", "feed", "rdf"):
        return _feed(source, data)
    if name == "sitemapindex":
        raise SourceError(f"{source} is a sitemap index: sync each of the sitemaps it lists")
    raise SourceError(
        f"{source} is XML but not an RSS or Atom feed or a news sitemap (its root is <{name}>)"
    )


def _text(node: Element | None) -> str | None:
    if node is None or node.text is None:
        return None
    return node.text.strip() or None


def _sitemap_records(source: str, root: Element) -> list[tuple[str, dict[str, Any]]]:
    records = []
    for number, url in enumerate(root.iter(f"{SITEMAP}url"), start=1):
        loc = _text(url.find(f"{SITEMAP}loc"))
        news = url.find(f"{NEWS}news")
        record: dict[str, Any] = {"id": loc, "url": loc}
        if news is not None:
            keywords = _text(news.find(f"{NEWS}keywords"))
            record.update(
                title=_text(news.find(f"{NEWS}title")),
                published_at=_text(news.find(f"{NEWS}publication_date")),
                lang=_text(news.find(f"{NEWS}publication/{NEWS}language")),
                source=_text(news.find(f"{NEWS}publication/{NEWS}name")),
                tags=keywords,
            )
        records.append((f"{source}: url {number}", record))
    return records


def _when(parsed: Any) -> str | None:
    if not parsed:
        return None
    moment = datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
    return moment.isoformat()


def _feed(source: str, data: bytes) -> Entries:
    import feedparser

    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    version = str(parsed.get("version") or "")
    kind = "atom" if version.startswith("atom") else "rss"
    feed: Mapping[str, Any] = parsed.get("feed", {})
    feed_lang = feed.get("language") or (feed.get("title_detail") or {}).get("language")
    records = []
    for number, entry in enumerate(parsed.get("entries", []), start=1):
        content = entry.get("content") or []
        body = content[0].get("value") if content else entry.get("summary")
        terms = [t.get("term") for t in entry.get("tags") or [] if t.get("term")]
        detail = entry.get("title_detail") or {}
        record: dict[str, Any] = {
            "id": entry.get("id") or entry.get("link"),
            "title": entry.get("title"),
            "body": body,
            "published_at": _when(entry.get("published_parsed") or entry.get("updated_parsed")),
            "url": entry.get("link"),
            "category": terms[0] if terms else None,
            "tags": terms,
            "lang": detail.get("language") or feed_lang,
            "source": feed.get("title"),
        }
        records.append((f"{source}: entry {number}", record))
    return Entries(kind, records)


def read_entries(source: str) -> Entries:
    """Fetch and parse the feed or news sitemap at ``source`` (a URL or a file)."""
    return parse(source, fetch(source))
