"""The index on disk: layout, manifest, and clear errors for missing or damaged files."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FakeEncoder, SampleCopy, article

from recommender import (
    IncompatibleIndexError,
    IndexDamagedError,
    IndexNotFoundError,
    IndexWriteError,
    ModelError,
    Recommender,
)
from recommender.embedding.encode import register_encoder
from recommender.storage import table as table_module
from recommender.storage.layout import ARTICLES, CURRENT
from recommender.storage.manifest import FORMAT_VERSION, MANIFEST
from recommender.storage.vectors import write_segment
from recommender.write import compaction, transaction
from recommender.write import writer as writer_module

SEGMENT = "seg-000001.faiss"
IMAGE = "image-000000000001.bin"
LISTS = "precomputed-000000000001.bin"


def version_dir(index: Path) -> Path:
    return index / (index / CURRENT).read_text().strip()


def test_layout_and_manifest(sample_index: Path) -> None:
    version = version_dir(sample_index)
    assert sorted(p.name for p in version.iterdir()) == sorted(
        [ARTICLES, MANIFEST, SEGMENT, IMAGE, LISTS]
    )
    manifest = json.loads((version / MANIFEST).read_text())
    assert manifest["format"] == "recommender-index"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == "fake-bag-of-words"
    assert manifest["dimension"] == 256
    assert manifest["settings"]["max_body_chars"] == 1000
    assert manifest["settings"]["vector_type"] == "float16"
    assert sorted(p.name for p in sample_index.iterdir()) == sorted([CURRENT, "LOCK", version.name])


def test_segments_are_written_read_only_and_mapped_by_readers(sample_index: Path) -> None:
    """A reader memory-maps the stored vectors (shared by the processes serving one index), so
    a segment file must never change once written: it is made read-only."""
    path = version_dir(sample_index) / SEGMENT
    assert path.stat().st_mode & 0o777 == 0o444
    with Recommender.open(sample_index) as rec:
        assert rec.similar("a-1001")
        maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
        if maps:
            assert str(path) in maps


def test_faiss_holds_only_row_ids_and_sqlite_the_rest(sample_index: Path) -> None:
    import faiss

    version = version_dir(sample_index)
    index = faiss.read_index(str(version / SEGMENT))
    with sqlite3.connect(version / ARTICLES) as db:
        rows = db.execute("SELECT row, id, content_hash FROM articles ORDER BY row").fetchall()
        segments = db.execute("SELECT number, first_row, count, file FROM segments").fetchall()
    assert [row[0] for row in rows] == list(range(index.ntotal))
    assert all(len(row[2]) == 32 for row in rows)
    assert segments == [(1, 0, index.ntotal, SEGMENT)]


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match=r"no index at .*build-index"):
        Recommender.open(tmp_path / "nothing")


def test_current_names_a_missing_version(sample_index: Path) -> None:
    (sample_index / CURRENT).write_text("v-gone\n")
    with pytest.raises(IndexDamagedError, match="CURRENT names 'v-gone'"):
        Recommender.open(sample_index)


def test_truncated_segment(sample_index: Path) -> None:
    path = version_dir(sample_index) / SEGMENT
    path.chmod(0o644)  # written read-only
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexDamagedError, match=f"{SEGMENT} has 100 bytes, expected"):
        Recommender.open(sample_index)


def test_segment_with_wrong_checksum(sample_index: Path) -> None:
    path = version_dir(sample_index) / SEGMENT
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # same size, one byte flipped
    path.chmod(0o644)  # written read-only
    path.write_bytes(bytes(data))
    with pytest.raises(IndexDamagedError, match="does not match its checksum; build it again"):
        Recommender.open(sample_index)


@pytest.mark.parametrize("name", [SEGMENT, ARTICLES])
def test_missing_files(sample_index: Path, name: str) -> None:
    (version_dir(sample_index) / name).unlink()
    with pytest.raises(IndexDamagedError, match=f"{name} is missing"):
        Recommender.open(sample_index)


@pytest.mark.parametrize("keep", [0, 100, 5000])
def test_damaged_sqlite_is_not_a_crash(sample_index: Path, keep: int) -> None:
    path = version_dir(sample_index) / ARTICLES
    path.write_bytes(path.read_bytes()[:keep] + b"\0" * 64)
    with pytest.raises(IndexDamagedError, match=f"{ARTICLES}: .*; build it again"):
        Recommender.open(sample_index)


def test_broken_manifest(sample_index: Path) -> None:
    (version_dir(sample_index) / MANIFEST).write_text("{not json")
    with pytest.raises(IndexDamagedError, match=MANIFEST):
        Recommender.open(sample_index)


@pytest.mark.parametrize(
    ("found", "message"), [(FORMAT_VERSION + 1, "upgrade recommender"), (1, "older format")]
)
def test_other_formats_are_refused(sample_index: Path, found: int, message: str) -> None:
    path = version_dir(sample_index) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["format_version"] = found
    path.write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleIndexError, match=message):
        Recommender.open(sample_index)


def test_manifest_disagreeing_with_vectors(sample_index: Path) -> None:
    path = version_dir(sample_index) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["dimension"] = 384
    manifest.pop("checksum")  # as an earlier version wrote it: accepted, then found out
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexDamagedError, match="vectors of dimension 256, expected"):
        Recommender.open(sample_index)


def test_segment_is_never_written_through_a_link(tmp_path: Path) -> None:
    import faiss
    import numpy as np

    victim = tmp_path / "precious.txt"
    victim.write_text("precious")
    (tmp_path / "seg-000002.faiss").symlink_to(victim)
    index = faiss.IndexFlatIP(4)
    index.add(np.eye(4, dtype=np.float32))
    with pytest.raises(IndexWriteError, match=r"seg-000002\.faiss: something is already there"):
        write_segment(tmp_path, 2, 0, index)
    assert victim.read_text() == "precious" and (tmp_path / "seg-000002.faiss").is_symlink()


def _as_earlier_version(index: Path) -> None:
    """Make the index look as the previous version of recommender wrote it: no checksums."""
    version = version_dir(index)
    with sqlite3.connect(version / ARTICLES) as db:
        db.execute("DROP TABLE row_checksums")
    manifest = json.loads((version / MANIFEST).read_text())
    del manifest["checksum"]
    (version / MANIFEST).write_text(json.dumps(manifest))


def test_check_of_a_sound_index(sample_index: Path) -> None:
    report = Recommender.check(sample_index)
    assert report.sound and report.problems == [] and report.notes == []
    assert (report.articles, report.rows, report.rows_verified, report.segments) == (
        338,
        338,
        338,
        1,
    )


def test_index_without_checksums_is_read_and_gets_them_from_the_next_write(
    sample_index: Path,
) -> None:
    _as_earlier_version(sample_index)
    report = Recommender.check(sample_index)
    assert report.sound
    assert report.notes == [
        "manifest.json has no checksum (written by an earlier version)",
        "338 rows have no checksum (written by an earlier version; "
        "the next build-index writes them)",
    ]
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        assert rec.get("a-2021").title.startswith("Keltrix")
        rec.add([article("n1", "Keltrix hack: regulator opens inquiry")])
        assert rec.get("n1").title == "Keltrix hack: regulator opens inquiry"
    report = Recommender.check(sample_index)
    assert (report.sound, report.rows_verified) == (True, 1)


def test_checksums_follow_field_updates_and_compaction(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compaction, "COMPACT_MIN_ROWS", 10)
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        stored = rec.get("a-2021")
        rec.add([article("a-2021", stored.title, body=stored.body, category="business")])
        assert rec.get("a-2021").category == "business"  # its checksum was rewritten
        assert rec.remove([i for i in rec.ids() if i.startswith("a-1")][:90]).compacted
        assert rec.get("a-2021").category == "business"
    report = Recommender.check(sample_index)
    assert report.sound and report.rows_verified == report.rows == 248


def test_a_changed_row_is_an_error_naming_the_article(sample_index: Path) -> None:
    with sqlite3.connect(version_dir(sample_index) / ARTICLES) as db:
        db.execute("UPDATE articles SET title = 'Kelbrix' || substr(title, 8) WHERE id = 'a-2021'")
    with Recommender.open(sample_index) as rec:
        with pytest.raises(IndexDamagedError, match=r"article 'a-2021' \(row \d+\) does not match"):
            rec.get("a-2021")
        assert rec.get("a-2022")  # the others are served


def test_a_field_update_never_vouches_for_a_changed_row(sample_index: Path) -> None:
    with Recommender.open(sample_index) as rec:
        before = rec.get("a-2021")
    with sqlite3.connect(version_dir(sample_index) / ARTICLES) as db:
        db.execute("UPDATE articles SET title = 'Kelbrix' || substr(title, 8) WHERE id = 'a-2021'")
    moved = article("a-2021", before.title, body=before.body, category="business")  # same text
    rec = Recommender.open(sample_index, encoder=FakeEncoder())
    with rec, pytest.raises(IndexDamagedError, match=r"article 'a-2021' \(row \d+\) does not"):
        rec.add([moved])
    assert not Recommender.check(sample_index).sound


def test_index_is_complete_without_its_wal_once_a_writer_is_done(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:  # a reader holds it open
        rec.add([article("n1", "Keltrix hack: regulator opens inquiry")])
        rec.remove(["a-1001"])
    for suffix in ("-wal", "-shm"):  # what a backup copying articles.sqlite alone misses
        (version_dir(sample_index) / (ARTICLES + suffix)).unlink(missing_ok=True)
    with Recommender.open(sample_index) as rec:
        assert "n1" in rec and "a-1001" not in rec and len(rec) == 338


def test_reader_of_a_folder_it_cannot_write_reads_the_file_as_immutable(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root, permissions are not enforced: SQLite's failure to make its -shm file, and the
    # folder's permissions, are simulated (test_read_only_index_as_another_user does it for real).
    opened: list[str] = []
    real_connect = sqlite3.connect

    def connect(database: str, *args: object, **kwargs: object) -> sqlite3.Connection:
        opened.append(str(database))
        if "immutable=1" not in str(database):
            database = "file:/nonexistent/folder/x.sqlite?mode=ro"  # unable to open
        return real_connect(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(table_module.sqlite3, "connect", connect)
    monkeypatch.setattr(table_module.os, "access", lambda path, mode: False)
    with Recommender.open(sample_index) as rec:
        assert rec.get("a-2021").title.startswith("Keltrix") and rec.similar("a-2021", k=3)
    assert opened[0].endswith("?mode=ro") and opened[1].endswith("?mode=ro&immutable=1")


def test_an_immutable_reader_keeps_its_version_when_a_new_one_replaces_it(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only folder whose version is replaced (a rebuild, or a replica's next copy): the
    # file it reads as immutable is deleted. Its connection still reads it; it must not take
    # the file's absence for a change and fail to open it again, but move on at its refresh.
    real_connect = sqlite3.connect

    def read_only(monkeypatch: pytest.MonkeyPatch) -> None:
        def connect(database: str, *args: object, **kwargs: object) -> sqlite3.Connection:
            if "immutable=1" not in str(database):
                database = "file:/nonexistent/folder/x.sqlite?mode=ro"  # unable to open
            return real_connect(database, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(table_module.sqlite3, "connect", connect)
        monkeypatch.setattr(table_module.os, "access", lambda path, mode: False)

    with monkeypatch.context() as patched:
        read_only(patched)
        rec = Recommender.open(sample_index)
    old = rec.snapshot
    assert old.table._immutable is not None
    Recommender.build([article("x1", "Another corpus")], sample_index, encoder=FakeEncoder())
    assert not old.version.exists()
    with monkeypatch.context() as patched:
        read_only(patched)
        assert old.table.generation() == 1 and old.table.articles([old.row("a-2021")])
        assert rec.refresh() and rec.ids() == ["x1"]
    rec.close()


FULL = [
    ("sqlite", sqlite3.OperationalError("database or disk is full")),
    ("faiss", RuntimeError("Error in faiss::FileIOWriter: No space left on device")),
    ("ours", OSError(errno.ENOSPC, "No space left on device")),
]


@pytest.mark.parametrize("operation", ["build", "add"])
@pytest.mark.parametrize(("where", "error"), FULL, ids=[where for where, _ in FULL])
def test_disk_full_leaves_the_index_and_says_so(
    sample_index: Path,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    where: str,
    error: Exception,
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise error

    target = {"sqlite": "write_checksums", "faiss": "write_segment", "ours": "write_segment"}
    for module in (transaction, writer_module):  # a build writes in one, an update in the other
        monkeypatch.setattr(module, target[where], full)
    before = Recommender.open(sample_index).ids()
    with pytest.raises(IndexWriteError) as raised:
        if operation == "build":
            Recommender.build([article("z", "Other news")], sample_index, encoder=FakeEncoder())
        else:
            Recommender.open(sample_index, encoder=FakeEncoder()).add([article("z", "Other")])
    assert str(raised.value) == (
        f"disk full while writing the index at {sample_index}; nothing was changed"
    )
    assert Recommender.open(sample_index).ids() == before
    assert Recommender.check(sample_index).sound
    files = {p.name for p in version_dir(sample_index).iterdir()} - {
        f"{ARTICLES}-wal",
        f"{ARTICLES}-shm",
    }
    assert files == {
        ARTICLES,
        MANIFEST,
        SEGMENT,
        IMAGE,
        LISTS,
    }  # one written before the failure: gone


def test_disk_full_while_writing_the_image_leaves_the_index(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.storage import image as image_module

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(image_module, "write_mapped", full)
    before = Recommender.open(sample_index).ids()
    with pytest.raises(IndexWriteError, match="disk full while writing the index"):
        Recommender.build([article("z", "Other news")], sample_index, encoder=FakeEncoder())
    assert Recommender.open(sample_index).ids() == before
    assert not [p for p in sample_index.iterdir() if p.name.startswith(".build-")]


def test_sqlite_really_full(sample_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = writer_module.connect

    def small(path: Path, *, write: bool) -> sqlite3.Connection:
        connection = real_connect(path, write=write)
        if write:  # SQLite's own SQLITE_FULL once the file would grow
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages}")
        return connection

    monkeypatch.setattr(writer_module, "connect", small)
    body = "word " * 200_000
    with pytest.raises(IndexWriteError, match=r"^disk full while writing the index at .*; nothing"):
        Recommender.open(sample_index, encoder=FakeEncoder()).add([article("z", "Z", body=body)])
    assert "z" not in Recommender.open(sample_index)


def test_disk_full_in_the_command(sample_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from recommender.cli import app

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module, "write_segment", full)
    news = sample_index.parent / "news.jsonl"
    news.write_text(json.dumps({"id": "z", "title": "Other news"}) + "\n")
    register_encoder("fake-bag-of-words", FakeEncoder)
    try:
        result = CliRunner().invoke(app, ["add", str(news), "--index", str(sample_index)])
    finally:
        register_encoder("fake-bag-of-words", None)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: disk full while writing the index at {sample_index}; nothing was changed\n"
    )


def test_permission_denied(sample_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_write(path: object, flags: int, *args: object) -> int:
        if str(path).endswith("LOCK"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(transaction.os, "open", no_write)
    with pytest.raises(IndexWriteError) as raised:
        Recommender.open(sample_index).remove(["a-1001"])
    assert str(raised.value) == f"cannot write to {sample_index} (permission denied)"


NOBODY = """
import sys
from recommender import Recommender, RecommenderError
with Recommender.open(sys.argv[1]) as rec:
    print(len(rec), rec.similar("a-2021", k=1)[0].id, rec.get("a-2021").title[:7])
    try:
        rec.remove(["a-2021"])
    except RecommenderError as exc:
        print(exc)
