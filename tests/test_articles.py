"""Tests for recommender.articles: validating records and reading JSON Lines and CSV files."""

from __future__ import annotations

import csv
import gzip
import json
import math
from datetime import date, datetime, timedelta, timezone

import pytest

from recommender import articles
from recommender.articles import (
    CSV_FIELD_LIMIT,
    MAX_NESTING,
    Article,
    parse_article,
    parse_datetime,
    parse_field_map,
    read_articles,
)
from recommender.errors import InputFileError, InvalidArticleError
from recommender.quality.evaluate import labels_from_field

UTC = timezone.utc


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


# parse_article: id


@pytest.mark.parametrize(
    ("raw_id", "expected"),
    [
        (42, "42"),
        (0, "0"),
        (-7, "-7"),
        ("abc-123", "abc-123"),
        ("  padded  ", "  padded  "),
        ("\u00a0nbsp\u3000", "\u00a0nbsp\u3000"),
        ("新闻-1", "新闻-1"),
    ],
)
def test_id_is_a_string(raw_id, expected):
    article = parse_article({"id": raw_id, "title": "T"})
    assert article.id == expected
    assert isinstance(article.id, str)


@pytest.mark.parametrize(
    ("raw_id", "what"),
    [
        (True, "a boolean"),
        (False, "a boolean"),
        (1.5, "a number"),
        (1.0, "a number"),
        (["1"], "a list"),
        ({"v": 1}, "a object"),
        (None, "missing"),
    ],
)
def test_bad_id_is_rejected(raw_id, what):
    with pytest.raises(InvalidArticleError) as info:
        parse_article({"id": raw_id, "title": "T"})
    assert str(info.value) == f"id must be a string or an integer, got {what}"


def test_missing_id_is_rejected():
    with pytest.raises(
        InvalidArticleError, match=r"^id must be a string or an integer, got missing"
    ):
        parse_article({"title": "T"})


def test_ids_differing_only_in_spaces_are_two_articles(tmp_path):
    path = write_jsonl(
        tmp_path / "news.jsonl",
        [{"id": "a-1001", "title": "Plain"}, {"id": " a-1001 ", "title": "Padded"}],
    )
    report = read_articles([path])
    assert [(a.id, a.title) for a in report.articles] == [
        ("a-1001", "Plain"),
        (" a-1001 ", "Padded"),
    ]
    assert report.duplicates == 0


def test_evaluator_reads_ids_as_the_reader_does(tmp_path):
    path = write_jsonl(
        tmp_path / "news.jsonl",
        [{"id": " a-1 ", "title": "T", "story": "s1"}, {"id": "a-2", "title": "T", "story": "s1"}],
    )
    labels = labels_from_field([path], "story")
    assert labels == {" a-1 ": "s1", "a-2": "s1"}
    assert set(labels) == {a.id for a in read_articles([path]).articles}


@pytest.mark.parametrize("raw_id", ["", "   ", "\u3000"])
def test_empty_id_is_rejected(raw_id):
    with pytest.raises(InvalidArticleError, match=r"^id is empty$"):
        parse_article({"id": raw_id, "title": "T"})


@pytest.mark.parametrize(
    ("raw_id", "where"),
    [
        ("a\nb", "U+000A at character 2 of 'a\\nb'"),
        ("a\r\nb", "U+000D at character 2 of 'a\\r\\nb'"),
        ("a\x00", "U+0000 at character 2 of 'a\\x00'"),
        ("\ta", "U+0009 at character 1 of '\\ta'"),
        ("a\x1bb", "U+001B at character 2 of 'a\\x1bb'"),
        ("a\x7f", "U+007F at character 2 of 'a\\x7f'"),
        ("a\x85b", "U+0085 at character 2 of 'a\\x85b'"),
        ("a\u2028b", "U+2028 at character 2 of 'a\\u2028b'"),
        ("a\u2029b", "U+2029 at character 2 of 'a\\u2029b'"),
    ],
)
def test_id_with_control_characters_is_rejected(raw_id, where):
    with pytest.raises(InvalidArticleError) as info:
        parse_article({"id": raw_id, "title": "T"})
    assert str(info.value) == f"id must not contain control characters ({where})"


@pytest.mark.parametrize("raw_id", ["a\u200db", "a\ufeffb", "a\u00a0b", "a\uffffb"])
def test_id_with_other_invisible_characters_is_kept(raw_id):
    assert parse_article({"id": raw_id, "title": "T"}).id == raw_id
    assert raw_id.splitlines() == [raw_id]


@pytest.mark.parametrize(
    ("raw_id", "code"), [("\ud800", "U+D800"), ("a\udfffb", "U+DFFF"), ("\ud83d", "U+D83D")]
)
def test_id_with_a_lone_surrogate_is_rejected(raw_id, code):
    with pytest.raises(InvalidArticleError) as info:
        parse_article({"id": raw_id, "title": "T"})
    assert str(info.value) == f"id is not valid Unicode (lone surrogate {code})"


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"title": "caf\udce9"}, "title"),
        ({"body": "<p>x\ud800</p>"}, "body"),
        ({"category": "\udfff"}, "category"),
        ({"url": "https://example.com/\ud800"}, "url"),
        ({"source": "a\ud800"}, "source"),
        ({"lang": "e\udc00n"}, "lang"),
        ({"tags": ["ok", "b\ud800"]}, "tags"),
        ({"tags": "ok,b\ud800"}, "tags"),
        ({"author": "\ud800"}, "metadata field 'author'"),
        ({"extra": {"a": [1, "\ud800"]}}, "metadata field 'extra'"),
        ({"extra": {"\ud800": 1}}, "metadata field 'extra' (a key in it)"),
        ({"\ud800": 1}, "metadata field name '\\ud800'"),
    ],
)
def test_lone_surrogate_in_any_field_is_rejected_naming_it(fields, name):
    with pytest.raises(InvalidArticleError) as info:
        parse_article({"id": "s", "title": "T", **fields})
    assert str(info.value).startswith(
        f"article 's': {name} is not valid Unicode (lone surrogate U+"
    )


