"""Tests for recommender.text: HTML cleaning, the embedded text and the duplicate keys."""

from __future__ import annotations

import re

import pytest

from recommender.text import (
    MARKUP_FACTOR,
    READ_CHARS,
    clean_html,
    clean_title,
    content_hash,
    embedding_text,
    query_chars,
    search_key,
    title_key,
    url_key,
)

# clean_html


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<b>Bold</b> and <i>italic</i>", "Bold and italic"),
        ('<a href="https://example.com/x?a=1&b=2">link</a> text', "link text"),
        ("<span class='x'>in</span>line", "inline"),
        ("<img src='a.png' alt='pic'>caption", "caption"),
        ("<P>Upper</P>", "Upper"),
    ],
)
def test_clean_html_removes_tags(html, expected):
    assert clean_html(html) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("before<script>var x = '<b>no</b>';</script>after", "before after"),
        ("before<SCRIPT type='text/javascript'>alert(1)</Script >after", "before after"),
        ("a<style>p { color: red; }</style>b", "a b"),
        ("a<noscript>enable js</noscript>b", "a b"),
        ("a<template><p>hidden</p></template>b", "a b"),
        ("a<!-- a comment with <p>tags</p> -->b", "a b"),
        ("a<!--\nmulti\nline\n-->b", "a b"),
        ("<script>\nline1\nline2\n</script>Text", "Text"),
    ],
)
def test_clean_html_drops_invisible_content_entirely(html, expected):
    assert clean_html(html) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("Fish &amp; chips", "Fish & chips"),
        ("&lt;b&gt;not a tag&lt;/b&gt;", "<b>not a tag</b>"),
        ("<p>&quot;Quoted&quot; &#39;single&#39;</p>", "\"Quoted\" 'single'"),
        ("caf&eacute; &#233; &#xE9;", "café é é"),
        ("&euro;5 &mdash; cheap", "€5 — cheap"),
        ("one&nbsp;two", "one two"),
    ],
)
def test_clean_html_decodes_entities(html, expected):
    assert clean_html(html) == expected


def test_escaped_tags_are_text_not_markup():
    # Entities are decoded after tags are removed, so an escaped tag survives as text.
    assert clean_html("<p>Use &lt;script&gt; carefully</p>") == "Use <script> carefully"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>One</p><p>Two</p>", "One\nTwo"),
        ("first<br>second<br/>third<br />fourth", "first\nsecond\nthird\nfourth"),
        ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
        ("<h1>Head</h1>Body", "Head\nBody"),
        ("<div>x</div><div>y</div>", "x\ny"),
        ("<blockquote>q</blockquote>r", "q\nr"),
        ("<table><tr><td>1</td></tr><tr><td>2</td></tr></table>", "1\n2"),
    ],
)
def test_clean_html_block_tags_become_line_breaks(html, expected):
    assert clean_html(html) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  lots   of \t spaces  ", "lots of spaces"),
        ("a\u00a0\u00a0b", "a b"),
        ("line1\r\nline2\rline3", "line1\nline2\nline3"),
        ("para1\n\n\n   para2", "para1\npara2"),
        ("  \n  trailing and leading  \n  ", "trailing and leading"),
        ("<p>  spaced  </p>\n\n<p>\tout </p>", "spaced\nout"),
        ("", ""),
        ("   ", ""),
        ("<p></p><br>", ""),
    ],
)
def test_clean_html_tidies_whitespace(text, expected):
    assert clean_html(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Plain text without any markup.",
        "Two lines\nof plain text",
        "Prices: 3 < 5, AT&T and R&D",
        "Москва, 2024 — новости",
        "مرحبا بالعالم",
        "北京今天下雨。",
        "İstanbul'da ılık bir gün",
        "Launch day 🚀🎉",
    ],
)
def test_clean_html_leaves_plain_text_unchanged(text):
    assert clean_html(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "Inflation <3% while growth >2%",
        "if a < b and c > d",
    ],
)
def test_clean_html_keeps_comparison_signs_in_plain_text(text):
    assert clean_html(text) == text


# clean_title


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Breaking:<br>News\n  here", "Breaking: News here"),
        ("<h1>Big</h1><p>story</p>", "Big story"),
        ("  A \t title  ", "A title"),
        ("Line one\r\nLine two", "Line one Line two"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("Plain title", "Plain title"),
        ("", ""),
    ],
)
def test_clean_title_is_one_clean_line(title, expected):
    assert clean_title(title) == expected


# embedding_text


@pytest.mark.parametrize(
    ("body", "max_body_chars"),
    [
        ("", 100),
        ("", 0),
        ("Some body text", 0),
        ("Some body text", -5),
    ],
)
def test_embedding_text_is_the_title_alone(body, max_body_chars):
    assert embedding_text("The title", body, max_body_chars) == "The title"


