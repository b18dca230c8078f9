"""What related lists show of each article, kept per snapshot (``read.shown``): a write in this
process or another (an article edited in place, replaced, removed, hidden, pinned) shows in
the next list read, through the library and through HTTP, never what the cache held before;
the cache keeps at most what it is told to; and a list's JSON is ``to_json``'s."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FakeEncoder
from fastapi.testclient import TestClient

from recommender import Recommender, SettingsError
from recommender.http.app import create_app
from recommender.http.options import ServeOptions
from recommender.read.shown import ShownCache
from recommender.results import Recommendation, RelatedList, to_json

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _listed(rec: Recommender, article_id: str, k: int = 5) -> dict[str, Recommendation]:
    return {r.id: r for r in rec.similar(article_id, k)}


def _query_and_listed(rec: Recommender) -> tuple[str, str]:
    """An article and the first of its list (both now in the snapshot's cache)."""
    query = rec.ids()[0]
    return query, next(iter(_listed(rec, query)))


def test_a_write_in_this_process_shows_at_once(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        query, shown = _query_and_listed(rec)
        assert len(rec.snapshot.shown_cache) >= 5
        # Edited in place (same text, other fields): the same row, new fields.
        edited = replace(
            rec.get(shown), url="https://news.example/moved", metadata={"desk": "night"}
        )
        assert rec.add([edited]).fields_only == 1
        again = _listed(rec, query)[shown]
        assert (again.url, again.metadata) == ("https://news.example/moved", {"desk": "night"})
        # A new title: a new row, read anew.
        assert rec.add([replace(edited, title=edited.title + " (updated)")]).replaced == 1
        titles = {r.title for r in rec.similar(query, len(rec) - 1)}
        assert edited.title + " (updated)" in titles and edited.title not in titles
        # Hidden, then shown again; removed.
        rec.overrides.hide(shown)
        assert shown not in _listed(rec, query, len(rec) - 1)
        rec.overrides.hide(shown, undo=True)
        assert shown in _listed(rec, query, len(rec) - 1)
        rec.remove([shown])
        assert shown not in _listed(rec, query, len(rec) - 1)


def test_a_pin_is_shown_with_its_current_fields(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        query = rec.ids()[0]
        far = [r.id for r in rec.similar(query, len(rec) - 1)][-1]
        _listed(rec, far)  # its own list read: far's neighbours are cached, not far
        rec.add([replace(rec.get(far), source="Pinned Desk")])
        rec.overrides.pin(query, far, position=1)
        first = rec.similar(query, 3)[0]
        assert (first.id, first.source, first.score) == (far, "Pinned Desk", 0.0)


def test_a_write_by_another_process_shows_once_loaded(sample_index: Path) -> None:
    """Another writer: a removal is never listed, even before the reader refreshes; an edit
    shows once it has (the snapshot the list, its ETag and its fields come from)."""
    with (
        Recommender.open(sample_index, encoder=FakeEncoder()) as reader,
        Recommender.open(sample_index, encoder=FakeEncoder()) as writer,
    ):
        query, shown = _query_and_listed(reader)
        second = list(_listed(reader, query))[1]
        writer.add([replace(writer.get(second), url="https://news.example/elsewhere")])
        writer.remove([shown])
        assert shown not in _listed(reader, query, len(reader) - 1)  # before any refresh
        assert reader.refresh()
        assert _listed(reader, query)[second].url == "https://news.example/elsewhere"
        assert shown not in _listed(reader, query, len(reader) - 1)


def test_writes_through_http_show_in_the_next_read(sample_index: Path) -> None:
    """The shortcut (``HotReads``) and the route read the same cache: every write is seen."""
    options = ServeOptions(token=TOKEN, cached_articles=1000)
    with TestClient(create_app(sample_index, encoder=FakeEncoder(), options=options)) as client:
        query = "a-1001"

        def related(k: int = 5) -> dict[str, dict[str, object]]:
            answer = client.get(f"/articles/{query}/similar?k={k}")
            assert answer.status_code == 200
            return {item["id"]: item for item in answer.json()["related"]}

        shown = next(iter(related()))
        stored = client.get(f"/articles/{shown}").json()
        stored["url"] = "https://news.example/edited"
        assert client.put("/articles", json=[stored], headers=AUTH).status_code == 200
        assert related()[shown]["url"] == "https://news.example/edited"
        hide = client.put("/overrides/hidden", params={"article": shown}, headers=AUTH)
        assert hide.status_code == 200
        assert shown not in related(50)
        far = list(related(50))[-1]
        pin = client.put("/overrides/pins", params={"article": query, "related": far}, headers=AUTH)
        assert pin.status_code == 200
        assert next(iter(related())) == far
        assert client.delete(f"/articles/{far}", headers=AUTH).status_code == 200
        assert far not in related(50)


def test_the_cache_keeps_at_most_its_capacity(sample_index: Path) -> None:
    with Recommender.open(sample_index, cached_articles=7) as rec:
        for article_id in rec.ids()[:10]:
            rec.similar(article_id, 5)
        assert len(rec.snapshot.shown_cache) == 7
    with Recommender.open(sample_index, cached_articles=0) as rec:
        found = rec.similar(rec.ids()[0], 5)
        assert len(found) == 5 and len(rec.snapshot.shown_cache) == 0


@pytest.mark.parametrize("count", [-1, 1.5, True, "10"])
def test_a_wrong_capacity_is_refused(sample_index: Path, count: object) -> None:
    with pytest.raises(SettingsError, match="cached_articles must be a whole number"):
        Recommender.open(sample_index, cached_articles=count)  # type: ignore[arg-type]


def test_the_least_recently_listed_go_first(sample_index: Path) -> None:
    with Recommender.open(sample_index) as rec:
        snapshot = rec.snapshot
        cache = ShownCache(3)
        cache.get(snapshot, [0, 1, 2])
        cache.get(snapshot, [0])  # row 0 listed again: row 1 is now the oldest
        cache.get(snapshot, [3])
        assert list(cache._held) == [2, 0, 3]
        carried = cache.carried([2], capacity=2)
        assert list(carried._held) == [0, 3]


def test_a_lists_json_is_to_jsons(sample_index: Path) -> None:
    with Recommender.open(sample_index) as rec:
        for article_id in rec.ids()[:20]:
            found = rec.similar(article_id, 10)
            assert isinstance(found, RelatedList)
            assert found.json() == to_json(list(found))
            assert json.loads(found.json()) == json.loads(to_json(list(found)))
        found = rec.similar(rec.ids()[0], 3)
        found[0].metadata["changed"] = True  # the caller's own copy: the cache is untouched
        assert "changed" not in rec.similar(rec.ids()[0], 3)[0].metadata
        found.pop()  # changed after it was made: written as any list
        assert found.json() == to_json(list(found))


def test_numbers_json_writes_its_own_way_are_written_by_json() -> None:
    item = Recommendation("x", float("nan"), float("inf"), 1.0, 1.0, "t", copy_ids=("y",))
    listed = RelatedList([(item, '"title": "t"')])
    assert listed.json() == to_json([item])