def test_lone_surrogate_in_a_dropped_field_is_no_matter():
    article = parse_article({"id": "s", "title": "T", "raw": "\ud800"}, drop_fields=["raw"])
    assert article.metadata == {}


def test_lone_surrogate_escape_in_jsonl_is_reported_with_its_line(tmp_path):
    path = tmp_path / "news.jsonl"
    path.write_text(
        '{"id": "ok", "title": "Fine"}\n'
        '{"id": "x\\ud800", "title": "Bad id"}\n'
        '{"id": "y", "title": "Bad \\udc00 title"}\n'
        '{"id": "pair", "title": "A real pair \\ud83d\\udcf0 is fine"}\n',
        "utf-8",
    )
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["ok", "pair"]
    assert report.articles[1].title == "A real pair 📰 is fine"
    assert [str(e) for e in report.invalid] == [
        f"{path}:2: id is not valid Unicode (lone surrogate U+D800)",
        f"{path}:3: article 'y': title is not valid Unicode (lone surrogate U+DC00)",
    ]


@pytest.mark.parametrize("record", [[1, 2], "text", 5, None])
def test_record_that_is_not_an_object_is_rejected(record):
    with pytest.raises(InvalidArticleError, match=r"^expected an object with an id and a title"):
        parse_article(record)


# parse_article: title and body


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "a1"}, "article 'a1': title must be a string, got missing"),
        ({"id": "a1", "title": None}, "article 'a1': title must be a string, got missing"),
        ({"id": "a1", "title": 5}, "article 'a1': title must be a string, got a int"),
        ({"id": "a1", "title": ["x"]}, "article 'a1': title must be a string, got a list"),
        ({"id": "a1", "title": ""}, "article 'a1': title is empty"),
        ({"id": "a1", "title": "   "}, "article 'a1': title is empty"),
        ({"id": "a1", "title": "<p> </p>"}, "article 'a1': title is empty"),
    ],
)
def test_bad_title_is_rejected(record, message):
    with pytest.raises(InvalidArticleError) as info:
        parse_article(record)
    assert str(info.value) == message
    assert info.value.reason == message


def test_title_is_cleaned_to_one_line():
    article = parse_article({"id": 1, "title": "  <b>Big</b> &amp;\n news  "})
    assert article.title == "Big & news"


def test_body_html_is_cleaned():
    record = {
        "id": 1,
        "title": "T",
        "body": "<p>First &amp; foremost</p><script>track()</script><p>Second</p>",
    }
    assert parse_article(record).body == "First & foremost\nSecond"


@pytest.mark.parametrize("body", [None, ""])
def test_missing_body_is_empty(body):
    record = {"id": 1, "title": "T"} if body is None else {"id": 1, "title": "T", "body": body}
    assert parse_article(record).body == ""


@pytest.mark.parametrize(("body", "kind"), [(5, "int"), (["a"], "list"), ({"a": 1}, "object")])
def test_non_string_body_is_rejected(body, kind):
    with pytest.raises(InvalidArticleError) as info:
        parse_article({"id": "b", "title": "T", "body": body})
    assert str(info.value) == f"article 'b': body must be a string, got {kind}"


# parse_article: optional text fields


def test_minimal_article_defaults():
    article = parse_article({"id": "x", "title": "Title"})
    assert article == Article(id="x", title="Title")
    assert article.category is None
    assert article.published_at is None
    assert article.url is None
    assert article.source is None
    assert article.lang is None
    assert article.tags == ()
    assert article.metadata == {}


def test_optional_fields_are_read_and_stripped():
    article = parse_article(
        {
            "id": "x",
            "title": "Title",
            "category": " Sport ",
            "url": "https://example.com/x",
            "source": "Wire",
            "lang": "en",
        }
    )
    assert article.category == "Sport"
    assert article.url == "https://example.com/x"
    assert article.source == "Wire"
    assert article.lang == "en"


