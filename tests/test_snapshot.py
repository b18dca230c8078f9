"""What a reader holds (recommender/read/snapshot.py): one immutable state of an index,
updated by reading only what changed, or loaded anew after a rebuild."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, article, sample_records

from recommender import Settings, UnknownArticleError
from recommender.lexical import lexical_text
from recommender.read.snapshot import Snapshot, check
from recommender.storage import image
from recommender.storage.layout import current_version
from recommender.text import embedding_text
from recommender.write.writer import IndexWriter


@contextmanager
def _loaded(path: Path, version: Path | None = None, **options: bool) -> Iterator[Snapshot]:
    snapshot = (
        Snapshot.load(path) if version is None else Snapshot.of_version(path, version, **options)
    )
    try:
        yield snapshot
    finally:
        snapshot.close()


def _write_some(path: Path) -> None:
    """One of each change: new articles, a rewritten one, a field edit and a removal."""
    writer = IndexWriter(path, encoder=FakeEncoder())
    stored = {str(r["id"]): r for r in sample_records()}
    writer.add(
        [
            article("new-1", "Storm closes the harbour for a second day", category="news"),
            article("new-2", "Harbour reopens after the storm", published_at="2030-01-01"),
            article("a-1001", "Orchestra opens its winter season", category="culture"),
        ]
    )
    same_text = stored["a-2016"]
    writer.add(
        [
            article(
                "a-2016",
                str(same_text["title"]),
                body=str(same_text.get("body", "")),
                category="moved",
            )
        ]
    )
    writer.remove(["a-1002"])


def _columns(snapshot: Snapshot) -> dict[str, object]:
    """The columns of a snapshot as plain values (category and language codes as names)."""
    c = snapshot.columns

    def named(codes: np.ndarray, names: tuple[str, ...]) -> list[str | None]:
        return [names[code] if code >= 0 else None for code in codes.tolist()]

    return {
        "ids": list(c.ids),
        "alive": c.alive.tolist(),
        "days": [None if np.isnan(d) else d for d in c.published_days.tolist()],
        "categories": named(c.category_codes, c.categories),
        "languages": named(c.language_codes, c.languages),
        "titles": c.title_codes.tolist(),
        "urls": c.url_codes.tolist(),
        "row_of": dict(c.row_of),
    }


def _everything(snapshot: Snapshot) -> tuple[object, ...]:
    """Columns, vectors, term vectors and ranking inputs of every row."""
    rows = np.arange(len(snapshot.columns.ids))
    terms = [snapshot.terms(int(row)) for row in rows]
    return (
        _columns(snapshot),
        snapshot.vectors(rows).tobytes(),
        [(t.terms.tolist(), t.weights.tolist()) for t in terms],
        [_query(snapshot, int(row)) for row in rows],
    )


def _query(snapshot: Snapshot, row: int) -> tuple[object, ...]:
    """What ``query`` gives for a row, its category as a name (codes differ between
    snapshots of the same rows)."""
    query = snapshot.query(row)
    category = snapshot.columns.categories[query.category] if query.category >= 0 else None
    return (query.day, category, query.title_code, query.url_code)


def test_load_holds_the_current_version_whole(sample_index: Path) -> None:
    with _loaded(sample_index) as snapshot:
        assert snapshot.path == sample_index
        assert snapshot.version == current_version(sample_index)
        assert snapshot.generation == 1
        assert snapshot.settings == Settings.from_dict(snapshot.manifest.settings)
        assert sorted(snapshot.columns.ids) == sorted(str(r["id"]) for r in sample_records())
        assert snapshot.columns.alive.all()
        assert sum(int(index.ntotal) for _, index in snapshot.parts) == 338
        assert sum(part.count for part in snapshot.lexical) == 338
        assert not snapshot.changed and not snapshot.replaced


def test_a_snapshot_never_changes_under_its_holder(sample_index: Path) -> None:
    with _loaded(sample_index) as snapshot:
        with pytest.raises(dataclasses.FrozenInstanceError):
            snapshot.generation = 2  # type: ignore[misc]
        before = _everything(snapshot)
        _write_some(sample_index)
        assert snapshot.changed and not snapshot.replaced
        assert _everything(snapshot) == before  # what it held, it still holds
        assert snapshot.generation == 1
        assert snapshot.columns.ids[snapshot.row("a-1002")] == "a-1002"  # removed since
        updated = snapshot.updated()
        assert updated is not snapshot and updated.generation == 4
        assert _everything(snapshot) == before


def test_updated_reads_only_what_changed_and_equals_a_fresh_load(sample_index: Path) -> None:
    with _loaded(sample_index) as old:
        same = old.updated()  # nothing committed: nothing read
        assert same.generation == old.generation
        assert [index for _, index in same.parts] == [index for _, index in old.parts]
        _write_some(sample_index)
        new = old.updated()
        # The parts held are kept as they are (the same objects), the new rows added after.
        assert all(a[1] is b[1] for a, b in zip(new.parts, old.parts, strict=False))
        assert all(a is b for a, b in zip(new.lexical, old.lexical, strict=False))
        assert len(new.parts) > len(old.parts)
        assert not new.changed
        with _loaded(sample_index) as fresh:
            assert (new.version, new.generation) == (fresh.version, fresh.generation)
            assert _everything(new) == _everything(fresh)
            assert new.settings == fresh.settings


def test_updated_picks_up_new_settings(sample_index: Path) -> None:
    with _loaded(sample_index) as old:
        settings = Settings.from_dict(old.manifest.settings)
        ranking = dataclasses.replace(settings.ranking, half_life_days=3.0)
        IndexWriter(sample_index).store_ranking(ranking)
        assert old.changed and old.settings.ranking.half_life_days != 3.0
        assert old.updated().settings.ranking == ranking


def test_a_rebuild_replaces_the_snapshot_which_keeps_answering(sample_index: Path) -> None:
    with _loaded(sample_index) as old:
        row = old.row("a-1001")
        vector = old.vector(row)
        IndexWriter(sample_index, encoder=FakeEncoder()).build(
            [article("only-1", "Only one"), article("only-2", "And another")]
        )
        assert old.replaced
        np.testing.assert_array_equal(old.vector(row), vector)  # its files stay mapped
        assert old.row("a-1001") == row
        with _loaded(sample_index) as fresh:
            assert fresh.version != old.version and not fresh.replaced
            assert sorted(fresh.columns.ids) == ["only-1", "only-2"]
            assert fresh.generation == 1
            with pytest.raises(UnknownArticleError):
                fresh.row("a-1001")


def test_the_image_and_the_rows_read_one_by_one_agree(sample_index: Path) -> None:
    """A snapshot opened from the image (and the rows changed since) holds what one read
    whole from SQLite does, row for row."""
    _write_some(sample_index)
    version = current_version(sample_index)
    with (
        _loaded(sample_index, version) as mapped,
        _loaded(sample_index, version, use_image=False) as plain,
    ):
        # The image's rows, then those changed since; against every row read at once.
        assert (len(mapped.lexical), len(plain.lexical)) == (2, 1)
        assert mapped.generation == plain.generation == 4
        assert _everything(mapped) == _everything(plain)


def test_row_vector_and_terms_are_those_of_the_article(sample_index: Path) -> None:
    records = {str(r["id"]): r for r in sample_records()}
    with _loaded(sample_index) as snapshot:
        lexicon = snapshot.lexicon()
        assert snapshot.lexicon() is lexicon  # read once
        ids = sorted(records)[::40]
        rows = np.array([snapshot.row(i) for i in ids])
        assert [snapshot.columns.ids[r] for r in rows] == ids
        np.testing.assert_array_equal(snapshot.vectors(rows[::-1]), snapshot.vectors(rows)[::-1])
        for article_id, row in zip(ids, rows.tolist(), strict=True):
            record = records[article_id]
            title, body = str(record["title"]), str(record.get("body", ""))
            text = embedding_text(title, body, snapshot.settings.max_body_chars)
            expected = FakeEncoder().encode([text])[0]
            np.testing.assert_allclose(snapshot.vector(row), expected, atol=1e-3)  # float16
            (vectorized,) = lexicon.vectorize(
                [lexical_text(title, body)], languages=[snapshot.columns.language(row)]
            )
            terms = snapshot.terms(row)
            assert terms.terms.tolist() == vectorized.terms.tolist()
            np.testing.assert_allclose(terms.weights, vectorized.weights, rtol=1e-6)
            query = snapshot.query(row)
            category = record.get("category")
            assert query.category == snapshot.columns.category_code(
                None if category is None else str(category)
            )
            assert (query.day is None) == (not record.get("published_at"))


def test_an_unknown_or_removed_id_is_an_error_naming_it(sample_index: Path) -> None:
    IndexWriter(sample_index).remove(["a-1002"])
    with _loaded(sample_index) as snapshot:
        for missing in ("no-such-id", "a-1002"):
            with pytest.raises(UnknownArticleError, match=f"'{missing}' is not in index"):
                snapshot.row(missing)
        assert "a-1002" in snapshot.columns.ids  # its row stays, not alive


# -- derived files: which are used, and what check says of the others -------------------------


def test_a_refresh_takes_up_lists_named_since(sample_index: Path) -> None:
    """New lists are named in the database as they are written (``recommend precompute``):
    a reader holding the version uses them after its refresh, not before."""
    with _loaded(sample_index) as before:
        named = before.binding.lists
        assert named is not None and before.precomputed is not None
        IndexWriter(sample_index).precompute()
        assert before.binding.lists == named  # a snapshot never changes
        after = before.updated()
        assert after.binding.lists not in (None, named)
        assert after.precomputed is not None and after.precomputed.generation == 1
        assert after.binding.build == before.binding.build


def test_check_names_every_derived_file_it_ignores(sample_index: Path, tmp_path: Path) -> None:
    """Each file under a derived file's name that no reader uses is listed with why: an
    older one beside the one used and a folder are notes (check still says sound), a
    symbolic link is a problem."""
    version = current_version(sample_index)
    first = version / "precomputed-000000000001.bin"
    kept = tmp_path / first.name
    kept.write_bytes(first.read_bytes())
    writer = IndexWriter(sample_index, encoder=FakeEncoder())
    writer.add([article("new-1", "Storm closes the harbour for a second day")])
    writer.precompute()  # lists at generation 2, named; the first deleted
    assert not first.exists()
    first.write_bytes(kept.read_bytes())
    (version / "image-000000000000.bin").mkdir()
    report = check(sample_index)
    assert report.sound and report.problems == []
    assert sorted(report.notes) == [
        "ignored image-000000000000.bin: a folder, not a file the engine wrote",
        "ignored precomputed-000000000001.bin: older than precomputed-000000000002.bin, which "
        "is used (the next one written deletes it)",
    ]
    (version / "image-000000000009.bin").symlink_to(version / "image-000000000001.bin")
    assert check(sample_index).problems == [
        "ignored image-000000000009.bin: a symbolic link, never read (only files the engine "
        "wrote are); delete it"
    ]
    with _loaded(sample_index) as snapshot:
        assert snapshot.from_image and snapshot.image_ignored is None  # the link never read
        assert snapshot.precomputed is not None and snapshot.precomputed.generation == 2


def test_an_image_whose_rows_disagree_with_the_database_is_read_past(
    sample_index: Path,
) -> None:
    """An image bound to the version and named by its database whose rows still do not add
    up with the database's (which the engine never writes: here the rows of generation 1
    said to be those of generation 2) is read past at open instead of failing it, and check
    says so."""
    version = current_version(sample_index)
    with _loaded(sample_index, version, use_image=False) as first:
        IndexWriter(sample_index, encoder=FakeEncoder()).add(
            [article("new-1", "Storm closes the harbour for a second day")]
        )
        assert first.build is not None
        whole = image.lexical_whole(first.lexical, first.lexicon_size)
        image.write_image(version, 2, first.columns, whole, first.lexicon_size, first.build)
    with _loaded(sample_index) as snapshot:
        assert not snapshot.from_image
        assert snapshot.image_ignored == (
            "image-000000000002.bin: does not agree with the stored rows"
        )
        assert "new-1" in snapshot.columns.ids
    assert check(sample_index).problems == [
        "ignored image-000000000002.bin: does not agree with the stored rows; opening reads "
        "every row instead (slower); delete it (recommend precompute writes the version's own)"
    ]
