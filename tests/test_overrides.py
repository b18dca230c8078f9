"""Editorial overrides (``write.overrides``, ``storage.overrides``): pins, blocks and hidden
articles, kept through rebuilds, compactions, replicas and removals, and honoured the same by
searched and precomputed lists."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLE, FakeEncoder, SampleCopy

from recommender import (
    InvalidQueryError,
    Override,
    Recommender,
    Settings,
    UnknownArticleError,
)
from recommender.storage.layout import current_version
from recommender.storage.manifest import read_manifest
from recommender.write.compaction import compact


def _ids(rec: Recommender, article_id: str, k: int = 5, **options: object) -> list[str]:
    return [r.id for r in rec.similar(article_id, k, **options)]  # type: ignore[arg-type]


def _unrelated(rec: Recommender, article_id: str) -> str:
    """An article far down ``article_id``'s ranking."""
    ranked = _ids(rec, article_id, len(rec) - 1)
    return ranked[-1]


def test_pin_block_hide_and_undo(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        first = rec.ids()[0]
        before = _ids(rec, first)
        far = _unrelated(rec, first)
        rec.overrides.pin(first, far, position=2)
        after = _ids(rec, first)
        assert after[1] == far and len(after) == 5
        assert [i for i in after if i != far] == before[:4]
        rec.overrides.block(first, before[0])
        assert before[0] not in _ids(rec, first)
        other = before[2]
        rec.overrides.hide(other)
        assert other not in _ids(rec, first)
        assert all(other not in _ids(rec, i) for i in rec.ids()[:10] if i != other)
        assert _ids(rec, other)  # its own list still answers
        assert other in rec
        assert rec.overrides.list() == [
            Override("pin", first, far, 2),
            Override("block", first, before[0]),
            Override("hide", other),
        ]
        rec.overrides.unpin(first, far)
        rec.overrides.block(first, before[0], undo=True)
        rec.overrides.hide(other, undo=True)
        assert _ids(rec, first) == before
        assert rec.overrides.list() == []


def test_a_pin_respects_the_query_filters_and_is_shown_once(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        first = rec.ids()[0]
        ranked = _ids(rec, first)
        rec.overrides.pin(first, ranked[3], position=1)
        pinned = _ids(rec, first)
        assert pinned[0] == ranked[3] and pinned.count(ranked[3]) == 1
        assert ranked[3] not in _ids(rec, first, exclude=[ranked[3]])
        category = rec.get(ranked[3]).category
        others = {rec.get(i).category for i in rec.ids()} - {category}
        assert ranked[3] not in _ids(rec, first, categories=sorted(c for c in others if c))
        rec.overrides.block(first, ranked[3])  # a block wins over a pin
        assert ranked[3] not in _ids(rec, first)


def test_wrong_overrides_are_refused(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        first, second = rec.ids()[:2]
        with pytest.raises(UnknownArticleError, match="nope"):
            rec.overrides.pin(first, "nope")
        with pytest.raises(UnknownArticleError, match="nope"):
            rec.overrides.hide("nope")
        with pytest.raises(InvalidQueryError, match="itself"):
            rec.overrides.block(first, first)
        with pytest.raises(InvalidQueryError, match="position"):
            rec.overrides.pin(first, second, position=0)
        assert rec.overrides.list() == []


def _some_overrides(rec: Recommender) -> list[Override]:
    first, second, third = rec.ids()[:3]
    rec.overrides.pin(first, _unrelated(rec, first), position=3)
    rec.overrides.block(second, _ids(rec, second)[0])
    rec.overrides.hide(third)
    return rec.overrides.list()


def test_overrides_survive_a_rebuild_a_compaction_and_a_replica(
    sample_index: Path, tmp_path: Path
) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        held = _some_overrides(rec)
        answers = {i: _ids(rec, i) for i in rec.ids()[:5]}
    Recommender.build_from_files([SAMPLE], sample_index, encoder=FakeEncoder())
    version = current_version(sample_index)
    compact(sample_index, version, read_manifest(version))
    assert current_version(sample_index) != version
    Recommender.replicate(sample_index, tmp_path / "replica")
    for path in (sample_index, tmp_path / "replica"):
        with Recommender.open(path, encoder=FakeEncoder()) as rec:
            assert rec.overrides.list() == held
            assert {i: _ids(rec, i) for i in rec.ids()[:5]} == answers


def test_a_removed_article_takes_its_overrides_with_it(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        held = _some_overrides(rec)
        pinned = held[0].related_id
        assert pinned is not None
        rec.remove([pinned, held[2].article_id])
        assert rec.overrides.list() == [held[1]]


@pytest.mark.parametrize("k", [3, 5, 10])
def test_precomputed_and_searched_lists_agree_with_overrides(
    sample_copy: SampleCopy, k: int
) -> None:
    held_path = sample_copy(name="held")
    searched_path = sample_copy(Settings(precomputed_k=0), name="searched")
    with (
        Recommender.open(held_path, encoder=FakeEncoder()) as held,
        Recommender.open(searched_path, encoder=FakeEncoder()) as searched,
    ):
        for rec in (held, searched):
            ids = rec.ids()
            rec.overrides.pin(ids[0], ids[-1], position=2)
            rec.overrides.pin(ids[0], ids[-2], position=30)
            rec.overrides.block(ids[0], _ids(rec, ids[0])[0])
            rec.overrides.hide(ids[7])
            rec.overrides.hide(ids[8])
        for article_id in held.ids():
            assert held.similar(article_id, k) == searched.similar(article_id, k), article_id
        assert held.answers().precomputed > 0