@pytest.mark.parametrize("name", ["category", "url", "source", "lang"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_optional_field_empty_is_none(name, value):
    assert getattr(parse_article({"id": "x", "title": "T", name: value}), name) is None


@pytest.mark.parametrize("name", ["category", "url", "source", "lang"])
@pytest.mark.parametrize(("value", "kind"), [(3, "int"), (["a"], "list"), (True, "bool")])
def test_optional_field_must_be_a_string(name, value, kind):
    with pytest.raises(InvalidArticleError) as info:
        parse_article({"id": "x", "title": "T", name: value})
    assert str(info.value) == f"article 'x': {name} must be a string, got {kind}"


# parse_article: published_at


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T10:20:30Z", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01T10:20:30z", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01T10:20:30+00:00", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01T12:20:30+02:00", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01T01:00:00-05:30", datetime(2024, 3, 1, 6, 30, tzinfo=UTC)),
        ("2024-03-01T01:00:00+03:00", datetime(2024, 2, 29, 22, 0, tzinfo=UTC)),
        ("2024-03-01T10:20:30", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01 10:20", datetime(2024, 3, 1, 10, 20, tzinfo=UTC)),
        ("2024-03-01T10:20:30.250Z", datetime(2024, 3, 1, 10, 20, 30, 250000, tzinfo=UTC)),
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        ("  2024-03-01  ", datetime(2024, 3, 1, tzinfo=UTC)),
    ],
)
def test_published_at_is_utc(value, expected):
    published = parse_article({"id": 1, "title": "T", "published_at": value}).published_at
    assert published == expected
    assert published.utcoffset() == timedelta(0)
    assert (published.year, published.month, published.day, published.hour) == (
        expected.year,
        expected.month,
        expected.day,
        expected.hour,
    )


@pytest.mark.parametrize("value", [None, ""])
def test_published_at_not_given_is_none(value):
    assert parse_article({"id": 1, "title": "T", "published_at": value}).published_at is None


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "01/03/2024", "2024-03-01T25:00"])
def test_unparseable_published_at_names_the_value(value):
    with pytest.raises(InvalidArticleError) as info:
        parse_article({"id": "p", "title": "T", "published_at": value})
    assert str(info.value) == f"article 'p': published_at {value!r} is not an ISO-8601 date"


def test_non_string_published_at_is_rejected():
    with pytest.raises(InvalidArticleError) as info:
        parse_article({"id": "p", "title": "T", "published_at": 1709287230})
    assert str(info.value) == (
        "article 'p': published_at expected an ISO-8601 date string, got int"
    )


# parse_article: tags


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["politics", "europe"], ("politics", "europe")),
        ([" politics ", "", "  ", "europe"], ("politics", "europe")),
        ([], ()),
        ("politics, europe ,economy", ("politics", "europe", "economy")),
        ("politics,,europe,", ("politics", "europe")),
        ("single", ("single",)),
        ("", ()),
        (None, ()),
        (
            ["выборы", "الانتخابات", "选举", "seçim", "🗳️"],
            ("выборы", "الانتخابات", "选举", "seçim", "🗳️"),
        ),
    ],
)
def test_tags(tags, expected):
    assert parse_article({"id": 1, "title": "T", "tags": tags}).tags == expected


@pytest.mark.parametrize("tags", [5, ["ok", 3], [None], {"a": 1}, [["nested"]]])
def test_bad_tags_are_rejected(tags):
    with pytest.raises(InvalidArticleError) as info:
        parse_article({"id": "t", "title": "T", "tags": tags})
    assert str(info.value) == (
        "article 't': tags must be a list of strings or a comma-separated string"
    )


# parse_article: metadata, field_map, drop_fields


def test_unknown_fields_are_kept_as_metadata():
    article = parse_article(
        {
            "id": 1,
            "title": "T",
            "body": "B",
            "author": "Ann",
            "words": 530,
            "extra": {"paywall": True, "scores": [1, 2.5]},
        }
    )
    assert article.metadata == {
        "author": "Ann",
        "words": 530,
        "extra": {"paywall": True, "scores": [1, 2.5]},
    }


def test_nan_and_infinity_in_metadata_become_none():
    article = parse_article(
        {
            "id": 1,
            "title": "T",
            "score": math.nan,
            "high": math.inf,
            "low": -math.inf,
            "fine": 1.5,
            "nested": {"a": math.nan, "b": [math.inf, 2.0, (math.nan, 1)]},
        }
    )
    assert article.metadata == {
        "score": None,
        "high": None,
        "low": None,
        "fine": 1.5,
        "nested": {"a": None, "b": [None, 2.0, [None, 1]]},
    }
    json.dumps(dict(article.metadata), allow_nan=False)  # raises if any NaN/inf is left


def test_field_map_reads_other_column_names():
    record = {
        "article_id": 9,
        "headline": "Mapped",
        "content": "<p>Text</p>",
        "section": "World",
        "id": "ignored-by-mapping",
    }
    article = parse_article(
        record, field_map={"id": "article_id", "title": "headline", "body": "content"}
    )
    assert article.id == "9"
    assert article.title == "Mapped"
    assert article.body == "Text"
    # The mapped-away original names are not fields any more: they are metadata.
    assert article.metadata == {"section": "World", "id": "ignored-by-mapping"}


def test_field_map_for_category_and_dates():
    record = {"id": 1, "title": "T", "section": "Sport", "date": "2024-01-02T03:04:05Z"}
    article = parse_article(record, field_map={"category": "section", "published_at": "date"})
    assert article.category == "Sport"
    assert article.published_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert article.metadata == {}


def test_field_map_missing_mapped_column_is_reported():
    with pytest.raises(
        InvalidArticleError, match=r"^id must be a string or an integer, got missing"
    ):
        parse_article({"id": 1, "title": "T"}, field_map={"id": "article_id"})


def test_drop_fields_are_not_kept():
    record = {"id": 1, "title": "T", "raw_html": "<html>", "author": "Ann", "internal": 1}
    article = parse_article(record, drop_fields=["raw_html", "internal"])
    assert article.metadata == {"author": "Ann"}


def test_article_is_frozen():
    article = parse_article({"id": 1, "title": "T"})
    with pytest.raises(AttributeError):
        article.title = "Other"