def test_embedding_text_whitespace_only_body_is_the_title_alone():
    assert embedding_text("The title", "  \n ", 100) == "The title"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Plain title", "Plain title. Body."),
        ("Ends with period.", "Ends with period. Body."),
        ("Ends with bang!", "Ends with bang! Body."),
        ("Ends with question?", "Ends with question? Body."),
        ("Ends with colon:", "Ends with colon: Body."),
        ("Ends with comma,", "Ends with comma,. Body."),
    ],
)
def test_embedding_text_separator(title, expected):
    assert embedding_text(title, "Body.", 100) == expected


def test_embedding_text_short_body_is_kept_whole():
    assert embedding_text("T", "one two three", 13) == "T. one two three"


def test_embedding_text_collapses_body_whitespace():
    assert embedding_text("T", "one\n\ntwo \t three", 100) == "T. one two three"


@pytest.mark.parametrize(
    ("max_body_chars", "expected_body"),
    [
        (12, "alpha beta"),  # cut inside "gamma": back to the last space
        pytest.param(16, "alpha beta gamma"),  # the cut ends exactly where "gamma" does
        (17, "alpha beta gamma"),  # cut on the space after "gamma"
        (20, "alpha beta gamma"),
        (28, "alpha beta gamma delta"),
    ],
)
def test_embedding_text_cuts_body_at_a_word_boundary(max_body_chars, expected_body):
    body = "alpha beta gamma delta epsilon"
    assert embedding_text("Title", body, max_body_chars) == f"Title. {expected_body}"


def test_embedding_text_hard_cut_when_no_space_in_second_half():
    # A space only early in the cut would throw away most of it: cut mid-word instead.
    assert embedding_text("T", "ab " + "x" * 50, 10) == "T. ab xxxxxxx"
    assert embedding_text("T", "y" * 50, 10) == "T. " + "y" * 10


@pytest.mark.parametrize("max_body_chars", [1, 2, 5, 7, 10, 13, 20, 33, 50, 80, 200])
@pytest.mark.parametrize("title", ["Title", "Title?"])
def test_embedding_text_never_longer_than_the_limit(title, max_body_chars):
    body = "The quick brown fox jumps over the lazy dog, then naps.  Much   later it wakes. " * 2
    text = embedding_text(title, body, max_body_chars)
    separator = " " if title.endswith("?") else ". "
    assert text.startswith(title + separator)
    assert len(text) <= len(title) + len(separator) + max_body_chars
    rest = text[len(title + separator) :]
    assert rest
    assert " ".join(body.split()).startswith(rest)


# query_chars


@pytest.mark.parametrize("max_body_chars", [0, 1000, 4000, READ_CHARS // MARKUP_FACTOR])
def test_query_chars_is_read_chars_for_a_usual_embedded_body(max_body_chars):
    assert query_chars(max_body_chars) == READ_CHARS


def test_query_chars_grows_with_a_large_embedded_body():
    assert query_chars(50_000) == 50_000 * MARKUP_FACTOR > READ_CHARS


@pytest.mark.parametrize("max_body_chars", [1000, 20_000, 50_000])
def test_a_query_cut_at_query_chars_keeps_the_embedded_body_of_heavy_html(max_body_chars):
    # Almost nine characters of markup to each one of text: the cut text, cleaned, still holds
    # the body the model reads.
    word = "budget "
    span = f'<span class="{"x" * 40}">{word}</span>'
    assert 0.85 < 1 - len(word) / len(span) < 1 - 1 / MARKUP_FACTOR
    html = "Title\n" + span * (3 * query_chars(max_body_chars) // len(span))
    cut = html[: query_chars(max_body_chars)]
    title, _, body = clean_html(cut).partition("\n")
    whole_title, _, whole_body = clean_html(html).partition("\n")
    assert len(cut) < len(html)
    assert embedding_text(title, body, max_body_chars) == embedding_text(
        whole_title, whole_body, max_body_chars
    )


# title_key


@pytest.mark.parametrize(
    "variant",
    [
        "Markets fall as rates rise",
        "MARKETS FALL AS RATES RISE",
        "markets fall as rates rise",
        "Markets fall, as rates rise!",
        "  Markets   fall as\trates rise  ",
        "Markets — fall as rates rise...",
        '"Markets fall" as rates rise?',
        "Markets_fall as rates_rise",
    ],
)
def test_title_key_folds_case_punctuation_and_spacing(variant):
    assert title_key(variant) == "markets fall as rates rise"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Café crème à Paris", "Cafe creme a Paris"),
        ("Café", "Cafe\u0301"),  # composed vs decomposed accent
        ("Zürich élection", "zurich ELECTION"),
        ("İstanbul", "istanbul"),
        ("Straße", "STRASSE"),
        ("Don\u2019t panic", "Don't panic"),
    ],
)
def test_title_key_folds_accents_and_variants(a, b):
    assert title_key(a) == title_key(b)


def test_title_key_accented_result():
    assert title_key("Élection à Zürich") == "election a zurich"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Markets fall", "Markets rise"),
        ("Markets fall", "Markets fall again"),
        ("Москва", "Киев"),
        ("北京", "上海"),
    ],
)
def test_title_key_different_words_differ(a, b):
    assert title_key(a) != title_key(b)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Москва: НОВОСТИ дня!", "москва новости дня"),
        ("Αθήνα σήμερα", "αθηνα σημερα"),
        ("北京今天下雨。", "北京今天下雨"),
        ("مرحبا بالعالم!", "مرحبا بالعالم"),
        ("Launch 🚀 day", "launch day"),
    ],
)
def test_title_key_keeps_non_latin_scripts(title, expected):
    assert title_key(title) == expected


