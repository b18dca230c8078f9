"""Hostile input, tried on purpose: every case has one defined outcome, and the rest survives.

The three tables below are the list (README, "What happens to bad input", documents them):
add a case by adding a row. Each input case is written between two good articles, as line 2
of a JSON Lines file or, for a CSV case, as line 3 of a CSV file (after its header row
``id,title,body``); "error" cases must name that line and leave both good articles indexable
with --skip-invalid; "kept" cases are indexed, checked by their function. The third table,
FOLDER_CASES, is an index folder someone else's files or links share, or bytes changed on disk.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import FakeEncoder

from recommender import (
    Article,
    IndexDamagedError,
    IndexNotFoundError,
    IndexWriteError,
    InputFileError,
    InvalidArticleError,
    InvalidArticlesError,
    InvalidQueryError,
    Recommender,
    RecommenderError,
    UnknownArticleError,
)
from recommender.write import transaction

GOOD_BEFORE = {"id": "good-1", "title": "Harbour bridge reopens after repairs"}
GOOD_AFTER = {"id": "good-2", "title": "Harbour bridge repairs finished early"}


@dataclass(frozen=True)
class Case:
    name: str
    line: bytes
    error: str | None = None  # expected message part, for a rejected record
    check: Callable[[Recommender], None] | None = None  # for a kept one
    csv: bool = False  # the line is a CSV row (id,title,body), not a JSON Lines record


def record(**fields: object) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


def csv_row(**fields: str) -> bytes:
    return f'{fields["id"]},"{fields["title"]}",'.encode()


def _stored(article_id: str, **expected: object) -> Callable[[Recommender], None]:
    def check(rec: Recommender) -> None:
        stored = rec.get(article_id)
        for name, value in expected.items():
            assert getattr(stored, name) == value, name
        related = [item.id for item in rec.similar(article_id, k=2)]
        assert article_id not in related and len(related) <= 2
        assert related == [item.id for item in rec.similar(stored.id, k=2)]  # same row, found

    return check


def _html_cleaned(rec: Recommender) -> None:
    stored = rec.get("html")
    assert stored.body == "Ferry strike ends.\nUnions & owners agree."
    assert "alert" not in stored.body and "color" not in stored.body


def _huge_body(rec: Recommender) -> None:
    assert len(rec.get("huge").body) == 10_000_000 - 1  # stored whole, trailing space trimmed
    assert rec.similar("huge", k=1)


def _language(article_id: str, lang: str, language: str | None) -> Callable[[Recommender], None]:
    """``lang`` kept as given; the language the index keeps for it is ``language``."""

    def check(rec: Recommender) -> None:
        assert rec.get(article_id).lang == lang
        assert rec.language(article_id) == language
        assert set(rec.info().languages) <= {"en", language}
        if language == "xx":
            assert rec.info().unrecognised_languages == ["xx"]
        if language is not None:
            found = rec.similar(article_id, k=2, same_language=True)
            assert all(item.language == language for item in found)

    return check


def _metadata_nan(rec: Recommender) -> None:
    assert rec.get("nan-meta").metadata == {"score": None, "weights": [1.0, None]}


SCRIPTS = {
    "cyrillic": "Парламент принял бюджет на следующий год",
    "azerbaijani": "Bakıda yeni metro stansiyası açıldı",
    "turkish": "İstanbul'da şiddetli yağış ulaşımı aksattı",
    "arabic": "افتتاح معرض الكتاب الدولي في القاهرة",
    "chinese": "上海举办国际电影节",
}

INPUT_CASES = [
    Case("invalid JSON", b'{"id": "x", "title": ', error="invalid JSON"),
    Case("not an object", b'["id", "title"]', error="expected an object with an id and a title"),
    Case("list as title", record(id="x", title=["a"]), error="title must be a string, got a list"),
    Case("number as id", record(id=123, title="Numbers as ids"), check=_stored("123")),
    Case("float id", record(id=1.5, title="t"), error="id must be a string or an integer"),
    Case("boolean id", record(id=True, title="t"), error="id must be a string or an integer"),
    Case(
        "missing id", record(title="No id"), error="id must be a string or an integer, got missing"
    ),
    Case("missing title", record(id="x"), error="title must be a string, got missing"),
    Case("empty title and body", record(id="x", title=" ", body=""), error="title is empty"),
    Case("body not a string", record(id="x", title="t", body=5), error="body must be a string"),
    Case("tags not strings", record(id="x", title="t", tags=[1]), error="tags must be a list"),
    Case(
        "10 MB body",
        record(id="huge", title="Long read", body="word " * 2_000_000),
        check=_huge_body,
    ),
    Case("bytes that are not UTF-8", b'{"id": "x", "title": "caf\xe9"}', error="not valid UTF-8"),
    Case(
        "HTML with script and style",
        record(
            id="html",
            title="Ferry &amp; port news",
            body="<style>p{color:red}</style><p>Ferry strike ends.</p><script>alert(1)</script>"
            "<p>Unions &amp; owners agree.</p>",
        ),
        check=_html_cleaned,
    ),
    Case(
        "id with spaces, slash, quotes, emoji",
        record(id="a b/c \"d\" 'e' 📰", title="Odd id"),
        check=_stored("a b/c \"d\" 'e' 📰", title="Odd id"),
    ),
    Case(
        "id with spaces around it",
        record(id=" good-1 ", title="Padded id"),
        check=_stored(" good-1 ", title="Padded id"),  # not a duplicate of good-1
    ),
    Case("id of spaces only", record(id="   ", title="t"), error="id is empty"),
    Case("id with a newline", record(id="a\nb", title="t"), error="id must not contain control"),
    Case("id with a NUL", record(id="a\x00", title="t"), error="id must not contain control"),
    Case(
        "id with a carriage return", record(id="a\rb", title="t"), error="must not contain control"
    ),
    Case(
        "id with a lone surrogate",
        b'{"id": "a\\ud800", "title": "t"}',
        error="id is not valid Unicode (lone surrogate U+D800)",
    ),
    Case(
        "title with a lone surrogate",
        b'{"id": "x", "title": "caf\\udce9"}',
        error="title is not valid Unicode (lone surrogate U+DCE9)",
    ),
    Case(
        "metadata with a lone surrogate",
        b'{"id": "x", "title": "t", "author": ["\\ud800"]}',
        error="metadata field 'author' is not valid Unicode",
    ),
    Case(
        "date without zone",
        record(id="naive", title="t", published_at="2026-03-01T10:00:00"),
        check=_stored("naive", published_at=datetime(2026, 3, 1, 10, tzinfo=timezone.utc)),
    ),
    Case(
        "date in the future",
        record(id="future", title="t", published_at="2099-01-01"),
        check=_stored("future", published_at=datetime(2099, 1, 1, tzinfo=timezone.utc)),
    ),
    Case(
        "date before year 1 in UTC",
        record(id="x", title="t", published_at="0001-01-01T00:00:00+01:00"),
        error="published_at '0001-01-01T00:00:00+01:00' is out of the supported range",
    ),
    Case(
        "date after year 9999 in UTC",
        record(id="x", title="t", published_at="9999-12-31T23:30:00-05:00"),
        error="published_at '9999-12-31T23:30:00-05:00' is out of the supported range",
    ),
    Case(
        "first day of the calendar",
        record(id="first", title="t", published_at="0001-01-01T00:00:00Z"),
        check=_stored("first", published_at=datetime(1, 1, 1, tzinfo=timezone.utc)),
    ),
    Case(
        "last second of the calendar",
        record(id="last", title="t", published_at="9999-12-31T23:59:59Z"),
        check=_stored("last", published_at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
    ),
    Case(
        "unparseable date",
        record(id="x", title="t", published_at="yesterday"),
        error="published_at 'yesterday' is not an ISO-8601 date",
    ),
    Case(
        "date as a number",
        record(id="x", title="t", published_at=1700000000),
        error="expected an ISO-8601 date string, got int",
    ),
    Case(
        "NaN as title", b'{"id": "x", "title": NaN}', error="title must be a string, got a number"
    ),
    Case(
        "Infinity as date",
        b'{"id": "x", "title": "t", "published_at": Infinity}',
        error="expected an ISO-8601 date string, got float",
    ),
    Case(
        "NaN in metadata",
        b'{"id": "nan-meta", "title": "t", "score": NaN, "weights": [1.0, Infinity]}',
        check=_metadata_nan,
    ),
    Case(
        "-Infinity and 1e999 in metadata",
        b'{"id": "inf-meta", "title": "t", "low": -Infinity, "big": {"x": 1e999}}',
        check=_stored("inf-meta", metadata={"low": None, "big": {"x": None}}),
    ),
    Case("NaN as id", b'{"id": NaN, "title": "t"}', error="id must be a string or an integer"),
    Case(
        "-Infinity as category",
        b'{"id": "x", "title": "t", "category": -Infinity}',
        error="category must be a string, got float",
    ),
    Case("NaN in tags", b'{"id": "x", "title": "t", "tags": [NaN]}', error="tags must be a list"),
    Case(
        "CSV: NaN and Infinity are text",
        b"nan-csv,NaN,Infinity",
        check=_stored("nan-csv", title="NaN", body="Infinity"),
        csv=True,
    ),
    Case(
        "JSON nested 500 deep",
        b'{"id": "x", "title": "t", "m": ' + b"[" * 500 + b"]" * 500 + b"}",
        error="metadata field 'm' is nested too deeply (more than 100 levels)",
    ),
    Case(
        "JSON nested 100,000 deep",
        b'{"id": "x", "title": "t", "m": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        error="invalid JSON (nested too deeply)",
    ),
    Case(
        "id of 5,000 digits",
        b'{"id": ' + b"7" * 5000 + b', "title": "t"}',
        error="id is a number too large (5,000 digits)",
    ),
    Case(
        "metadata number of 5,000 digits",
        b'{"id": "x", "title": "t", "count": ' + b"7" * 5000 + b"}",
        error="metadata field 'count' is a number too large (5,000 digits)",
    ),
    Case(
        "CSV: unclosed quote",
        b'x,"Unclosed title,body',
        error="unclosed quote (a quoted field of this record runs on to line 4)",
        csv=True,
    ),
    Case(
        "CSV: quote inside a quoted field not doubled",
        b'x,"Say "hi" now",body',
        error="text after the closing quote of a field",
        csv=True,
    ),
    Case(
        "CSV: carriage return alone in an unquoted field",
        b"x,Title\rwith a CR,body",
        error="a carriage return inside a field that is not quoted",
        csv=True,
    ),
    Case(
        "CSV: a field over 64 MiB",
        b"x,t," + b"w" * (64 * 1024 * 1024 + 1),
        error="a field longer than 67,108,864 characters",
        csv=True,
    ),
    Case(
        "CSV: 10 MB body",
        b"huge,Long read," + b"word " * 2_000_000,
        check=_huge_body,
        csv=True,
    ),
    Case(
        "lang as an ISO 639-2 code",
        record(id="l", title="Ferries resume", lang="eng"),
        check=_language("l", "eng", "en"),
    ),
    Case(
        "lang as a tag with script and region",
        record(id="l", title="Ferries resume", lang="az_Latn_AZ"),
        check=_language("l", "az_Latn_AZ", "az"),
    ),
    Case(
        "lang as a name",
        record(id="l", title="Ferries resume", lang="Azerbaijani"),
        check=_language("l", "Azerbaijani", "az"),
    ),
    Case(
        "lang that is no language code",
        record(id="l", title="Ferries resume", lang="XX-yy"),
        check=_language("l", "XX-yy", "xx"),
    ),
    Case(
        "lang of 10 MB",
        record(id="l", title="Ferries resume after the harbour storm", lang="x" * 10_000_000),
        check=_language("l", "x" * 10_000_000, "en"),  # detected from the title
    ),
    Case(
        "lang with a control character",
        record(id="l", title="Ferries resume after the harbour storm", lang="e\x1bn"),
        check=_language("l", "e\x1bn", "en"),
    ),
    *[
        Case(f"{script} text", record(id=script, title=text), check=_stored(script, title=text))
        for script, text in SCRIPTS.items()
    ],
]


@pytest.mark.parametrize("case", INPUT_CASES, ids=lambda case: case.name)
def test_hostile_input(tmp_path: Path, case: Case) -> None:
    if case.csv:
        source, line = tmp_path / "feed.csv", 3
        rows = [b"id,title,body", csv_row(**GOOD_BEFORE), case.line, csv_row(**GOOD_AFTER)]
    else:
        source, line = tmp_path / "feed.jsonl", 2
        rows = [record(**GOOD_BEFORE), case.line, record(**GOOD_AFTER)]
    source.write_bytes(b"\n".join(rows) + b"\n")
    index = tmp_path / "ix"
    if case.error is not None:
        with pytest.raises(InvalidArticlesError) as raised:
            Recommender.build_from_files([source], index, encoder=FakeEncoder())
        [error] = raised.value.errors
        assert (error.path, error.line) == (str(source), line)
        assert case.error in error.reason
        report = Recommender.build_from_files(
            [source], index, encoder=FakeEncoder(), skip_invalid=True
        )
        assert (report.articles, report.skipped) == (2, 1)
    else:
        assert case.check is not None
        Recommender.build_from_files([source], index, encoder=FakeEncoder())
        with Recommender.open(index) as rec:
            case.check(rec)
            assert len(rec) == 3
    with Recommender.open(index) as rec:
        assert rec.similar("good-1", k=1)[0].id == "good-2"  # the rest is intact


def test_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(InputFileError, match=r"no articles in .*empty\.jsonl"):
        Recommender.build_from_files([tmp_path / "empty.jsonl"], tmp_path / "ix")


def test_csv_header_that_cannot_be_parsed_is_refused(tmp_path: Path) -> None:
    (tmp_path / "news.csv").write_bytes(b'id,"title\ngood-1,Harbour bridge reopens\n')
    with pytest.raises(InputFileError, match=r"news\.csv: the header row: unclosed quote"):
        Recommender.build_from_files(
            [tmp_path / "news.csv"], tmp_path / "ix", encoder=FakeEncoder(), skip_invalid=True
        )


def test_duplicate_ids_in_one_file(tmp_path: Path) -> None:
    source = tmp_path / "dup.jsonl"
    source.write_bytes(b"\n".join([record(id="d", title="first"), record(id="d", title="last")]))
    report = Recommender.build_from_files([source], tmp_path / "ix", encoder=FakeEncoder())
    assert (report.articles, report.duplicates) == (1, 1)
    assert Recommender.open(tmp_path / "ix").get("d").title == "last"


@dataclass(frozen=True)
class Query:
    name: str
    article_id: str
    options: dict[str, object]
    error: type[Exception] | None = None
    count: int | None = None  # results expected, when no error


QUERY_CASES = [
    Query("unknown id", "nope", {}, error=UnknownArticleError),
    Query("k of 0", "a-1001", {"k": 0}, count=0),
    Query("negative k", "a-1001", {"k": -3}, error=InvalidQueryError),
    Query("huge k", "a-1001", {"k": 10**12}, count=None),
    Query("unknown category", "a-1001", {"categories": ["nope"]}, error=InvalidQueryError),
    Query(
        "since after until",
        "a-1001",
        {"since": "2026-10-02", "until": "2026-10-01"},
        error=InvalidQueryError,
    ),
    Query("unparseable since", "a-1001", {"since": "last week"}, error=InvalidQueryError),
    Query("empty since", "a-1001", {"since": ""}, error=InvalidQueryError),
    Query("empty until", "a-1001", {"until": ""}, error=InvalidQueryError),
    Query("ranking value out of range", "a-1001", {"mmr_lambda": 1.5}, error=InvalidQueryError),
    Query("NaN ranking value", "a-1001", {"recency_weight": float("nan")}, error=InvalidQueryError),
    Query("unknown ranking keyword", "a-1001", {"half_life": 3}, error=TypeError),
    Query(
        "since before year 1 in UTC",
        "a-1001",
        {"since": "0001-01-01T00:00:00+01:00"},
        error=InvalidQueryError,
    ),
    Query(
        "until after year 9999 in UTC",
        "a-1001",
        {"until": "9999-12-31T23:30:00-05:00"},
        error=InvalidQueryError,
    ),
]


@pytest.mark.parametrize("query", QUERY_CASES, ids=lambda query: query.name)
def test_hostile_query(sample_rec: Recommender, query: Query) -> None:
    if query.error is not None:
        with pytest.raises(query.error):
            sample_rec.similar(query.article_id, **query.options)  # type: ignore[arg-type]
        return
    items = sample_rec.similar(query.article_id, **query.options)  # type: ignore[arg-type]
    if query.count is not None:
        assert len(items) == query.count
    else:  # everything that qualifies, and no more
        assert 200 < len(items) < len(sample_rec)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"published_at": "0001-01-01T00:00:00+01:00"}, "out of the supported range"),
        ({"published_at": "soon"}, "not an ISO-8601 date"),
        ({"since": ""}, "since is empty"),
    ],
)
def test_hostile_text_query(sample_rec: Recommender, options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        sample_rec.similar_to_text("Harbour storm\nFerries stay in port", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lang", "language"),
    [
        pytest.param("aze", "az", id="ISO 639-2"),
        pytest.param("AZ-Latn-AZ", "az", id="tag"),
        pytest.param("Azerbaijani", "az", id="name"),
        pytest.param("x" * 10_000_000, "ru", id="10 MB: detected"),
        pytest.param("r\x00u", "ru", id="NUL: detected"),
        pytest.param("und", "ru", id="undetermined: detected"),
    ],
)
def test_text_lang_in_any_form(sample_rec: Recommender, lang: str, language: str) -> None:
    """A draft's lang as an article's: any form is its code; no language, detected."""
    draft = "Лесной пожар в горах Таврин\nОколо 3 тысяч жителей девяти сёл покинули дома."
    found = sample_rec.similar_to_text(draft, k=5, lang=lang, same_language=True)
    assert found and {item.language for item in found} == {language}


@pytest.mark.parametrize(
    ("article_id", "message"),
    [
        ("line\nbreak", "control characters"),
        ("nul\x00", "control characters"),
        ("lone\ud800", "lone surrogate"),
        ("   ", "id is empty"),
    ],
)
def test_article_values_from_python_are_checked_like_records(
    tmp_path: Path, article_id: str, message: str
) -> None:
    """Recommender.build and add take Article values: they get the reader's checks too."""
    good = Article(id="good", title="Harbour bridge reopens")
    bad = Article(id=article_id, title="Harbour bridge repairs")
    with pytest.raises(InvalidArticleError, match=message):
        Recommender.build([good, bad], tmp_path / "ix", encoder=FakeEncoder())
    Recommender.build([good], tmp_path / "ix", encoder=FakeEncoder())
    with Recommender.open(tmp_path / "ix", encoder=FakeEncoder()) as rec:
        with pytest.raises(InvalidArticleError, match=message):
            rec.add([bad])
        assert rec.ids() == ["good"]


