"""The Recommender facade, with the fake encoder: building, opening, querying, options."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE, FakeEncoder, SampleCopy, article, sample_records

from recommender import (
    Answers,
    Article,
    IncompatibleIndexError,
    IndexNotFoundError,
    InvalidArticlesError,
    InvalidQueryError,
    Ranking,
    Recommender,
    Settings,
    SettingsError,
    UnknownArticleError,
)
from recommender.quality.evaluate import evaluate, labels_from_field, relevance_from_labels
from recommender.text import READ_CHARS, query_chars, title_key


def build(tmp_path: Path, articles, **kwargs) -> Recommender:
    path = tmp_path / "index"
    Recommender.build(articles, path, encoder=FakeEncoder(), **kwargs)
    return Recommender.open(path)


def test_build_report_counts_and_info(tmp_path: Path) -> None:
    report = Recommender.build_from_files([SAMPLE], tmp_path / "ix", encoder=FakeEncoder())
    records = sample_records()
    assert report.articles == len(records) == report.records
    assert report.skipped == 0 and report.duplicates == 0
    assert report.index_bytes > 0 and report.articles_per_second > 0
    with Recommender.open(tmp_path / "ix") as rec:
        info = rec.info()
        assert info.articles == len(records)
        assert info.model == "fake-bag-of-words"
        assert info.dimension == 256
        assert info.categories == len({r["category"] for r in records if r["category"]})
        counts = info.category_counts
        assert len(counts) == info.categories
        for name, count in counts.items():
            assert count == sum(1 for r in records if r["category"] == name), name
        assert list(counts.values()) == sorted(counts.values(), reverse=True)
        assert info.overrides == {"pins": 0, "blocks": 0, "hidden": 0}
        assert info.settings["half_life_days"] == Ranking().half_life_days
        assert info.bytes_on_disk >= report.index_bytes


def test_info_after_a_rebuild_reads_the_new_version(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build over the open index deletes the version it held: info() answers from the new
    one, also when the build lands between taking the snapshot and reading its folder."""
    from recommender.read.reader import Reader

    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        first = rec.info().version
        Recommender.build_from_files([SAMPLE], sample_index, encoder=FakeEncoder())
        second = rec.info()  # the held snapshot's folder is gone; nothing refreshed yet
        assert second.version != first and second.articles == len(sample_records())

        current = Reader.current
        builds = []

        def current_then_rebuilt(self: Reader) -> object:
            snapshot = current(self)
            if not builds:  # once: the next build replaces the version just taken
                builds.append(
                    Recommender.build_from_files([SAMPLE], sample_index, encoder=FakeEncoder())
                )
            return snapshot

        monkeypatch.setattr(Reader, "current", current_then_rebuilt)
        third = rec.info()
        assert builds and third.version not in (first, second.version)
        assert third.bytes_on_disk > 0


def test_get_returns_stored_fields_and_metadata(sample_rec: Recommender) -> None:
    stored = sample_rec.get("a-2016")
    assert stored.title == "Keltrix Systems discloses breach of payroll cloud platform"
    assert stored.category == "technology"
    assert stored.published_at == datetime(2026, 9, 10, 7, 30, tzinfo=timezone.utc)
    assert stored.metadata == {"story": "keltrix-data-breach"}
    assert "<" not in sample_rec.get("a-1003").body  # the sample's HTML bodies are cleaned
    assert "a-2016" in sample_rec and "nope" not in sample_rec


def test_similar_never_returns_query_or_its_duplicates(sample_rec: Recommender) -> None:
    query = sample_rec.get("a-3002")
    twins = [r["id"] for r in sample_records() if title_key(r["title"]) == title_key(query.title)]
    assert set(twins) == {"a-3002", "a-3003", "a-3004"}  # wire copies in the sample
    items = sample_rec.similar("a-3002", k=50)
    ids = [item.id for item in items]
    assert not set(twins) & set(ids)
    keys = [title_key(item.title) for item in items]
    assert len(keys) == len(set(keys))  # nor duplicates of each other


def test_scores_are_the_product_of_their_parts_best_first(sample_rec: Recommender) -> None:
    items = sample_rec.similar("a-1001", k=10)
    assert len(items) == 10
    for item in items:
        expected = item.similarity * item.recency_factor * item.category_factor
        assert item.score == pytest.approx(expected)
        assert 1 - Ranking().recency_weight <= item.recency_factor <= 1.0
        assert item.category_factor in (1.0, 1.1)
    scores = [item.score for item in items]
    assert scores == sorted(scores, reverse=True)


def test_weighting_off_gives_pure_similarity(sample_rec: Recommender) -> None:
    items = sample_rec.similar("a-1001", k=20, half_life_days=None, category_boost=0.0)
    assert all(item.recency_factor == 1.0 and item.category_factor == 1.0 for item in items)
    assert [item.score for item in items] == [item.similarity for item in items]
    assert [i.similarity for i in items] == sorted((i.similarity for i in items), reverse=True)