@pytest.mark.parametrize("title", ["", "!!!", "  ...  "])
def test_title_key_of_punctuation_only_is_empty(title):
    assert title_key(title) == ""


# url_key


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/news/story",
        "http://example.com/news/story",
        "https://www.example.com/news/story",
        "HTTPS://WWW.EXAMPLE.COM/news/story",
        "https://example.com/news/story/",
        "https://example.com/news/story#comments",
        "https://www.example.com/news/story/#top",
        "  https://example.com/news/story  ",
        "example.com/news/story",
        "www.example.com/news/story",
    ],
)
def test_url_key_folds_scheme_www_fragment_and_trailing_slash(url):
    assert url_key(url) == "example.com/news/story"


@pytest.mark.parametrize("url", [None, "", "   ", "https://", "https://#frag"])
def test_url_key_of_nothing_is_none(url):
    assert url_key(url) is None


def test_url_key_keeps_path_case_and_query():
    assert url_key("https://Example.com/News/Story?ID=5") == "example.com/News/Story?ID=5"
    assert url_key("https://example.com/News") != url_key("https://example.com/news")


def test_url_key_keeps_distinct_pages_apart():
    assert url_key("https://example.com/a") != url_key("https://example.com/b")
    assert url_key("https://example.com/a?page=1") != url_key("https://example.com/a?page=2")
    assert url_key("https://example.org/a") != url_key("https://example.com/a")


def test_url_key_only_strips_a_leading_www():
    assert url_key("https://www2.example.com/a") == "www2.example.com/a"
    assert url_key("https://news.www.example.com/a") == "news.www.example.com/a"


def test_url_key_bare_host():
    assert url_key("https://www.example.com/") == "example.com"
    assert url_key("https://www.example.com") == "example.com"


# content_hash


def test_content_hash_known_value():
    # sha256("abc") is a published test vector; the key is its first 32 hex digits.
    assert content_hash("abc") == "ba7816bf8f01cfea414140de5dae2223"


def test_content_hash_is_stable_and_short_hex():
    text = "Title. Body with ünïcödé and 中文 🚀"
    first = content_hash(text)
    assert first == content_hash(text)
    assert re.fullmatch(r"[0-9a-f]{32}", first)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Title. Body", "Title. Body."),
        ("Title. Body", "title. body"),
        ("", " "),
        ("Café", "Cafe\u0301"),
    ],
)
def test_content_hash_differs_for_different_text(a, b):
    assert content_hash(a) != content_hash(b)


def test_a_10_mb_title_is_embedded_and_keyed_up_to_read_chars() -> None:
    """An article's title is stored whole, but the model's tokenizer and the duplicate-title
    key read only READ_CHARS of it: a 10 MB title took 8 s of CPU to add."""
    title = "Storm closes the harbour " * 400_000
    text = embedding_text(title, "The body.", 1000)
    assert text == f"{title[:READ_CHARS]}. The body."
    assert title_key(title) == title_key(title[:READ_CHARS])
    assert len(title_key(title)) <= READ_CHARS
    short = "Storm closes the harbour"
    assert embedding_text(short, "The body.", 1000) == "Storm closes the harbour. The body."


# search_key


@pytest.mark.parametrize(
    ("typed", "title"),
    [
        ("acildi", "Lirovada ilk metro xətti açıldı"),  # ç from NFKD, dotless i mapped
        ("LİROVA", "Lirova'da"),  # İ folds to i and a combining dot, the dot dropped
        ("lirova", "LİROVA"),
        ("ISTANBUL", "İstanbul"),
        ("bereket", "Bərəkət-1 peyki"),  # schwa typed as e: the Turkish spelling
        ("ёлка", "Елка"),  # yo is ie with a diaeresis
        ("елка", "Ёлка"),
        ("sahinleri", "Oskel Şahinləri"),
        ("muhit", "Ətraf mühit"),
    ],
)
def test_search_key_finds_a_title_however_its_letters_are_typed(typed, title):
    assert search_key(typed) in search_key(title)


@pytest.mark.parametrize("text", ["\u0301\u0308", "🎉", "👩\u200d💻", "\ufeff", "", "ǅ", "ﬁ"])
def test_search_key_takes_odd_input(text):
    key = search_key(text)
    assert search_key(key) == key  # a folded key folds to itself


def test_search_key_keeps_punctuation_unlike_title_key():
    assert search_key("a-1001") == "a-1001" and title_key("a-1001") == "a 1001"