"""


SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_read_only_index_as_another_user(sample_index: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="recommender-ro-"))
    try:
        shared.chmod(0o755)
        index = shared / "ix"
        shutil.copytree(sample_index, index)  # owned by root: read-only to the other user
        assert not [p for p in version_dir(index).iterdir() if p.name.endswith(("-wal", "-shm"))]
        result = subprocess.run(
            [*SETPRIV, sys.executable, "-c", NOBODY, str(index)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("338 a-20") and lines[0].endswith("Keltrix")
        assert lines[1] == f"cannot write to {index} (permission denied)"
    finally:
        shutil.rmtree(shared)


# -- languages --------------------------------------------------------------------------------


def _without_languages(index: Path) -> None:
    """Make the index look as versions before 0.3 wrote it: no language column (and checksums
    over the other columns)."""
    from recommender.storage.table import ArticleRow, row_checksum

    version = version_dir(index)
    for image in version.glob("image-*.bin"):
        image.unlink()  # written since
    with sqlite3.connect(version / ARTICLES) as db:
        db.execute("ALTER TABLE articles DROP COLUMN language")
        columns = ", ".join(ArticleRow.columns()[:-1])
        rows = db.execute(f"SELECT {columns} FROM articles").fetchall()
        db.executemany(
            "UPDATE row_checksums SET crc = ? WHERE row = ?",
            [(row_checksum((*row, None)), row[0]) for row in rows],
        )


def test_each_article_keeps_its_effective_language(sample_index: Path) -> None:
    with sqlite3.connect(version_dir(sample_index) / ARTICLES) as db:
        found = dict(db.execute("SELECT id, language FROM articles"))
    assert found["a-1001"] == "en"  # no lang field: detected
    assert [found[f"a-40{n:02d}"] for n in range(1, 5)] == ["en", "az", "ru", "tr"]
    assert set(found.values()) == {"en", "az", "ru", "tr"}
    assert Recommender.check(sample_index).sound


def test_a_changed_lang_field_changes_the_stored_language(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        stored = rec.get("a-1001")
        assert rec.language("a-1001") == "en"
        rec.add([article("a-1001", stored.title, body=stored.body)])  # same text: fields only
        assert rec.language("a-1001") == "en"
        assert rec.add([replace(stored, lang="de")]).fields_only == 1
        assert rec.language("a-1001") == "de" and rec.get("a-1001").lang == "de"
    assert Recommender.check(sample_index).sound  # the language is in the row's checksum


def test_an_index_without_languages_opens_and_gets_them_from_its_next_write(
    sample_index: Path,
) -> None:
    _without_languages(sample_index)
    assert Recommender.check(sample_index).sound
    reader = Recommender.open(sample_index, encoder=FakeEncoder())
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        assert rec.language("a-4003") is None and rec.get("a-4003").lang == "ru"
        plain = rec.similar("a-4003", k=5)
        assert plain and all(item.language is None for item in plain)
        assert rec.similar("a-4003", k=5, same_language=True) == plain  # unknown: not applied
        rec.add([article("n1", "Лесной пожар в горах Таврин: эвакуированы 3 тысячи человек")])
        assert rec.language("n1") == "ru" and rec.language("a-4003") is None
        # Only articles known to be in Russian qualify: the old rows are unknown.
        assert rec.similar("n1", k=5, same_language=True) == []
        assert rec.similar("n1", k=5)
    assert reader.refresh() and reader.language("n1") == "ru"
    reader.close()
    report = Recommender.check(sample_index)
    assert report.sound and report.rows_verified == report.rows == 339


#: How versions written before codes were normalised stored some of the sample's languages.
OLD_CODES = {"en": "eng", "ru": "rus", "az": "aze"}


def _with_old_codes(index: Path) -> dict[str, str]:
    """Make the index look as a version that kept codes as given wrote it: every other row
    of a language in OLD_CODES stores its old code (``eng`` beside ``en``), with checksums to
    match. Its image goes: one written by such a version is not bound to its build and never
    read (see test_image), so the rows are. Returns each article's stored language."""
    from recommender.storage.table import ArticleRow, row_checksum

    version = version_dir(index)
    with sqlite3.connect(version / ARTICLES) as db:
        for new, old in OLD_CODES.items():
            rows = db.execute("SELECT row FROM articles WHERE language = ? ORDER BY row", (new,))
            every_other = [(old, row) for (row,) in rows.fetchall()[::2]]
            db.executemany("UPDATE articles SET language = ? WHERE row = ?", every_other)
        columns = ", ".join(ArticleRow.columns())
        rows = db.execute(f"SELECT {columns} FROM articles").fetchall()
        db.executemany(
            "UPDATE row_checksums SET crc = ? WHERE row = ?",
            [(row_checksum(row), row[0]) for row in rows],
        )
        stored = dict(db.execute("SELECT id, language FROM articles WHERE removed = 0"))
    for image in version.glob("image-*.bin"):
        image.unlink()
    return stored