# parse_field_map


def test_parse_field_map_good_pairs():
    assert parse_field_map(["id=article_id", " body = content ", "published_at=date"]) == {
        "id": "article_id",
        "body": "content",
        "published_at": "date",
    }


def test_parse_field_map_empty():
    assert parse_field_map([]) == {}


def test_parse_field_map_keeps_equals_in_column_name():
    assert parse_field_map(["title=a=b"]) == {"title": "a=b"}


@pytest.mark.parametrize("pair", ["id", "id=", "=article_id", " = ", "", "id:article_id"])
def test_parse_field_map_malformed_pair(pair):
    with pytest.raises(InvalidArticleError) as info:
        parse_field_map([pair])
    assert str(info.value) == f"field mapping {pair!r} is not of the form FIELD=COLUMN"


def test_parse_field_map_unknown_field():
    with pytest.raises(InvalidArticleError) as info:
        parse_field_map(["id=article_id", "author=byline"])
    assert str(info.value) == (
        "field mapping 'author=byline' names unknown field 'author'; "
        "known: id, title, body, category, published_at, url, source, lang, tags"
    )


# parse_datetime


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("2024-06-30T23:30:00-01:00", datetime(2024, 7, 1, 0, 30, tzinfo=UTC)),
        ("2024-06-30", datetime(2024, 6, 30, tzinfo=UTC)),
        ("2024-06-30T08:00Z", datetime(2024, 6, 30, 8, 0, tzinfo=UTC)),
        (date(2024, 6, 30), datetime(2024, 6, 30, tzinfo=UTC)),
        (datetime(2024, 6, 30, 8, 0), datetime(2024, 6, 30, 8, 0, tzinfo=UTC)),
        (
            datetime(2024, 6, 30, 8, 0, tzinfo=timezone(timedelta(hours=9))),
            datetime(2024, 6, 29, 23, 0, tzinfo=UTC),
        ),
    ],
)
def test_parse_datetime(value, expected):
    parsed = parse_datetime(value)
    assert parsed == expected
    if expected is not None:
        assert parsed.tzinfo is UTC


def test_parse_datetime_not_given_is_none_and_blank_is_an_error():
    # The contract callers rely on: None and "" are "not given"; anything else is a date or
    # a ValueError, never None.
    assert parse_datetime(None) is None
    assert parse_datetime("") is None
    for blank in [" ", "\t", "\n"]:
        with pytest.raises(ValueError, match="is not an ISO-8601 date"):
            parse_datetime(blank)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-01", datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-01T01:00:00+01:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00-05:00", datetime(1, 1, 1, 5, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("9999-12-31T23:59:59", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("9999-12-31T18:00:00-05:00", datetime(9999, 12, 31, 23, tzinfo=UTC)),
        ("9999-12-31T23:30:00+05:00", datetime(9999, 12, 31, 18, 30, tzinfo=UTC)),
        (date(1, 1, 1), datetime(1, 1, 1, tzinfo=UTC)),
        (date(9999, 12, 31), datetime(9999, 12, 31, tzinfo=UTC)),
    ],
)
def test_parse_datetime_at_the_ends_of_the_calendar(value, expected):
    parsed = parse_datetime(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC
    parsed.timestamp()  # every caller turns it into days since 1970


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0001-01-01T00:00:00+01:00", "'0001-01-01T00:00:00+01:00'"),
        ("0001-01-01T00:59:59.999999+01:00", "'0001-01-01T00:59:59.999999+01:00'"),
        ("9999-12-31T23:30:00-05:00", "'9999-12-31T23:30:00-05:00'"),
        ("9999-12-31T23:59:59.999999-00:00:01", "'9999-12-31T23:59:59.999999-00:00:01'"),
        (
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=3))),
            "'0001-01-01T00:00:00+03:00'",
        ),
    ],
)
def test_parse_datetime_outside_years_1_to_9999_in_utc_is_an_error(value, shown):
    with pytest.raises(ValueError) as info:
        parse_datetime(value)
    assert str(info.value) == f"{shown} is out of the supported range (years 1 to 9999 in UTC)"


def test_published_at_outside_the_calendar_is_one_bad_record(tmp_path):
    path = write_jsonl(
        tmp_path / "news.jsonl",
        [
            {"id": "early", "title": "T", "published_at": "0001-01-01T00:00:00+01:00"},
            {"id": "first", "title": "T", "published_at": "0001-01-01T00:00:00Z"},
            {"id": "late", "title": "T", "published_at": "9999-12-31T23:30:00-05:00"},
        ],
    )
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["first"]
    assert [str(e) for e in report.invalid] == [
        f"{path}:1: article 'early': published_at '0001-01-01T00:00:00+01:00' "
        "is out of the supported range (years 1 to 9999 in UTC)",
        f"{path}:3: article 'late': published_at '9999-12-31T23:30:00-05:00' "
        "is out of the supported range (years 1 to 9999 in UTC)",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not a date", "'not a date' is not an ISO-8601 date"),
        ("2024-02-30", "'2024-02-30' is not an ISO-8601 date"),
        (20240630, "expected an ISO-8601 date string, got int"),
        (1.5, "expected an ISO-8601 date string, got float"),
        (["2024-06-30"], "expected an ISO-8601 date string, got list"),
    ],
)
def test_parse_datetime_errors(value, message):
    with pytest.raises(ValueError) as info:
        parse_datetime(value)
    assert str(info.value) == message