def _version(index: Path) -> Path:
    return index / (index / "CURRENT").read_text().strip()


def _user_files(index: Path) -> dict[str, bytes]:
    """Folders of the user's own whose names look like the index's, each holding a file."""
    files = {
        "v-2024-invoices/march.pdf": b"invoice",
        ".build-cache/obj.o": b"object",
        "v-20240101T000000-abcdef01/notes.txt": b"notes",  # the exact pattern, not ours
        ".build-abcdef01/keep.txt": b"keep",
    }
    for name, data in files.items():
        (index / name).parent.mkdir(parents=True, exist_ok=True)
        (index / name).write_bytes(data)
    return files


def _leftover_versions(index: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a build or compaction killed after its rename, or before it, leaves."""
    shutil.copytree(_version(index), index / "v-20200101T000000-deadbeef")
    (index / ".build-0badcafe").mkdir()
    shutil.copy(_version(index) / "seg-000001.faiss", index / ".build-0badcafe")
    (index / ".CURRENT.0badcafe").write_text("v-20200101T000000-deadbeef\n")


def _only_the_current_version(index: Path, outside: Path) -> None:
    assert sorted(p.name for p in index.iterdir()) == sorted(
        ["CURRENT", "LOCK", _version(index).name]
    )


def _lock_link(index: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (outside / "precious.txt").write_text("precious")
    (index / "LOCK").unlink()
    (index / "LOCK").symlink_to(outside / "precious.txt")


def _pointer_link(index: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (outside / "precious.txt").write_text("precious")
    monkeypatch.setattr(transaction, "token", lambda: "deadbeef")
    (index / ".CURRENT.deadbeef").symlink_to(outside / "precious.txt")


def _precious_untouched(index: Path, outside: Path) -> None:
    assert (outside / "precious.txt").read_text() == "precious"
    with Recommender.open(index) as rec:  # the index as it was
        assert sorted(rec.ids()) == ["good-1", "good-2"]


def _changed_title(index: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with sqlite3.connect(_version(index) / "articles.sqlite") as db:  # one byte: t -> b
        db.execute("UPDATE articles SET title = replace(title, 'bridge', 'bridbe')")


def _changed_title_no_lists(index: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for lists in _version(index).glob("precomputed-*.bin"):  # every article read from SQLite
        lists.unlink()
    _changed_title(index, outside, monkeypatch)


def _changed_title_caught_when_read(index: Path, outside: Path) -> None:
    with Recommender.open(index) as rec:
        listed = {r.id: r.title for r in rec.similar("good-2", k=2)}
        assert listed["good-1"] == GOOD_BEFORE["title"]  # as written, checked then
        with pytest.raises(IndexDamagedError, match="does not match its checksum"):
            rec.get("good-1")
    assert any("does not match its checksum" in p for p in Recommender.check(index).problems)


def _changed_manifest(index: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _version(index) / "manifest.json"
    path.write_text(path.read_text().replace('"half_life_days": 1.0', '"half_life_days": 70.0'))


@dataclass(frozen=True)
class FolderCase:
    name: str
    prepare: Callable[[Path, Path, pytest.MonkeyPatch], None]  # (index, a folder beside it, ...)
    operation: str  # "build", "add", "remove" or "query"
    built: bool = True  # an index of GOOD_BEFORE and GOOD_AFTER is there first
    error: tuple[type[RecommenderError], str] | None = None
    check: Callable[[Path, Path], None] | None = None  # afterwards, error or not


def _folder_kept(index: Path, outside: Path) -> None:
    for name, data in json.loads((outside / "files.json").read_text()).items():
        assert (index / name).read_bytes() == data.encode(), name


def _user_folders_noted(index: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _user_files(index)
    (outside / "files.json").write_text(json.dumps({k: v.decode() for k, v in files.items()}))


FOLDER_CASES = [
    FolderCase(
        "user's folders named like the index's, no index",
        _user_folders_noted,
        "build",
        built=False,
        error=(IndexNotFoundError, "is not empty and holds no index"),
        check=_folder_kept,
    ),
    FolderCase(
        "user's folders named like the index's, beside an index",
        _user_folders_noted,
        "add",
        check=_folder_kept,
    ),
    FolderCase(
        "user's folders named like the index's, beside an index being rebuilt",
        _user_folders_noted,
        "build",
        check=_folder_kept,
    ),
    FolderCase(
        "leftovers of a killed build or compaction",
        _leftover_versions,
        "remove",
        check=_only_the_current_version,
    ),
    FolderCase(
        "LOCK is a symbolic link to another file",
        _lock_link,
        "remove",
        error=(IndexWriteError, "LOCK is not a plain file (a symbolic link?)"),
        check=_precious_untouched,
    ),
    FolderCase(
        "a symbolic link where CURRENT is written",
        _pointer_link,
        "build",
        error=(IndexWriteError, ".CURRENT.deadbeef: something is already there"),
        check=_precious_untouched,
    ),
    FolderCase(
        "one byte changed in a stored title, no precomputed lists",
        _changed_title_no_lists,
        "query",
        error=(
            IndexDamagedError,
            "the stored article 'good-1' (row 0) does not match its checksum",
        ),
    ),
    FolderCase(  # the precomputed list shows it from its piece, checked when written
        "one byte changed in a stored title, listed from the lists",
        _changed_title,
        "query",
        check=_changed_title_caught_when_read,
    ),
    FolderCase(
        "a value changed in manifest.json",
        _changed_manifest,
        "query",
        error=(IndexDamagedError, "manifest.json does not match its checksum"),
    ),
]


def _operate(index: Path, operation: str) -> None:
    articles = [Article(**GOOD_BEFORE), Article(**GOOD_AFTER)]  # type: ignore[arg-type]
    if operation == "build":
        Recommender.build(articles, index, encoder=FakeEncoder())
    elif operation == "query":
        with Recommender.open(index) as rec:
            rec.similar("good-2", k=2)
    else:
        with Recommender.open(index, encoder=FakeEncoder()) as rec:
            if operation == "add":
                rec.add([Article(id="good-3", title="Harbour bridge tolls return")])
            else:
                rec.remove(["nothing"])


@pytest.mark.parametrize("case", FOLDER_CASES, ids=lambda case: case.name)
def test_hostile_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: FolderCase) -> None:
    index, outside = tmp_path / "ix", tmp_path / "outside"
    index.mkdir()
    outside.mkdir()
    if case.built:
        _operate(index, "build")
    case.prepare(index, outside, monkeypatch)
    if case.error is not None:
        kind, message = case.error
        with pytest.raises(kind) as raised:
            _operate(index, case.operation)
        assert message in str(raised.value)
        assert "\n" not in str(raised.value)
    else:
        _operate(index, case.operation)
    if case.check is not None:
        case.check(index, outside)
