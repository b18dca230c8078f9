"""The evidence of a candidate, its learned combination, and the explanation of a list."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from recommender import Recommender
from recommender.errors import SettingsError
from recommender.quality import learn
from recommender.read import evidence
from recommender.read.rerank import Query, fuse, pieces, rank
from recommender.read.retrieve import Pool
from recommender.settings import RULES, Ranking, Settings


def _pool(n: int, *, seed: int = 0, query_terms: int = 50, names: bool = True) -> Pool:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = rng.normal(size=8).astype(np.float32)
    query /= np.linalg.norm(query)
    terms = sparse.random(n, 30, density=0.3, random_state=seed, format="csr", dtype=np.float32)
    norms = np.sqrt(np.asarray(terms.multiply(terms).sum(axis=1))).ravel()
    terms = sparse.csr_matrix(sparse.diags(1.0 / np.maximum(norms, 1e-9)) @ terms)
    query_terms_vector = np.abs(rng.normal(size=30)).astype(np.float32)
    query_terms_vector /= np.linalg.norm(query_terms_vector)
    name_rows = sparse.random(n, 12, density=0.3, random_state=seed + 1, format="csr")
    name_rows = sparse.csr_matrix(
        sparse.diags(1.0 / np.maximum(np.sqrt(name_rows.multiply(name_rows).sum(1).A1), 1e-9))
        @ name_rows
    ).astype(np.float32)
    query_names = np.abs(rng.normal(size=12)).astype(np.float32)
    query_names /= np.linalg.norm(query_names)
    return Pool(
        dense=vectors @ query,
        lexical=np.asarray(terms @ query_terms_vector, dtype=np.float32),
        vectors=vectors,
        terms=terms,
        published_days=np.full(n, 100.0),
        category_codes=np.zeros(n, dtype=np.int32),
        title_codes=np.arange(n, dtype=np.int64),
        url_codes=np.full(n, -1, dtype=np.int64),
        query_terms=query_terms,
        identity=np.asarray(name_rows @ query_names, dtype=np.float32) if names else None,
        names=name_rows if names else None,
    )


OFF = {"half_life_days": None, "category_boost": 0.0, "duplicate_threshold": 1.0}


@pytest.mark.parametrize("query_terms", [5, 50])
def test_hand_weights_are_the_documented_formula(query_terms: int) -> None:
    # fused = (1 - w) dense + w lexical + identity_weight names, then averaged with its mean
    # over the two best candidates (a candidate's own similarity not counted), b = 1.
    pool = _pool(15, seed=2, query_terms=query_terms)
    ranking = Ranking(combination="hand", identity_weight=0.3, lexical_weight_short=0.2, **OFF)
    share = 0.2 if query_terms < ranking.short_terms else ranking.lexical_weight
    fused = fuse(pool.dense, pool.lexical, share) + 0.3 * pool.identity
    top = np.argsort(-fused, kind="stable")[:2]
    pair_dense = pool.vectors @ pool.vectors[top].T
    pair_lexical = np.asarray((pool.terms @ pool.terms[top].T).toarray())
    pair_names = np.asarray((pool.names @ pool.names[top].T).toarray())
    pair = (1 - share) * pair_dense + share * pair_lexical + 0.3 * pair_names
    counted = np.ones(pair.shape, dtype=bool)
    counted[top, np.arange(2)] = False
    closeness = np.where(counted, pair, 0.0).sum(1) / counted.sum(1)
    expected = (fused + closeness) / 2
    found = pieces(pool, ranking, Query(day=None), np.zeros(15, dtype=bool))
    assert np.allclose(evidence.combine(found.values, found.weights), expected, atol=1e-6)
    listing = rank(pool, ranking, Query(day=None))
    assert [int(g[0]) for g in listing.groups] == np.argsort(-expected, kind="stable").tolist()


def test_a_correction_is_added_to_the_hand_weights_of_its_kind() -> None:
    model = evidence.Model((0.1, 0.0, 0.2, 0.0, 0.0, 0.0), (0.3, 0.0, 0.0, 0.0, 0.0, -0.05))
    ranking = Ranking(evidence=model.flat(), identity_weight=0.2, lexical_weight_short=0.0)
    long_hand = evidence.hand_weights(ranking, short=False)
    assert np.allclose(evidence.weights(ranking, short=False), long_hand + np.array(model.long))
    short = evidence.weights(ranking, short=True)
    hand = evidence.hand_weights(ranking, short=True)
    # The TF-IDF share of headlines is 0 by the knobs: no correction turns it on.
    assert short[1] == 0.0 and short[4] == 0.0
    assert short[0] == pytest.approx(hand[0] + 0.3)
    assert short[5] == pytest.approx(hand[5] - 0.05)
    assert np.allclose(evidence.weights(replace(ranking, combination="hand"), False), long_hand)


def test_no_weight_goes_below_zero_and_off_pieces_stay_off() -> None:
    ranking = Ranking(evidence=(-5.0,) * 12, identity_weight=0.0)
    for short in (False, True):
        found = evidence.weights(ranking, short)
        assert (found >= 0).all()
        assert found[2] == 0.0 and found[5] == 0.0  # names off by the knob


def test_without_an_index_model_the_packaged_one_is_used() -> None:
    packaged = json.loads(evidence.DEFAULT_MODEL.read_text())
    assert list(evidence.default_model().long) == packaged["long"]
    assert list(evidence.default_model().short) == packaged["short"]
    assert len(packaged["long"]) == len(packaged["short"]) == evidence.WIDTH
    assert evidence.model_of(Ranking()) == evidence.default_model()
    assert evidence.model_of(Ranking(combination="hand")) == evidence.Model()


def test_a_new_packaged_model_comes_with_new_ranking_rules() -> None:
    # Precomputed lists are used only under the ranking rules they were made by
    # (settings.RULES), and an index without a model of its own ranks with the packaged one:
    # a packaged model learned anew without a new RULES would leave old lists served. When
    # benchmarks/combination.py writes a new one, bump RULES and record both here.
    model = evidence.default_model()
    digest = hashlib.sha256(json.dumps([list(model.long), list(model.short)]).encode())
    assert (RULES, digest.hexdigest()[:16]) == (4, "65911ba2f90914a0")


@pytest.mark.parametrize("text", ["{", '{"long": [1], "short": []}', '{"long": 5}', "[]"])
def test_a_damaged_packaged_model_is_a_clear_error(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    damaged = tmp_path / "default_model.json"
    damaged.write_text(text)
    monkeypatch.setattr(evidence, "DEFAULT_MODEL", damaged)
    evidence.default_model.cache_clear()
    try:
        with pytest.raises(SettingsError, match=r"packaged model .* is damaged"):
            evidence.default_model()
    finally:
        evidence.default_model.cache_clear()


@pytest.mark.parametrize(
    "bad",
    [(1.0,) * 5, (math.nan,) * 12, (True,) * 12, ("0.1",) * 12, (1e9,) * 12, "abc"],
)
def test_bad_evidence_weights_are_refused(bad: object) -> None:
    with pytest.raises(SettingsError, match="evidence"):
        Ranking(evidence=bad)  # type: ignore[arg-type]


def test_a_learned_model_is_stored_and_read_back_with_the_settings() -> None:
    model = evidence.Model((0.1,) * 6, (0.0, 0.0, 0.2, 0.0, 0.0, 0.0))
    settings = Settings(ranking=Ranking(evidence=model.flat()))
    stored = json.loads(json.dumps(settings.to_dict()))  # as the manifest keeps it
    assert Settings.from_dict(stored) == settings
    assert "evidence" not in Ranking.names()  # not a query option
    assert "combination" in Ranking.names()


def _case(pool: Pool, relevant: set[int], ranking: Ranking) -> learn.Case:
    from recommender.read.pipeline import Gathered

    gathered = Gathered(np.arange(len(pool)), pool, -np.inf, 0.0)
    case = learn.case_of(gathered, ranking, Query(day=None), relevant)
    assert case is not None
    return case


def test_learning_raises_the_weight_of_the_evidence_that_tells_the_story() -> None:
    # The relevant candidates are those that share the most names with the query, not the
    # closest by topic: learning must count names more, and the lists must get better.
    ranking = Ranking(combination="hand", identity_weight=0.05, **OFF)
    cases = []
    for seed in range(12):
        pool = _pool(30, seed=seed)
        assert pool.identity is not None
        relevant = set(np.argsort(-pool.identity)[:4].tolist())
        cases.append(_case(pool, relevant, ranking))
    before = learn.mean_ndcg(cases, np.zeros(evidence.WIDTH))
    model = learn.fit_model(cases)
    after = learn.score_model(cases, model)
    assert after > before + 0.05
    assert model.long[2] + model.long[5] > 0  # names, to the query or through neighbours
    assert model.short == evidence.Model().short  # no headline query: kept as it was


def test_learning_never_turns_on_what_the_knobs_turn_off() -> None:
    ranking = Ranking(combination="hand", identity_weight=0.0, **OFF)
    cases = []
    for seed in range(6):
        pool = _pool(30, seed=seed)
        assert pool.identity is not None
        cases.append(_case(pool, set(np.argsort(-pool.identity)[:4].tolist()), ranking))
    model = learn.fit_model(cases)
    assert model.long[2] == 0.0 and model.long[5] == 0.0


def test_the_fast_score_is_the_engines_list() -> None:
    # learn.ndcg walks the same order as rank(): same similarity, calibration and copies.
    ranking = Ranking(combination="hand", **OFF)
    for seed in range(5):
        pool = _pool(25, seed=seed)
        relevant = {1, 3, 5, 7, 11}
        case = _case(pool, relevant, ranking)
        listing = rank(pool, ranking, Query(day=None), limit=10)
        listed = [int(g[0]) for g in listing.groups]
        gain = sum(1 / math.log2(i + 2) for i, row in enumerate(listed) if row in relevant)
        ideal = sum(1 / math.log2(i + 2) for i in range(len(relevant)))
        assert learn.ndcg(case, np.zeros(evidence.WIDTH)) == pytest.approx(gain / ideal)


def test_explain_takes_the_searched_list_apart(sample_rec: Recommender) -> None:
    listed = sample_rec.similar("a-1001", k=6, exclude=["\x00none"])
    explained = sample_rec.explain("a-1001", k=6)
    assert [e.id for e in explained] == [i.id for i in listed]
    for item, found in zip(listed, explained, strict=True):
        assert found.score == pytest.approx(item.score)
        assert sum(found.evidence.values()) == pytest.approx(found.similarity)
        assert sum(found.by_kind.values()) == pytest.approx(found.similarity)
        assert found.recency_factor == pytest.approx(item.recency_factor)
        assert found.title == item.title
    query = sample_rec.get("a-1001")
    asked = f"{query.title} {query.body}".lower()
    assert any(found.shared_names for found in explained)
    for found in explained:
        other = sample_rec.get(found.id)
        text = f"{other.title} {other.body}".lower()
        assert all(name in asked and name in text for name in found.shared_names)
        assert found.evidence["names"] > 0 or not found.shared_names
    by_hand = sample_rec.explain("a-1001", k=3, combination="hand", identity_weight=0.0)
    assert all(e.evidence["names"] == 0 and e.combination == "hand" for e in by_hand)


def test_query_copies_are_never_explained(sample_rec: Recommender) -> None:
    ids = {e.id for e in sample_rec.explain("a-1004", k=10)}
    assert "a-1004" not in ids and "a-1005" not in ids  # a-1005 is a copy of a-1004