def test_filters(sample_rec: Recommender) -> None:
    items = sample_rec.similar("a-2016", k=30, same_category=True)
    assert items and {item.category for item in items} == {"technology"}
    items = sample_rec.similar("a-2016", k=30, categories=["sport", "culture"])
    assert items and {item.category for item in items} <= {"sport", "culture"}
    items = sample_rec.similar("a-2016", k=100, since="2026-10-01", until="2026-10-02")
    assert items
    for item in items:
        assert item.published_at is not None
        assert datetime(2026, 10, 1, tzinfo=timezone.utc) <= item.published_at
        assert item.published_at < datetime(2026, 10, 3, tzinfo=timezone.utc)
    first = sample_rec.similar("a-2016", k=3)
    without = sample_rec.similar("a-2016", k=3, exclude=[first[0].id, "not-an-id"])
    assert first[0].id not in [item.id for item in without]
    # Without the neighbour term (which excluding a top article changes) the rest stay in order:
    first = sample_rec.similar("a-2016", k=3, neighbour_weight=0)
    without = sample_rec.similar("a-2016", k=3, exclude=[first[0].id], neighbour_weight=0)
    assert without[0].id == first[1].id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": -1}, "k must be 0 or more"),
        ({"k": 2.5}, "k must be a whole number"),
        ({"categories": ["spurt"]}, "category 'spurt' is not in index"),
        ({"since": "2026-10-05", "until": "2026-10-01"}, "is after until"),
        ({"since": "yesterday"}, "not an ISO-8601 date"),
        ({"half_life_days": 0}, "half_life_days must be > 0"),
        ({"recency_weight": 1.5}, "recency_weight must be between 0 and 1"),
        ({"category_boost": -0.1}, "category_boost must be >= 0"),
        ({"recency_from": "tomorrow"}, "recency_from must be"),
        ({"lexical_weight": 1.5}, "lexical_weight must be between 0 and 1"),
        ({"lexical_weight_short": -0.1}, "lexical_weight_short must be between 0 and 1"),
        ({"neighbour_weight": -1}, "neighbour_weight must be >= 0"),
        ({"mmr_lambda": 2}, "mmr_lambda must be between 0 and 1"),
    ],
)
def test_bad_queries_raise_clear_errors(sample_rec: Recommender, kwargs, message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        sample_rec.similar("a-1001", **kwargs)


def test_k_edges_and_unknown_id(sample_rec: Recommender) -> None:
    assert sample_rec.similar("a-1001", k=0) == []
    everything = sample_rec.similar("a-1001", k=10**9)
    assert 0 < len(everything) < len(sample_rec)
    assert len({item.id for item in everything}) == len(everything)
    with pytest.raises(UnknownArticleError, match="article 'nope' is not in index"):
        sample_rec.similar("nope")
    with pytest.raises(KeyError):  # also a KeyError, as a mapping lookup would be
        sample_rec.get("nope")


def test_recency_reorders_near_ties_only(tmp_path: Path) -> None:
    text = "Harbour bridge reopens after repairs"
    rec = build(
        tmp_path,
        [
            article("q", text, published_at="2026-05-10"),
            # Equally similar (one extra word each), so only their dates tell them apart:
            article("close", text + " today", published_at="2026-05-11"),
            article("far", text + " overnight", published_at="2026-02-01"),
            article("undated", text + " tonight"),
            article("fresh-unrelated", "Orchestra announces new season", published_at="2026-05-10"),
        ],
    )
    items = rec.similar("q", k=4)
    assert [item.id for item in items[:3]] == ["close", "undated", "far"]
    # Undated: the median decay of the dated candidates (today, a day and three months away:
    # one half-life), so it ties with "close" and the tie goes to the dated one.
    assert items[1].recency_factor == pytest.approx(1 - Ranking().recency_weight / 2)
    assert items[3].id == "fresh-unrelated"
    flat = rec.similar("q", k=4, half_life_days=None)
    assert {item.recency_factor for item in flat} == {1.0}


def test_recency_from_now_prefers_the_latest(tmp_path: Path) -> None:
    text = "Harbour bridge reopens after repairs"
    rec = build(
        tmp_path,
        [
            article("q", text, published_at="2026-02-01"),
            article("then", text + " today", published_at="2026-02-02"),
            article("lately", text + " overnight", published_at="2026-05-11"),
        ],
    )
    assert rec.similar("q", k=1)[0].id == "then"
    now = datetime(2026, 5, 12, tzinfo=timezone.utc)
    assert rec.similar("q", k=1, recency_from="now", now=now)[0].id == "lately"


def test_category_boost_and_missing_category(tmp_path: Path) -> None:
    text = "City council approves new tram line"
    rec = build(
        tmp_path,
        [
            article("q", text, category="local"),
            article("same", text + " plan", category="local"),
            article("other", text + " route", category="politics"),
            article("none", text + " budget"),
        ],
    )
    items = {item.id: item for item in rec.similar("q", k=3, half_life_days=None)}
    assert items["same"].category_factor == pytest.approx(1 + Ranking().category_boost)
    assert items["other"].category_factor == 1.0 and items["none"].category_factor == 1.0
    assert rec.similar("q", k=1)[0].id == "same"
    no_category = build(tmp_path / "b", [article("q", text), article("x", text + " plan")])
    # The query has no category: the hard filter cannot apply and is not an error.
    assert no_category.similar("q", k=1, same_category=True)[0].id == "x"


def test_duplicates_by_url_and_last_record_wins(tmp_path: Path) -> None:
    rec = build(
        tmp_path,
        [
            article("q", "Storm closes ferry routes", url="https://www.a.example/storm/"),
            article("copy", "Ferry routes shut by storm", url="http://a.example/storm#top"),
            article("x", "Storm closes ferry routes again"),
            article("x", "Storm keeps ferry routes shut for a second day"),
        ],
    )
    assert [item.id for item in rec.similar("q", k=5)] == ["x"]
    assert rec.get("x").title == "Storm keeps ferry routes shut for a second day"
    assert len(rec) == 3


def test_similar_to_text_uses_the_index_model(sample_rec: Recommender) -> None:
    target = sample_rec.get("a-2016")
    items = sample_rec.similar_to_text(f"{target.title}\n{target.body}", k=3)
    assert items[0].id == "a-2016"
    assert items[0].dense_similarity == pytest.approx(1.0, abs=1e-3)  # float16 vectors
    assert items[0].lexical_similarity == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InvalidQueryError, match="empty"):
        sample_rec.similar_to_text("  <p></p> ")