def test_codes_stored_before_normalising_are_read_normalised(sample_copy: SampleCopy) -> None:
    """An index whose rows say eng and en reads them as one language, en: each article's
    language, the same-language filter and info are those of the index written today."""
    today = sample_copy(name="today")
    old = sample_copy(name="old")
    stored = _with_old_codes(old)
    assert {"eng", "en", "rus", "ru", "aze", "az"} <= set(stored.values())
    with Recommender.open(today) as expected, Recommender.open(old) as rec:
        assert rec.snapshot.columns.languages == ("az", "en", "ru", "tr")
        ids = expected.ids()
        assert [rec.language(i) for i in ids] == [expected.language(i) for i in ids]
        for article_id in ids:
            assert rec.similar(article_id, k=10, same_language=True) == expected.similar(
                article_id, k=10, same_language=True
            )
        assert rec.info().languages == expected.info().languages
        assert rec.info().unrecognised_languages == []
    report = Recommender.check(old)
    assert report.sound, report.problems  # the image and the rows agree once normalised


def test_an_old_code_and_its_new_form_added_later_are_one_language(
    sample_copy: SampleCopy, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = sample_copy()
    stored = _with_old_codes(index)
    with Recommender.open(index, encoder=FakeEncoder()) as rec:
        reader = Recommender.open(index)
        rec.add(
            [
                replace(article("n-en", "Harbour reopens after the storm"), lang="English"),
                replace(article("n-de", "Hafen nach dem Sturm wieder offen"), lang="ger"),
            ]
        )
        assert rec.language("n-en") == "en" and rec.language("n-de") == "de"
        english = rec.similar("n-en", k=30, same_language=True)
        assert {item.language for item in english} == {"en"}
        assert {stored[item.id] for item in english} == {"en", "eng"}
        assert reader.refresh()  # applies the rows written since to the columns it holds
        assert reader.snapshot.columns.languages == ("az", "en", "ru", "tr", "de")
        assert reader.language("n-en") == "en"
        reader.close()


# vector search by size -----------------------------------------------------------------------


def test_search_of_chooses_by_size_and_records_the_settings() -> None:
    from recommender.storage.vectors import describe_search, search_of

    auto = {"vector_search": "auto", "hnsw_min_rows": 1000, "hnsw_m": 16}
    assert search_of(auto, 999) == {"type": "flat"}
    chosen = search_of(auto, 1000)
    assert chosen == {"type": "hnsw", "m": 16, "ef_construction": 40, "ef_search": 128}
    assert search_of({"vector_search": "flat"}, 10**7) == {"type": "flat"}
    assert search_of({"vector_search": "hnsw"}, 1)["type"] == "hnsw"
    assert search_of({}, 10**7) == {"type": "flat"}  # a format-3 manifest: flat
    assert describe_search(chosen).startswith("hnsw (") and "M=16" in describe_search(chosen)
    assert describe_search({}).startswith("flat")


@pytest.mark.parametrize("kind", ["flat32", "flat16", "hnsw32", "hnsw16", "sq8"])
def test_stored_vectors_are_what_faiss_decodes(kind: str) -> None:
    import faiss

    from recommender.storage.vectors import built_vector_index, stored_vectors, vectors_of

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hnsw = {"type": "hnsw", "m": 8, "ef_construction": 16, "ef_search": 16}
    if kind == "sq8":
        index = faiss.IndexScalarQuantizer(16, faiss.ScalarQuantizer.QT_8bit)
        index.train(vectors)
        index.add(vectors)
    else:
        vector_type = "float16" if kind.endswith("16") else "float32"
        search = hnsw if kind.startswith("hnsw") else {"type": "flat"}
        index = built_vector_index(16, vector_type, search, vectors)
    rows = rng.integers(0, 300, 40)
    view = stored_vectors(index)
    codes = index.storage if kind.startswith("hnsw") else index
    expected = codes.reconstruct_batch(rows)
    if kind == "sq8":
        assert view is None  # decoded by FAISS instead
    else:
        assert view is not None and view.shape == (300, 16)
        np.testing.assert_array_equal(np.asarray(view[rows], np.float32), expected)
    np.testing.assert_array_equal(vectors_of([(0, index)], rows, 16, [view]), expected)
    # In two parts, the second from row 100 on: the same vectors.
    second = built_vector_index(16, "float32", {"type": "flat"}, vectors[100:])
    parts = [(0, index), (100, second)]
    taken = vectors_of(parts, np.array([5, 150, 299]), 16, [view, stored_vectors(second)])
    np.testing.assert_array_equal(taken[0], codes.reconstruct(5))
    np.testing.assert_allclose(taken[1:], vectors[[150, 299]], atol=1e-3)


class _BrokenEncoder(FakeEncoder):
    """Gives ``value`` times the fake vector for titles holding ``"broken"``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = super().encode(texts)
        for row, text in enumerate(texts):
            if "broken" in text:
                out[row] *= self.value
        return out


def test_a_model_that_gives_vectors_not_finite_is_refused_before_writing(tmp_path: Path) -> None:
    articles = [article("a", "Harbour storm closes port"), article("b", "A broken model row")]
    with pytest.raises(ModelError, match=r"gave 1 of 2 vectors that are not finite .*broken"):
        Recommender.build(articles, tmp_path / "ix", encoder=_BrokenEncoder(float("nan")))
    assert not (tmp_path / "ix").exists() or not any((tmp_path / "ix").glob("v-*"))


def test_check_finds_vectors_that_are_zero_or_not_of_length_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index written before vectors were checked (a supplied vector x 1e30 was stored as
    zero) is not sound."""
    articles = [article(f"a{i}", f"Harbour storm closes port {i}") for i in range(4)]
    articles.append(article("z", "A broken model row"))
    monkeypatch.setattr(writer_module, "encode_all", _unchecked_encode_all)
    Recommender.build(articles, tmp_path / "ix", encoder=_BrokenEncoder(0.0))
    report = Recommender.check(tmp_path / "ix")
    assert not report.sound
    assert report.problems == [
        "1 articles have a vector that is zero, not finite or not of length 1 (e.g. 'z' "
        "(row 4)): they are related to nothing or spoil the scores of others; build the index "
        "again"
    ]


def _unchecked_encode_all(encoder: Any, texts: Sequence[str], **_: Any) -> np.ndarray:
    return np.asarray(encoder.encode(list(texts)), dtype=np.float32)
