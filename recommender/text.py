"""Turning an article into text: HTML cleaning, the text that is embedded, duplicate and
search keys."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_INVISIBLE_BLOCKS = re.compile(
    r"<(script|style|noscript|template)\b[^>]*>.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL
)
_BREAKING_TAGS = re.compile(
    r"</?(p|div|br|li|ul|ol|h[1-6]|tr|table|blockquote|section|article|header|footer)\b[^>]*>",
    re.IGNORECASE,
)
# A tag starts with a letter, "/" or "!": "a < b" and "<3%" in plain text are not tags.
_TAG = re.compile(r"<[A-Za-z/!][^>]*>")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_NEWLINES = re.compile(r"\s*\n\s*")
_NOT_WORD = re.compile(r"[\W_]+")
_URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)

#: The most characters of a text the engine reads beyond what it stores: a query's text up to
#: this (``query_chars``), and for TF-IDF an article's title and its body up to this each. Four
#: times the longest body of the benchmark sets (25,396 characters, bbc-news; the median is
#: 1,922), some 15,000 words: a news article is read whole, in HTML too unless its markup is
#: three times its text. A longer text costs no more than this: cleaning, language detection and
#: TF-IDF are linear in what they read (a 10 MB draft took 2 to 9 s of CPU).
READ_CHARS = 100_000

#: A query's text is read up to this many times the embedded body (when more than
#: ``READ_CHARS``): cut before its HTML is removed, it still holds the body the model reads
#: when markup is up to 90% of it.
MARKUP_FACTOR = 10


def clean_html(text: str) -> str:
    """Plain text from an HTML or plain body: no tags, scripts or entities; tidy whitespace."""
    if "<" in text:
        text = _INVISIBLE_BLOCKS.sub(" ", text)
        text = _BREAKING_TAGS.sub("\n", text)
        text = _TAG.sub("", text)
    if "&" in text:
        import html  # here: a query about an indexed article cleans no HTML

        text = html.unescape(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()


def clean_title(title: str) -> str:
    """A title on one line, cleaned like a body."""
    return " ".join(clean_html(title).split())


def query_chars(max_body_chars: int) -> int:
    """How much of a query's text is read (before cleaning): ``READ_CHARS``, or
    ``MARKUP_FACTOR`` times the embedded body when that is more."""
    return max(READ_CHARS, MARKUP_FACTOR * max_body_chars)


def embedding_text(title: str, body: str, max_body_chars: int) -> str:
    """The text the model encodes: the title (up to ``READ_CHARS``: the model reads a few
    hundred tokens, its tokenizer would read all of it), then the body cut at a word boundary."""
    title = title[:READ_CHARS]
    body = " ".join(body.split())
    if not body or max_body_chars <= 0:
        return title
    if len(body) > max_body_chars:
        # Cut at the last space within the limit (a word ending exactly there is kept).
        space = body.rfind(" ", 0, max_body_chars + 1)
        body = body[:space] if space > max_body_chars // 2 else body[:max_body_chars]
    separator = " " if title.endswith((".", "!", "?", ":")) else ". "
    return f"{title}{separator}{body}"


#: Letters that no decomposition takes to a base letter, as a keyboard without them types them:
#: Turkish and Azerbaijani dotless i (U+0131) as i, Azerbaijani schwa (U+0259, capital U+018F)
#: as e (a keyboard lacking it gives e or a: the Turkish spelling of the same words has e).
_SEARCH_LETTERS = str.maketrans({"\u0131": "i", "\u0259": "e"})


def _fold(text: str) -> str:
    """``text`` case-folded, its combining marks dropped after NFKD: "Çöl" is "col", "İ"
    (folded to i and a combining dot) is "i", Cyrillic yo is ie."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def title_key(title: str) -> str:
    """Titles that differ only in case, accents, punctuation or spacing share this key (of
    their first ``READ_CHARS``)."""
    return _NOT_WORD.sub(" ", _fold(title[:READ_CHARS])).strip()


def search_key(text: str) -> str:
    """What title search compares, of a title and of each word of a query alike: ``text``
    folded as ``title_key`` folds it (case, accents, "İ" taken to "i", Cyrillic yo to ie),
    dotless i and schwa typed as "i" and "e"; punctuation is kept ("a-1001")."""
    return _fold(text).translate(_SEARCH_LETTERS)


def url_key(url: str | None) -> str | None:
    """The same page under http/https, www., a #fragment or a trailing slash shares this key."""
    if not url:
        return None
    key = _URL_SCHEME.sub("", url.strip()).split("#", 1)[0]
    host, slash, rest = key.partition("/")
    host = host.lower().removeprefix("www.")
    return (host + slash + rest).rstrip("/") or None


def content_hash(text: str) -> str:
    """A short, stable fingerprint of the embedded text (decides whether to embed again)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