def _longest_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The longest text each stage read from here on: HTML cleaning, language detection, TF-IDF
    and the encoder (filled in as the spied functions are called)."""
    from recommender import language, lexical
    from recommender.read import pipeline

    longest: dict[str, int] = {}

    def spy(stage: str, owner: object, name: str) -> None:
        real = getattr(owner, name)

        def call(text, *args, **kwargs):
            longest[stage] = max(longest.get(stage, 0), len(text))
            return real(text, *args, **kwargs)

        monkeypatch.setattr(owner, name, call)

    def encode(self: FakeEncoder, texts: list[str], real=FakeEncoder.encode) -> np.ndarray:
        longest["embed"] = max([longest.get("embed", 0), *map(len, texts)])
        return real(self, texts)

    spy("clean", pipeline, "clean_html")
    spy("clean", lexical, "clean_html")
    spy("detect", language, "detect")
    spy("tf-idf", lexical, "kept_words")  # analyze and known_share read through it
    monkeypatch.setattr(FakeEncoder, "encode", encode)
    return longest


NOW = datetime(2026, 9, 3, tzinfo=timezone.utc)
STORM = "Storm closes the harbour as ferries stay in port for a third day. "


@pytest.mark.parametrize("lines", ["title and body", "one line"])
def test_a_10_mb_draft_is_read_only_up_to_query_chars(
    sample_rec: Recommender, monkeypatch: pytest.MonkeyPatch, lines: str
) -> None:
    body = STORM * (10_000_000 // len(STORM))
    text = f"Harbour storm\n{body}" if lines == "title and body" else body
    bound = query_chars(sample_rec.settings.max_body_chars)
    longest = _longest_reads(monkeypatch)
    items = sample_rec.similar_to_text(text, k=5, now=NOW)
    assert set(longest) == {"clean", "detect", "tf-idf", "embed"}
    assert max(longest.values()) <= bound < len(text)
    assert items and items == sample_rec.similar_to_text(text[:bound], k=5, now=NOW)


def test_a_draft_of_query_chars_is_read_whole_and_answered_as_before(
    sample_rec: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.read import pipeline

    bound = query_chars(sample_rec.settings.max_body_chars)
    target = sample_rec.get("a-2016")
    text = f"{target.title}\n<p>{target.body}</p>\n"
    text += "<p>" + (STORM * (bound // len(STORM)))[: bound - len(text) - 8] + "</p>\n"
    assert len(text) == bound
    cleaned: list[str] = []
    real = pipeline.clean_html
    monkeypatch.setattr(pipeline, "clean_html", lambda given: cleaned.append(given) or real(given))
    cut = sample_rec.similar_to_text(text, k=10, now=NOW)
    assert cleaned == [text]
    monkeypatch.setattr(pipeline, "query_chars", lambda max_body_chars: 10 * bound)
    assert cut == sample_rec.similar_to_text(text, k=10, now=NOW)


def test_an_article_with_a_long_body_is_stored_whole_and_read_up_to_read_chars(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (STORM * (3 * READ_CHARS // len(STORM))).strip()
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        longest = _longest_reads(monkeypatch)
        rec.add([article("long", "Harbour storm", body=body)])
        assert rec.get("long").body == body
        assert set(longest) == {"clean", "detect", "tf-idf", "embed"}
        assert longest["clean"] <= READ_CHARS
        assert longest["tf-idf"] <= len("Harbour storm\n") + READ_CHARS
        assert rec.similar("long", k=3)


def test_reopen_gives_identical_answers(sample_index: Path) -> None:
    with Recommender.open(sample_index) as first, Recommender.open(sample_index) as second:
        for article_id in ("a-1001", "a-2016", "a-3002", "a-1029"):
            assert first.similar(article_id, k=10) == second.similar(article_id, k=10)


def test_rebuild_gives_identical_answers(tmp_path: Path, sample_index: Path) -> None:
    Recommender.build_from_files([SAMPLE], tmp_path / "again", encoder=FakeEncoder())
    with Recommender.open(sample_index) as one, Recommender.open(tmp_path / "again") as two:
        assert one.similar("a-1050", k=10) == two.similar("a-1050", k=10)


def test_concurrent_queries_match_serial_ones(sample_rec: Recommender) -> None:
    ids = [record["id"] for record in sample_records()][:60]
    expected = {article_id: sample_rec.similar(article_id, k=5) for article_id in ids}
    failures: list[str] = []

    def worker() -> None:
        for _ in range(3):
            for article_id in ids:
                if sample_rec.similar(article_id, k=5) != expected[article_id]:
                    failures.append(article_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_invalid_records_fail_the_build_unless_skipped(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": f"n{i}", "title": f"Headline number {i}"}) for i in range(5)]
    lines[2] = '{"id": "n2", "title": '
    lines.append(json.dumps({"id": "n1", "title": "Headline number one, corrected"}))
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidArticlesError, match=r"in\.jsonl:3: invalid JSON"):
        Recommender.build_from_files([source], tmp_path / "ix", encoder=FakeEncoder())
    assert not (tmp_path / "ix" / "CURRENT").exists()
    report = Recommender.build_from_files(
        [source], tmp_path / "ix", encoder=FakeEncoder(), skip_invalid=True
    )
    assert (report.articles, report.records, report.skipped, report.duplicates) == (4, 6, 1, 1)


class ExplodingEncoder(FakeEncoder):
    def encode(self, texts):
        raise KeyboardInterrupt


def test_failed_build_leaves_previous_index_untouched(sample_index: Path) -> None:
    before = Recommender.open(sample_index).similar("a-1001", k=5)
    with pytest.raises(KeyboardInterrupt):
        Recommender.build([article("z", "Other news")], sample_index, encoder=ExplodingEncoder())

    def crash_while_writing(done: int, total: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        Recommender.build(
            [article("z", "Other news")],
            sample_index,
            encoder=FakeEncoder(),
            progress=crash_while_writing,
        )
    with Recommender.open(sample_index) as rec:
        assert rec.similar("a-1001", k=5) == before
    assert not [p for p in sample_index.iterdir() if p.name.startswith(".build-")]
    assert len([p for p in sample_index.iterdir() if p.name.startswith("v-")]) == 1


def test_rebuild_replaces_and_cleans_old_versions(sample_index: Path) -> None:
    Recommender.build([article("z", "Only article")], sample_index, encoder=FakeEncoder())
    with Recommender.open(sample_index) as rec:
        assert len(rec) == 1 and rec.similar("z") == []
    assert len([p for p in sample_index.iterdir() if p.name.startswith("v-")]) == 1


def test_reader_answers_from_a_rebuilt_index(sample_index: Path) -> None:
    reader = Recommender.open(sample_index)
    assert reader.similar("a-1001", k=5)
    Recommender.build([article("z", "Only article")], sample_index, encoder=FakeEncoder())
    with pytest.raises(UnknownArticleError):
        reader.similar("a-1001", k=5)
    assert reader.ids() == ["z"]


def test_refuses_to_build_into_a_folder_that_is_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(IndexNotFoundError, match="is not empty and holds no index"):
        Recommender.build([article("a", "A")], tmp_path / "mine", encoder=FakeEncoder())
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_model_mismatch_is_a_clear_error(sample_index: Path) -> None:
    with pytest.raises(IncompatibleIndexError, match="built with model 'fake-bag-of-words'"):
        Recommender.open(sample_index, model="sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(IncompatibleIndexError):
        Recommender.open(sample_index, encoder=FakeEncoder(name="another"))


def test_ids_and_candidate_stage(sample_rec: Recommender) -> None:
    ids = sample_rec.ids()
    assert len(ids) == len(sample_rec) == len(set(ids)) and "a-1001" in ids
    candidates = sample_rec.candidates("a-3002", k=10)
    # The embedding's 100 nearest, then the TF-IDF's best that are not among them:
    assert Ranking().candidates <= len(candidates) <= 2 * Ranking().candidates
    assert "a-3002" not in [i for i, _ in candidates]
    similarities = [s for _, s in candidates]
    assert similarities == sorted(similarities, reverse=True)
    # Reranking chooses from these: every result is a candidate, the query's copies are not.
    chosen = {item.id for item in sample_rec.similar("a-3002", k=10)}
    assert chosen <= {i for i, _ in candidates}
    assert {"a-3003", "a-3004"} <= {i for i, _ in candidates} - chosen


def test_float16_and_float32_vectors_agree(tmp_path: Path, sample_index: Path) -> None:
    Recommender.build_from_files(
        [SAMPLE],
        tmp_path / "exact",
        encoder=FakeEncoder(),
        settings=Settings(vector_type="float32"),
    )
    with Recommender.open(sample_index) as half, Recommender.open(tmp_path / "exact") as exact:
        assert half.settings.vector_type == "float16"
        assert exact.settings.vector_type == "float32"
        for article_id in ("a-1001", "a-2016", "a-3050"):
            ours = half.similar(article_id, k=5)
            truth = exact.similar(article_id, k=5)
            assert [i.similarity for i in ours] == pytest.approx(
                [i.similarity for i in truth], abs=1e-3
            )
    with pytest.raises(SettingsError, match="vector_type"):
        Settings(vector_type="int8")  # type: ignore[arg-type]


class ScriptedEncoder(FakeEncoder):
    """The fake encoder, except for texts starting with a key of ``vectors``: those get the
    vector given, whatever their words."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.vectors = vectors

    def encode(self, texts):  # type: ignore[no-untyped-def]
        out = super().encode(texts)
        for row, text in enumerate(texts):
            for start, vector in self.vectors.items():
                if text.startswith(start):
                    out[row] = vector / np.linalg.norm(vector)
        return out