# read_articles: formats


def test_read_jsonl(tmp_path):
    path = write_jsonl(
        tmp_path / "news.jsonl",
        [
            {"id": 1, "title": "One", "body": "<p>Body one</p>", "category": "World"},
            {"id": "2", "title": "Two", "tags": ["a", "b"], "published_at": "2024-01-01"},
        ],
    )
    report = read_articles([path])
    assert report.records == 2
    assert report.invalid == []
    assert report.duplicates == 0
    assert report.articles == [
        Article(id="1", title="One", body="Body one", category="World"),
        Article(
            id="2",
            title="Two",
            tags=("a", "b"),
            published_at=datetime(2024, 1, 1, tzinfo=UTC),
        ),
    ]


@pytest.mark.parametrize("name", ["news.ndjson", "NEWS.JSONL"])
def test_read_other_jsonl_names(tmp_path, name):
    path = write_jsonl(tmp_path / name, [{"id": 1, "title": "One"}])
    assert [a.title for a in read_articles([path]).articles] == ["One"]


@pytest.mark.parametrize("name", ["news.jsonl.gz", "news.ndjson.gz"])
def test_read_gzipped_jsonl(tmp_path, name):
    path = tmp_path / name
    lines = [
        json.dumps({"id": 1, "title": "One"}),
        "",
        json.dumps({"id": 2, "title": "Zwei — ünïcödé"}, ensure_ascii=False),
    ]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    report = read_articles([path])
    assert [(a.id, a.title) for a in report.articles] == [("1", "One"), ("2", "Zwei — ünïcödé")]
    assert report.records == 2
    assert report.invalid == []


CSV_TEXT = (
    "id,title,body,category,published_at,tags,author\n"
    '1,First,<p>Hello &amp; bye</p>,World,2024-05-01T10:00:00+02:00,"a, b",Ann\n'
    "2,Second,,,,,\n"
    '3,"Quoted, with comma","Line one\nline two",Sport,2024-05-02,x,Bob\n'
)


