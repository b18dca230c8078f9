"""Names (names.py): which words of a build are names, how they are stored, and an index
without them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, article

from recommender import Recommender
from recommender.lexical import TermVector, lexical_text, stack
from recommender.names import (
    FIGURE,
    NO_NAME,
    WORD,
    kinds_of,
    names_of,
    proper_terms,
    rows_names,
)
from recommender.storage.layout import ARTICLES, CURRENT
from recommender.write import compaction
from recommender.write.lexicon import fit


def found(texts: list[str], languages: list[str | None] | None = None) -> set[str]:
    lexicon, _ = fit(texts, 1, 1, languages=languages)
    return {lexicon.terms[i] for i in proper_terms(lexicon, texts, languages)}


def test_a_word_capitalised_inside_sentences_is_a_name() -> None:
    names = found(
        [
            "Rescue teams reached Corvena on the second day.",
            "The quake left Corvena without power, officials in Valdoria said.",
        ]
    )
    assert {"corvena", "valdoria"} <= names
    assert not {"rescue", "teams", "quake", "officials", "power"} & names


def test_a_word_capitalised_only_where_sentences_start_is_no_name() -> None:
    names = found(["Strong winds hit the coast. Strong rain followed.", "Rain fell on Corvena."])
    assert "strong" not in names and "rain" not in names and "corvena" in names


def test_a_word_written_in_lower_case_as_often_is_no_name() -> None:
    names = found(["The Bank raised rates.", "A bank in the north closed.", "Another bank."])
    assert "bank" not in names


def test_title_case_headlines_say_nothing_of_their_words() -> None:
    title = "Strong Earthquake Jolts Northern Valdoria Before Dawn"
    names = found([lexical_text(title, "The quake struck near Corvena in Valdoria at night.")])
    assert "valdoria" in names and "corvena" in names
    assert not {"strong", "earthquake", "jolts", "northern", "dawn"} & names


def test_numbers_of_two_digits_or_more_are_names() -> None:
    names = found(["the toll rose to 120 by 2026, 7 days on", "in 2026 the toll was 9"])
    assert {"120", "2026"} <= names and "days" not in names


def test_scripts_without_case_have_numbers_only() -> None:
    texts = ["ضرب زلزال قوي شمال البلاد عام 2026", "قال مسؤولون إن الزلزال 2026 كان قويا"]
    assert found(texts, ["ar", "ar"]) == {"2026"}
    chinese = ["北部地区发生强烈地震 2026", "救援队抵达灾区 2026"]
    assert found(chinese, ["zh", "zh"]) == {"2026"}


def test_the_turkish_dotted_capital_is_a_capital() -> None:
    texts = ["Deprem sonrası İstanbul sarsıldı.", "Uzmanlar İstanbul için uyardı."]
    assert "istanbul" in found(texts, ["tr", "tr"])
    # In Turkish the capital I lower-cases to the dotless i (U+0131), as the lexicon has it.
    assert "ığdır" in found(["Deprem sonrası Iğdır sarsıldı.", "ve Iğdır da"], ["tr", "tr"])


def test_names_of_an_article_are_its_words_and_figures_each_of_length_1() -> None:
    # Terms 1 and 3 are word names, 4 a figure; 0 and 2 are no names.
    kinds = kinds_of(np.array([1, 3, 4], np.int32), np.array([False, False, True]), 5)
    assert kinds.tolist() == [NO_NAME, WORD, NO_NAME, WORD, FIGURE]
    outside = kinds_of(np.array([1, 7], np.int32), np.array([False, True]), 5)
    assert outside.tolist() == [NO_NAME, WORD, NO_NAME, NO_NAME, NO_NAME]  # 7: not a term
    vector = TermVector(
        np.array([0, 1, 3, 4], np.int32), np.array([0.5, 0.36, 0.48, 0.2], np.float32)
    )
    names = names_of(vector, kinds)
    assert names.terms.tolist() == [1, 3, 4]
    assert names.weights.tolist() == pytest.approx([0.6, 0.8, 1.0])
    # The dot product of two articles' names: their words' cosine plus their figures'.
    other = names_of(TermVector(np.array([1, 4], np.int32), np.ones(2, np.float32)), kinds)
    assert float(names.weights[[0, 2]] @ other.weights) == pytest.approx(0.6 + 1.0)
    assert len(names_of(vector, kinds_of(np.empty(0, np.int32), np.empty(0, bool), 5)).terms) == 0
    assert (
        len(names_of(TermVector(np.array([0], np.int32), np.ones(1, np.float32)), kinds).terms) == 0
    )
    rows = rows_names(stack([vector, TermVector.empty(), vector], 5), kinds)
    dense = rows.toarray()
    assert dense[0].tolist() == pytest.approx([0, 0.6, 0, 0.8, 1.0])
    assert dense[1].tolist() == [0.0] * 5 and dense[2].tolist() == dense[0].tolist()


def _names(rec: Recommender) -> set[str]:
    snapshot = rec.snapshot
    terms = snapshot.lexicon().terms
    kinds = {terms[i]: int(snapshot.names[i]) for i in np.flatnonzero(snapshot.names)}
    assert all((kind == FIGURE) == term.isdigit() for term, kind in kinds.items())
    return set(kinds)


def test_a_build_stores_its_names_and_compaction_keeps_them(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        names = _names(rec)
        assert {"valdoria", "corvena", "ostmark"} <= names
        assert not {"earthquake", "quake", "rescue", "strong"} & names
        rec.add([article("n1", "Aftershock rattles Corvena", body="Corvena in Valdoria shook.")])
        snapshot = rec.snapshot
        added = names_of(snapshot.terms(snapshot.row("n1")), snapshot.names)
        terms = snapshot.lexicon().terms
        assert {terms[i] for i in added.terms} == {"corvena", "valdoria"}
        monkeypatch.setattr(compaction, "COMPACT_MIN_ROWS", 10)
        assert rec.remove([i for i in rec.ids() if i.startswith("a-1")][:90]).compacted
        assert _names(rec) == names
    report = Recommender.check(sample_index)
    assert report.sound and not any("names" in note for note in report.notes)


def test_a_replica_holds_the_names(sample_index: Path, tmp_path: Path) -> None:
    Recommender.replicate(sample_index, tmp_path / "replica")
    with (
        Recommender.open(sample_index) as source,
        Recommender.open(tmp_path / "replica") as replica,
    ):
        assert source.snapshot.names.any()
        assert np.array_equal(replica.snapshot.names, source.snapshot.names)
        assert replica.similar("a-1001", k=5, identity_weight=0.5) == source.similar(
            "a-1001", k=5, identity_weight=0.5
        )


def test_identity_moves_the_lists(sample_rec: Recommender) -> None:
    off = [i.id for i in sample_rec.similar("a-1001", k=10, identity_weight=0.0)]
    on = [i.id for i in sample_rec.similar("a-1001", k=10, identity_weight=1.0)]
    assert off != on
    # A draft's names come from its TF-IDF terms, weighed with the build's lexicon.
    text = "Aftershock in Corvena: Ardesse institute counts 40 tremors in Valdoria"
    drafts = [sample_rec.similar_to_text(text, k=10, identity_weight=w) for w in (0.0, 1.0)]
    assert [i.id for i in drafts[0]] != [i.id for i in drafts[1]]


def test_an_index_built_before_names_has_none_and_ranks_as_without_them(
    sample_index: Path,
) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        before = {q: rec.similar(q, k=8, identity_weight=0.0) for q in ("a-1001", "a-4003")}
    version = sample_index / (sample_index / CURRENT).read_text().strip()
    with sqlite3.connect(version / ARTICLES) as db:
        db.execute("DROP TABLE names")
    db.close()
    report = Recommender.check(sample_index)
    assert report.sound and any("no names stored" in note for note in report.notes)
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        assert not rec.snapshot.names.any()
        for query, listed in before.items():
            # Searched (another ranking than the stored lists'): identity counts 0 at any weight.
            assert rec.similar(query, k=8, identity_weight=0.5) == listed
        assert rec.similar_to_text("Aftershock rattles Corvena", k=3)
        rec.add([article("n1", "Aftershock rattles Corvena", body="Corvena in Valdoria shook.")])
        assert rec.similar("n1", k=3)


def test_a_name_outside_the_lexicon_is_a_problem_check_names(sample_index: Path) -> None:
    version = sample_index / (sample_index / CURRENT).read_text().strip()
    with sqlite3.connect(version / ARTICLES) as db:
        db.execute("UPDATE names SET id = 1000000 WHERE id = (SELECT max(id) FROM names)")
    db.close()
    report = Recommender.check(sample_index)
    assert not report.sound
    assert "1 names are not terms of the lexicon; build the index again" in report.problems
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:  # still answers
        assert rec.snapshot.names.any() and rec.similar("a-1001", k=3)