def test_the_lexical_side_finds_what_the_embedding_misses(tmp_path: Path) -> None:
    # "q" and "twin" share rare words, but the model (scripted) sees them as unrelated;
    # twelve distractors are the model's nearest (same vector as the query). With 3
    # candidates a side, only the TF-IDF side brings "twin" in; fused, it ranks first.
    basis = np.eye(256, dtype=np.float32)
    vectors = {"Zanthor": basis[0] + 0.2 * basis[1], "Quillby": basis[2]}
    articles = [
        article("q", "Zanthor quillby merger talks collapse at dawn"),
        article("twin", "Quillby and Zanthor merger talks collapse"),
        *[article(f"d{n}", f"Zanthor weather note {n}") for n in range(12)],
    ]
    path = tmp_path / "ix"
    Recommender.build(
        articles,
        path,
        encoder=ScriptedEncoder(vectors),
        settings=Settings(ranking=Ranking(candidates=3)),
    )
    with Recommender.open(path) as rec:
        # Headline-length queries: the short weight applies. (The neighbour term is off: the
        # distractors agree with each other, which is what it rewards.)
        options = {"half_life_days": None, "neighbour_weight": 0.0}
        items = rec.similar("q", k=1, lexical_weight_short=0.8, **options)
        assert items[0].id == "twin"
        assert items[0].dense_similarity < 0.1 < items[0].lexical_similarity
        assert "twin" in [i for i, _ in rec.candidates("q", k=1)]
        assert rec.similar("q", k=1, lexical_weight_short=0.0, **options)[0].id != "twin"