def test_read_csv(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text(CSV_TEXT, "utf-8")
    report = read_articles([path])
    assert report.records == 3
    assert report.invalid == []
    first, second, third = report.articles
    assert first == Article(
        id="1",
        title="First",
        body="Hello & bye",
        category="World",
        published_at=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        tags=("a", "b"),
        metadata={"author": "Ann"},
    )
    # An empty CSV cell means "not given", never an empty string.
    assert second == Article(id="2", title="Second", metadata={"author": None})
    assert third.title == "Quoted, with comma"
    assert third.body == "Line one\nline two"
    assert third.published_at == datetime(2024, 5, 2, tzinfo=UTC)


def test_read_gzipped_csv(tmp_path):
    path = tmp_path / "news.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(CSV_TEXT)
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["1", "2", "3"]
    assert report.articles[0].tags == ("a", "b")
    assert report.invalid == []


def test_csv_with_field_map_and_drop_fields(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("article_id,headline,content,secret\n7,Head,Text,xyz\n", "utf-8")
    report = read_articles(
        [path],
        field_map={"id": "article_id", "title": "headline", "body": "content"},
        drop_fields=["secret"],
    )
    assert report.articles == [Article(id="7", title="Head", body="Text")]


def test_csv_short_row_fields_are_not_given(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("id,title,category\n1,Short\n", "utf-8")
    report = read_articles([path])
    assert report.articles == [Article(id="1", title="Short")]


def test_csv_row_with_too_many_values_is_invalid(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("id,title\n1,One\n2,Two,extra\n3,Three\n", "utf-8")
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["1", "3"]
    assert report.records == 3
    [error] = report.invalid
    assert (error.path, error.line) == (str(path), 3)
    assert error.reason == "more values than columns in the header"
    assert str(error) == f"{path}:3: more values than columns in the header"


def test_csv_invalid_row_after_multiline_field_has_its_own_line(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text('id,title,body\n1,One,"a\nb\nc"\n2,,x\n', "utf-8")
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["1"]
    [error] = report.invalid
    assert error.line == 5
    assert error.reason == "article '2': title must be a string, got missing"


def test_csv_invalid_row_after_blank_line_has_its_own_line(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("id,title\n1,One\n\n2,\n", "utf-8")
    report = read_articles([path])
    [error] = report.invalid
    assert error.line == 4


def test_csv_non_utf8_line_is_reported_and_next_row_read(tmp_path):
    path = tmp_path / "news.csv"
    path.write_bytes(b"id,title\n1,One\n2,\xff\xfe\n3,Three\n")
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["1", "3"]
    [error] = report.invalid
    assert (error.path, error.line) == (str(path), 3)


def test_csv_non_utf8_last_line_is_reported(tmp_path):
    path = tmp_path / "news.csv"
    path.write_bytes(b"id,title\n1,One\n2,\xff\xfe\n")
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["1"]
    assert [(e.path, e.line) for e in report.invalid] == [(str(path), 3)]


def test_csv_unclosed_quote_at_end_of_file_costs_its_record_only(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text('id,title\n1,One\n2,"Unclosed title\n3,Three\n\n4,Four\n', "utf-8")
    report = read_articles([path])
    assert [(a.id, a.title) for a in report.articles] == [
        ("1", "One"),
        ("3", "Three"),
        ("4", "Four"),
    ]
    assert [str(e) for e in report.invalid] == [
        f"{path}:3: unclosed quote (the file ends inside a quoted field of this record)"
    ]
    assert report.records == 4


def test_csv_unclosed_quote_closed_by_a_later_one_is_reported(tmp_path):
    # Python's csv module, left to itself, reads rows 2 to 4 as one title with no error.
    path = tmp_path / "news.csv"
    path.write_text(
        'id,title,body\n1,One,b\n2,"Unclosed title,b\n3,Three,b\n4,"Four",b\n5,Five,b\n', "utf-8"
    )
    report = read_articles([path])
    assert [(a.id, a.title) for a in report.articles] == [
        ("1", "One"),
        ("3", "Three"),
        ("4", "Four"),
        ("5", "Five"),
    ]
    [error] = report.invalid
    assert (error.line, error.reason) == (
        3,
        "unclosed quote (a quoted field of this record runs on to line 5)",
    )


def test_csv_well_quoted_fields_are_read_strictly_as_before(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text(
        'id,title,body\n1,"He said ""hi""","a\n""b""\n\nc"\n2,"Two, too",\n3,"Last"', "utf-8"
    )
    report = read_articles([path])
    assert report.invalid == []
    assert [(a.id, a.title, a.body) for a in report.articles] == [
        ("1", 'He said "hi"', 'a\n"b"\nc'),
        ("2", "Two, too", ""),
        ("3", "Last", ""),
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            '2,"Say "hi" now",b',
            'text after the closing quote of a field (a quote inside one is written "")',
        ),
        (
            '2,"Two" ,b',
            'text after the closing quote of a field (a quote inside one is written "")',
        ),
        ("2,Two\rthree,b", "a carriage return inside a field that is not quoted"),
    ],
)
def test_csv_row_that_cannot_be_parsed_is_one_bad_record(tmp_path, row, reason):
    path = tmp_path / "news.csv"
    path.write_text(f"id,title,body\n1,One,b\n{row}\n3,Three,b\n", "utf-8")
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["1", "3"]
    assert [(e.line, e.reason) for e in report.invalid] == [(3, reason)]


def test_csv_header_that_cannot_be_parsed_is_a_file_error(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text('id,"title\n1,One\n', "utf-8")
    with pytest.raises(InputFileError) as info:
        read_articles([path])
    assert str(info.value) == (
        f"cannot read {path}: the header row: "
        "unclosed quote (the file ends inside a quoted field of this record)"
    )


def test_csv_field_longer_than_pythons_default_limit_is_read(tmp_path):
    body = "word " * 60_000  # 300,000 characters: csv's default limit is 131,072
    path = tmp_path / "news.csv"
    path.write_text(f'id,title,body\n1,Long,"{body}"\n2,Short,{body}\n', "utf-8")
    report = read_articles([path])
    assert report.invalid == []
    assert [len(a.body) for a in report.articles] == [len(body) - 1, len(body) - 1]
    assert csv.field_size_limit() >= CSV_FIELD_LIMIT >= 10_000_000


def test_csv_field_over_the_limit_is_one_bad_record(tmp_path, monkeypatch):
    before = csv.field_size_limit()
    monkeypatch.setattr(articles, "CSV_FIELD_LIMIT", 1000)
    csv.field_size_limit(1000)
    try:
        path = tmp_path / "news.csv"
        path.write_text(f"id,title\n1,One\n2,{'x' * 1001}\n3,Three\n", "utf-8")
        report = read_articles([path])
    finally:
        csv.field_size_limit(before)
    assert [a.id for a in report.articles] == ["1", "3"]
    assert [(e.line, e.reason) for e in report.invalid] == [
        (3, "a field longer than 1,000 characters")
    ]


def test_csv_non_utf8_line_inside_a_quoted_field_keeps_the_quotes(tmp_path):
    path = tmp_path / "news.csv"
    path.write_bytes(b'id,title,body\n1,One,"first line\nsecond \xff line"\n2,Two,b\n')
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["2"]
    [error] = report.invalid
    assert (error.line, error.reason) == (3, "not valid UTF-8 (byte 8 of the line)")


# read_articles: JSON that Python cannot hold


def nested(depth):
    return "[" * depth + "1" + "]" * depth


def test_jsonl_metadata_nested_up_to_the_limit_is_kept(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(f'{{"id": "d", "title": "T", "m": {nested(MAX_NESTING)}}}\n', "utf-8")
    [article] = read_articles([path]).articles
    json.dumps(dict(article.metadata))


@pytest.mark.parametrize(
    ("depth", "reason"),
    [
        (
            MAX_NESTING + 1,
            "article 'd': metadata field 'm' is nested too deeply (more than 100 levels)",
        ),
        (500, "article 'd': metadata field 'm' is nested too deeply (more than 100 levels)"),
        (100_000, "invalid JSON (nested too deeply)"),  # deeper than json.loads can go
    ],
)
def test_jsonl_nested_too_deeply_is_one_bad_record(tmp_path, depth, reason):
    path = tmp_path / "deep.jsonl"
    path.write_text(
        '{"id": 1, "title": "One"}\n'
        f'{{"id": "d", "title": "T", "m": {{"a": {nested(depth - 1)}}}}}\n'
        '{"id": 3, "title": "Three"}\n',
        "utf-8",
    )
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["1", "3"]
    assert [(e.line, e.reason) for e in report.invalid] == [(2, reason)]


def test_metadata_nested_too_deeply_from_python_is_rejected():
    value: list = [1]
    for _ in range(50_000):  # far deeper than the recursion limit
        value = [value]
    with pytest.raises(InvalidArticleError, match="metadata field 'm' is nested too deeply"):
        parse_article({"id": "d", "title": "T", "m": value})


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": 1X, "title": "T"}', "id is a number too large (5,000 digits)"),
        ('{"id": -1X, "title": "T"}', "id is a number too large (5,000 digits)"),
        ('{"id": "n", "title": 1X}', "article 'n': title is a number too large (5,000 digits)"),
        (
            '{"id": "n", "title": "T", "published_at": 1X}',
            "article 'n': published_at is a number too large (5,000 digits)",
        ),
        (
            '{"id": "n", "title": "T", "count": 1X}',
            "article 'n': metadata field 'count' is a number too large (5,000 digits)",
        ),
        (
            '{"id": "n", "title": "T", "extra": {"a": [2, 1X]}}',
            "article 'n': metadata field 'extra' is a number too large (5,000 digits)",
        ),
    ],
)
def test_jsonl_integer_too_long_for_python_is_one_bad_record(tmp_path, line, reason):
    path = tmp_path / "big.jsonl"
    path.write_text(f'{{"id": 1, "title": "One"}}\n{line.replace("1X", "1" * 5000)}\n', "utf-8")
    report = read_articles([path])
    assert [a.id for a in report.articles] == ["1"]
    assert [(e.line, e.reason) for e in report.invalid] == [(2, reason)]


def test_jsonl_long_integers_python_can_hold_are_kept(tmp_path):
    digits = "9" * 4300
    path = tmp_path / "big.jsonl"
    path.write_text(f'{{"id": {digits}, "title": "T", "n": -{digits}, "f": 1e999}}\n', "utf-8")
    [article] = read_articles([path]).articles
    assert article.id == digits
    assert article.metadata == {"n": -int(digits), "f": None}


def test_integer_too_long_in_a_dropped_field_is_no_matter(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(f'{{"id": "n", "title": "T", "raw": {"1" * 5000}}}\n', "utf-8")
    [article] = read_articles([path], drop_fields=["raw"]).articles
    assert article.metadata == {}


def test_labels_skip_records_python_cannot_hold(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(
        f'{{"id": {"1" * 5000}, "title": "T", "story": "s"}}\n'
        f'{{"id": "deep", "title": "T", "story": {nested(100_000)}}}\n'
        '{"id": "a", "title": "T", "story": "s"}\n',
        "utf-8",
    )
    assert labels_from_field([path], "story") == {"a": "s"}


# read_articles: bad records do not stop the reader


def test_invalid_jsonl_lines_are_reported_and_the_rest_read(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps({"id": 1, "title": "One"}).encode(),  # 1
        b"",  # 2: blank, skipped
        b"{not json",  # 3
        json.dumps({"id": 2, "title": "Two"}).encode(),  # 4
        b'{"id": 3, "title": "bad \xff\xfe bytes"}',  # 5
        b"   ",  # 6: blank, skipped
        b'[{"id": 4, "title": "in a list"}]',  # 7
        json.dumps({"id": 5, "body": "no title"}).encode(),  # 8
        json.dumps({"id": 6, "title": "Six"}).encode(),  # 9
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = read_articles([path])

    assert [a.id for a in report.articles] == ["1", "2", "6"]
    assert report.records == 7
    assert report.duplicates == 0
    assert [(e.path, e.line) for e in report.invalid] == [
        (str(path), 3),
        (str(path), 5),
        (str(path), 7),
        (str(path), 8),
    ]
    reasons = [e.reason for e in report.invalid]
    assert reasons[0].startswith("invalid JSON (")
    assert reasons[0].endswith("at column 2)")
    assert reasons[1] == "not valid UTF-8 (byte 25 of the line)"
    assert reasons[2] == "expected an object with an id and a title, got list"
    assert reasons[3] == "article '5': title must be a string, got missing"
    assert str(report.invalid[3]) == f"{path}:8: article '5': title must be a string, got missing"


def test_invalid_records_are_reported_per_file(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": 1, "title": "One"}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 2, "title": "Two"}\n{"id": 3}\n', "utf-8")
    report = read_articles([good, bad])
    assert [a.id for a in report.articles] == ["1", "2"]
    assert [(e.path, e.line) for e in report.invalid] == [(str(bad), 2)]


def test_string_paths_are_accepted(tmp_path):
    path = write_jsonl(tmp_path / "news.jsonl", [{"id": 1, "title": "One"}, {"id": 2}])
    report = read_articles([str(path)])
    assert [a.id for a in report.articles] == ["1"]
    assert report.invalid[0].path == str(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = read_articles([path])
    assert (report.articles, report.records, report.invalid, report.duplicates) == ([], 0, [], 0)


# read_articles: duplicates


def test_duplicate_ids_last_wins(tmp_path):
    path = write_jsonl(
        tmp_path / "news.jsonl",
        [
            {"id": "a", "title": "First a"},
            {"id": "b", "title": "Only b"},
            {"id": "a", "title": "Second a"},
            {"id": 7, "title": "Seven"},
            {"id": "a", "title": "Third a"},
            {"id": "7", "title": "Seven again"},  # 7 and "7" are the same id
        ],
    )
    report = read_articles([path])
    assert report.records == 6
    assert report.duplicates == 3
    # Order follows the winning (last) record of each id.
    assert [(a.id, a.title) for a in report.articles] == [
        ("b", "Only b"),
        ("a", "Third a"),
        ("7", "Seven again"),
    ]


def test_duplicate_ids_across_files_last_file_wins(tmp_path):
    old = write_jsonl(tmp_path / "old.jsonl", [{"id": 1, "title": "Old"}])
    new = tmp_path / "new.csv"
    new.write_text("id,title\n1,New\n", "utf-8")
    report = read_articles([old, new])
    assert [(a.id, a.title) for a in report.articles] == [("1", "New")]
    assert report.duplicates == 1
    assert report.records == 2


def test_invalid_duplicate_does_not_replace_valid_one(tmp_path):
    path = write_jsonl(tmp_path / "news.jsonl", [{"id": 1, "title": "Good"}, {"id": 1}])
    report = read_articles([path])
    assert [(a.id, a.title) for a in report.articles] == [("1", "Good")]
    assert report.duplicates == 0
    assert len(report.invalid) == 1


# read_articles: files that cannot be read


@pytest.mark.parametrize("name", ["news.json", "news.txt", "news.tsv", "news", "news.gz"])
def test_unknown_extension_is_an_error(tmp_path, name):
    path = tmp_path / name
    path.write_text('{"id": 1, "title": "One"}\n', "utf-8")
    with pytest.raises(InputFileError) as info:
        read_articles([path])
    assert str(info.value).startswith(f"cannot read {path}: unknown file type (expected one of ")


def test_missing_file_is_an_error(tmp_path):
    path = tmp_path / "missing.jsonl"
    with pytest.raises(InputFileError) as info:
        read_articles([path])
    assert str(info.value) == f"cannot read {path}: no such file"


def test_missing_file_fails_before_reading_the_others(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": 1, "title": "One"}])
    missing = tmp_path / "missing.csv"
    with pytest.raises(InputFileError, match=r"missing\.csv: no such file$"):
        read_articles([good, missing])


def test_directory_is_not_a_file(tmp_path):
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    with pytest.raises(InputFileError, match="no such file"):
        read_articles([folder])


def test_corrupt_gzip_is_an_error(tmp_path):
    path = tmp_path / "news.jsonl.gz"
    path.write_bytes(b"this is not gzip data\n")
    with pytest.raises(InputFileError, match=r"^cannot read .*news\.jsonl\.gz: "):
        read_articles([path])


# read_articles: encodings and scripts


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_utf8_bom_is_ignored(tmp_path, suffix):
    path = tmp_path / f"bom{suffix}"
    content = "id,title\n1,Bom\n" if suffix == ".csv" else '{"id": 1, "title": "Bom"}\n'
    path.write_bytes(b"\xef\xbb\xbf" + content.encode("utf-8"))
    report = read_articles([path])
    assert report.invalid == []
    assert report.articles == [Article(id="1", title="Bom")]


def test_utf8_bom_in_gzipped_csv_is_ignored(tmp_path):
    path = tmp_path / "bom.csv.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"\xef\xbb\xbfid,title\n1,Bom\n")
    assert read_articles([path]).articles == [Article(id="1", title="Bom")]


MULTILINGUAL = [
    {
        "id": "новость-1",
        "title": "Москва: главные новости",
        "body": "Текст статьи.",
        "category": "Россия",
        "tags": ["политика"],
    },
    {
        "id": "خبر-٢",
        "title": "مرحبا بالعالم",
        "body": "نص المقال هنا.",
        "category": "العالم",
        "tags": ["سياسة"],
    },
    {
        "id": "新闻3",
        "title": "北京今天下雨",
        "body": "文章内容。",
        "category": "国内",
        "tags": ["天气"],
    },
    {
        "id": "haber-İĞŞ-ı",
        "title": "İstanbul'da ılık bir gün: Çağlayan",
        "body": "Öğle saatlerinde güneşli.",
        "category": "Gündem",
        "tags": ["hava"],
    },
    {
        "id": "🚀-42",
        "title": "Launch day 🚀🎉",
        "body": "Liftoff 👩‍🚀 at dawn.",
        "category": "Space 🌌",
        "tags": ["🚀"],
    },
]


def check_multilingual(report):
    assert report.invalid == []
    got = [(a.id, a.title, a.body, a.category, a.tags) for a in report.articles]
    want = [(r["id"], r["title"], r["body"], r["category"], tuple(r["tags"])) for r in MULTILINGUAL]
    assert got == want


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_non_latin_text_survives_jsonl(tmp_path, ensure_ascii):
    path = tmp_path / "world.jsonl"
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in MULTILINGUAL), "utf-8"
    )
    check_multilingual(read_articles([path]))


def test_non_latin_text_survives_csv(tmp_path):
    path = tmp_path / "world.csv.gz"
    rows = ["id,title,body,category,tags"]
    for r in MULTILINGUAL:
        rows.append(",".join([r["id"], r["title"], r["body"], r["category"], r["tags"][0]]))
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write("\n".join(rows) + "\n")
    check_multilingual(read_articles([path]))


def test_metadata_from_jsonl_nan_becomes_none(tmp_path):
    path = tmp_path / "nan.jsonl"
    path.write_text('{"id": 1, "title": "T", "score": NaN, "big": Infinity, "n": 2}\n', "utf-8")
    [article] = read_articles([path]).articles
    assert article.metadata == {"score": None, "big": None, "n": 2}