def test_copies_are_listed_once_with_their_count(tmp_path: Path) -> None:
    wire = "Port strike halts grain exports as talks stall"
    rec = build(
        tmp_path,
        [
            article(
                "q",
                "Grain exports halted by port strike",
                body="Talks stall.",
                published_at="2026-05-02",
            ),
            article("late", wire, url="https://b.example/1", published_at="2026-05-03"),
            article("first", wire, url="https://c.example/2", published_at="2026-05-01"),
            article("again", wire.upper(), url="https://d.example/3", published_at="2026-05-02"),
            article("other", "Port strike talks resume in the capital", published_at="2026-05-02"),
        ],
    )
    items = rec.similar("q", k=5)
    ids = [item.id for item in items]
    # The same text: the copy closest in time to the query scores best and is shown.
    assert "again" in ids and "late" not in ids and "first" not in ids
    copy = next(item for item in items if item.id == "again")
    assert copy.copies == 3 and sorted(copy.copy_ids) == ["first", "late"]
    assert next(item for item in items if item.id == "other").copies == 1
    # Without recency their scores are equal: the earliest published, the original, is shown.
    flat = [item.id for item in rec.similar("q", k=5, half_life_days=None)]
    assert "first" in flat and "late" not in flat and "again" not in flat


def test_added_articles_are_found_by_their_words(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        before = rec.get("a-2016")
        rec.add([article("new", before.title + " update", body=before.body)])
        found = {item.id: item for item in rec.similar("a-2016", k=10)}
        # The same text plus a word: a copy of the query by the TF-IDF rule, so left out.
        assert "new" not in found
        other = rec.similar("a-1001", k=3)[0]
        assert other.lexical_similarity > 0


# -- languages ----------------------------------------------------------------------------------


def test_same_language_keeps_to_the_query_articles_language(sample_rec: Recommender) -> None:
    assert sample_rec.language("a-1001") == "en" and sample_rec.language("a-4002") == "az"
    with pytest.raises(UnknownArticleError):
        sample_rec.language("nope")
    plain = sample_rec.similar("a-4002", k=10)
    assert {item.language for item in plain} > {"az"}  # other languages without the filter
    kept = sample_rec.similar("a-4002", k=10, same_language=True)
    assert kept and {item.language for item in kept} == {"az"}
    assert len(kept) == 4  # every other Azerbaijani article of the sample, and only those
    from recommender import Filters

    assert sample_rec.similar("a-4002", k=10, filters=Filters(same_language=True)) == kept
    english = sample_rec.similar("a-1001", k=10, same_language=True, same_category=True)
    assert {(item.language, item.category) for item in english} == {("en", "world")}


def test_same_language_for_a_draft(sample_rec: Recommender) -> None:
    draft = "Лесной пожар в горах Таврин\nОколо 3 тысяч жителей девяти сёл покинули дома."
    detected = sample_rec.similar_to_text(draft, k=10, same_language=True)
    assert detected and {item.language for item in detected} == {"ru"}
    told = sample_rec.similar_to_text(draft, k=10, same_language=True, lang="tr-TR")
    assert told and {item.language for item in told} == {"tr"}
    assert sample_rec.similar_to_text(draft, k=10, same_language=True, lang="de") == []
    # Unknown language (nothing to detect it from): the filter is not applied.
    when = "2026-11-07T00:00:00Z"
    unsure = sample_rec.similar_to_text("2600 - 400 - 35", published_at=when, same_language=True)
    assert len({item.language for item in unsure}) > 1
    assert unsure == sample_rec.similar_to_text("2600 - 400 - 35", published_at=when)


#: The sample's languages as ISO 639-2/T codes (as many feeds and NewsML write them).
THREE_LETTERS = {"en": "eng", "az": "aze", "ru": "rus", "tr": "tur"}


def _build_labelled(sample_rec: Recommender, path: Path, label) -> Recommender:
    """The sample built again with ``label(record, its language in the sample)`` as each
    article's lang field (None: none, as the sample's own English articles mostly are)."""
    records = sample_records()
    for record in records:
        record["lang"] = label(record, sample_rec.language(str(record["id"])))
    source = path.with_suffix(".jsonl")
    source.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    Recommender.build_from_files([source], path, encoder=FakeEncoder())
    return Recommender.open(path, encoder=FakeEncoder())


def _answers(rec: Recommender, article_id: str, **options) -> list[dict]:
    """A related list, but for each article's lang field as given (``eng`` or ``en``)."""
    return [
        {key: value for key, value in asdict(item).items() if key != "lang"}
        for item in rec.similar(article_id, k=10, **options)
    ]


def test_half_eng_half_en_is_one_language(sample_rec: Recommender, tmp_path: Path) -> None:
    """English articles labelled eng and en are one language, en: in info, in the
    same-language filter and in their stop words, as if all said en (the sample)."""
    english = iter(range(10**6))

    def label(record: dict, language: str | None) -> str | None:
        if language != "en":
            return record.get("lang")
        return "eng" if next(english) % 2 else "en"

    with _build_labelled(sample_rec, tmp_path / "mixed", label) as rec:
        ids = rec.ids()
        assert {rec.get(i).lang for i in ids if rec.language(i) == "en"} == {"eng", "en"}
        assert [rec.language(i) for i in ids] == [sample_rec.language(i) for i in ids]
        assert rec.info().languages == sample_rec.info().languages
        assert rec.info().languages["en"] == 323 and "eng" not in rec.info().languages
        kept = rec.similar("a-1001", k=10, same_language=True)
        assert {item.language for item in kept} == {"en"}
        assert {item.lang for item in kept} == {"eng", "en"}
        for article_id in ids:
            assert _answers(rec, article_id, same_language=True) == _answers(
                sample_rec, article_id, same_language=True
            )
        terms = set(rec.snapshot.lexicon().terms)  # eng got English stop words, as en does
        assert terms and not {"the", "and", "of"} & terms


def test_three_letter_and_two_letter_codes_rank_the_same(
    sample_rec: Recommender, tmp_path: Path
) -> None:
    def two(record: dict, language: str | None) -> str | None:
        return language

    def three(record: dict, language: str | None) -> str | None:
        return THREE_LETTERS[language] if language else None

    with (
        _build_labelled(sample_rec, tmp_path / "two", two) as short,
        _build_labelled(sample_rec, tmp_path / "three", three) as long,
    ):
        assert long.get("a-4002").lang == "aze" and long.language("a-4002") == "az"
        assert long.info().languages == short.info().languages
        for article_id in short.ids():
            assert long.language(article_id) == short.language(article_id)
            assert _answers(long, article_id) == _answers(short, article_id)
            assert _answers(long, article_id, same_language=True) == _answers(
                short, article_id, same_language=True
            )
        relevance = relevance_from_labels(labels_from_field([SAMPLE], "story"))
        by_language = evaluate(long, relevance, k=10).by_language
        assert set(by_language) == {"en", "az", "ru", "tr"}
        assert by_language == evaluate(short, relevance, k=10).by_language
        draft = "Лесной пожар в горах Таврин\nОколо 3 тысяч жителей девяти сёл покинули дома."
        for lang in ("ru", "rus", "RU-ru", "Russian", "русский", "rus_Cyrl"):
            for rec in (short, long):
                found = rec.similar_to_text(draft, k=10, same_language=True, lang=lang)
                assert found and {item.language for item in found} == {"ru"}


def test_info_names_languages_kept_as_given(sample_rec: Recommender, tmp_path: Path) -> None:
    def label(record: dict, language: str | None) -> str | None:
        return "xx-YY" if record["id"] == "a-1001" else record.get("lang")

    with _build_labelled(sample_rec, tmp_path / "odd", label) as rec:
        assert rec.language("a-1001") == "xx"
        info = rec.info()
        assert info.languages["xx"] == 1 and info.unrecognised_languages == ["xx"]
        assert rec.similar_to_text("Strong earthquake", lang="XX", same_language=True)[0].id == (
            "a-1001"
        )
    assert sample_rec.info().unrecognised_languages == []


# vector search by size -----------------------------------------------------------------------


def _sample_articles() -> list:
    from recommender.articles import read_articles

    return read_articles([SAMPLE]).articles


def test_index_type_is_chosen_by_size_and_recorded(tmp_path: Path) -> None:
    articles = _sample_articles()
    small = Settings(hnsw_min_rows=len(articles) + 1)
    Recommender.build(articles, tmp_path / "flat", encoder=FakeEncoder(), settings=small)
    large = Settings(hnsw_min_rows=len(articles))
    Recommender.build(articles, tmp_path / "graph", encoder=FakeEncoder(), settings=large)
    with Recommender.open(tmp_path / "flat") as rec:
        assert rec.manifest.search == {"type": "flat"}
        assert rec.info().vector_search.startswith("flat")
        assert not hasattr(rec.snapshot.parts[0][1], "hnsw")
    with Recommender.open(tmp_path / "graph") as rec:
        assert rec.manifest.search == {
            "type": "hnsw",
            "m": 32,
            "ef_construction": 40,
            "ef_search": 128,
        }
        assert rec.info().search["type"] == "hnsw" and "efSearch=128" in rec.info().vector_search
        assert rec.snapshot.parts[0][1].hnsw.efSearch == 128
    with pytest.raises(SettingsError, match="vector_search must be"):
        Settings(vector_search="ivf")  # type: ignore[arg-type]


GRAPH = Settings(vector_search="hnsw")


def test_graph_search_answers_like_the_exhaustive_one(sample_copy: SampleCopy) -> None:
    flat_index, graph_index = sample_copy(name="flat"), sample_copy(GRAPH, name="graph")
    with Recommender.open(flat_index) as flat, Recommender.open(graph_index) as graph:
        assert flat.info().search["type"] == "flat" and graph.info().search["type"] == "hnsw"
        for query in ("a-1001", "a-2016", "a-3002"):
            assert [i.id for i in graph.similar(query, k=10)] == [
                i.id for i in flat.similar(query, k=10)
            ]
        filtered = graph.similar("a-2016", k=5, same_category=True)
        assert filtered and all(item.category == "technology" for item in filtered)


def test_removed_articles_never_come_back_with_a_graph(sample_copy: SampleCopy) -> None:
    path = sample_copy(GRAPH, name="graph")
    before = Recommender.open(path)  # opened before the removal, never refreshed by hand
    with Recommender.open(path, encoder=FakeEncoder()) as rec:
        top = [item.id for item in rec.similar("a-1001", k=5)]
        rec.remove(top[:3])
        after = [item.id for item in rec.similar("a-1001", k=20)]
        assert not set(top[:3]) & set(after) and len(after) == 20
        assert not set(top[:3]) & {i for i, _ in rec.candidates("a-1001", k=20)}
        assert not set(top[:3]) & {i.id for i in rec.similar_to_text("payroll breach", k=20)}
    assert not set(top[:3]) & {item.id for item in before.similar("a-1001", k=20)}
    before.refresh()
    assert not set(top[:3]) & {item.id for item in before.similar("a-1001", k=20)}
    before.close()


def test_lazy_open_reads_the_index_only_when_needed(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    Recommender.build(_sample_articles(), path, encoder=FakeEncoder())
    with pytest.raises(IndexNotFoundError):
        Recommender.open(tmp_path / "none", lazy=True)
    with pytest.raises(IncompatibleIndexError):
        Recommender.open(path, lazy=True, model="another/model")
    with Recommender.open(path, lazy=True, encoder=FakeEncoder()) as rec:
        report = rec.add([article("new-1", "Harbour cranes stand still in the storm")])
        rec.remove(["a-1001"])
        assert report.added == 1 and rec._reader._held is None  # written without loading the index
        assert rec.manifest.model == "fake-bag-of-words" and rec._reader._held is None
        assert "new-1" in rec and "a-1001" not in rec  # loaded now, with both changes
        assert rec.similar("a-2016", k=3)


def test_status_and_answers(sample_index: Path) -> None:
    """What a server reports: counts of the current state, when it was written and last
    refreshed, and whether answers came from the precomputed lists."""
    with (
        Recommender.open(sample_index, encoder=FakeEncoder()) as rec,
        Recommender.open(sample_index, encoder=FakeEncoder()) as other,
    ):
        opened = time.time()
        status = rec.status()
        assert (status.articles, status.generation) == (len(rec), rec.info().generation)
        assert status.version == rec.snapshot.version.name
        assert status.refreshed_at <= opened and status.answers == Answers(0, 0)
        rec.similar("a-1001", k=3)  # the sample's lists hold it
        rec.similar("a-1001", k=3, same_category=True)  # a filter: searched
        rec.similar("a-2016", k=3, recency_weight=0.0)  # another ranking: searched
        assert rec.answers() == Answers(precomputed=1, searched=2)

        time.sleep(0.05)
        other.add([Article(id="s-1", title="Status", body="A new article.")])
        assert rec.status().articles == status.articles  # not refreshed yet
        assert rec.refresh()
        after = rec.status()
        assert (after.articles, after.generation) == (status.articles + 1, status.generation + 1)
        assert after.written_at > opened and after.refreshed_at > after.written_at
        assert not rec.refresh()  # nothing new: still a refresh that succeeded
        assert rec.status().refreshed_at > after.refreshed_at
        assert rec.status().answers == Answers(1, 2)


def test_a_draft_says_its_language_and_how_much_of_it_tfidf_can_see(
    sample_rec: Recommender,
) -> None:
    from recommender.read import pipeline

    snapshot, ranking = sample_rec.snapshot, sample_rec.settings.ranking
    known = sample_rec.get("a-1001")
    asked = pipeline.text_query(
        snapshot, f"{known.title}\n{known.body}", ranking, None, None, "en", NOW
    )
    assert asked.query.lexical_share == 1.0
    assert asked.query.language == snapshot.columns.language_code("en") >= 0
    # Words no article of the index holds: TF-IDF sees little of it, so it weighs less.
    made_up = "Zorblat quexif vimmering \n" + " ".join(f"wugpart{i} snarflig{i}" for i in range(40))
    asked = pipeline.text_query(snapshot, made_up, ranking, None, None, "en", NOW)
    assert asked.query.lexical_share < 0.2
    asked = pipeline.text_query(snapshot, "Zorblat quexif", ranking, None, None, "xx", NOW)
    assert asked.query.language == -2  # a language no article has: TF-IDF sees none of them


def test_info_counts_live_categories_and_overrides(sample_index: Path) -> None:
    """``category_counts`` follows removals; ``overrides`` counts each kind held."""
    with Recommender.open(sample_index) as rec:
        before = rec.info().category_counts
        category = rec.get("a-1001").category
        assert category is not None
        rec.remove(["a-1001"])
        rec.overrides.pin("a-1002", "a-1010", position=2)
        rec.overrides.pin("a-1002", "a-1011", position=1)
        rec.overrides.block("a-1002", "a-1003")
        rec.overrides.hide("a-1012")
        info = rec.info()
        assert info.category_counts[category] == before[category] - 1
        assert info.overrides == {"pins": 2, "blocks": 1, "hidden": 1}
