"""Hostile review of the third hardening pass (issue 23): what a killed writer leaves, drafts a
model answers with NaN for, and other inputs the fixes did not think of."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, article
from fastapi import FastAPI
from fastapi.testclient import TestClient

from recommender import Recommender
from recommender.errors import ModelError
from recommender.http.app import create_app
from recommender.http.options import ServeOptions


def _version(index: Path) -> Path:
    return index / (index / "CURRENT").read_text().strip()


def test_the_next_write_deletes_what_a_killed_writer_was_writing(sample_index: Path) -> None:
    """A writer killed in ``write_mapped`` (an image) or ``replace_manifest`` leaves its
    temporary file; the next write deletes it, and nothing of the user's."""
    version = _version(sample_index)
    left = [
        version / ".image-000000000001.bin.4242",
        version / ".precomputed-000000000001.bin.4242",
        version / ".manifest.json.0123abcd",
    ]
    for path in left:
        path.write_bytes(b"x" * 100)
    mine = [version / ".image-notes.txt", version / ".manifest.json.bak"]
    for path in mine:
        path.write_bytes(b"mine")
    rec = Recommender.open(sample_index, encoder=FakeEncoder())
    try:
        rec.add([article("new-1", "Rescue teams reach Corvena")])
    finally:
        rec.close()
    assert [path.name for path in left if path.exists()] == []
    assert all(path.read_bytes() == b"mine" for path in mine)


class _NaNForPoison(FakeEncoder):
    """The fake encoder, but NaN for any text holding "poison" (a model that breaks on some
    input)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = super().encode(texts)
        for row, text in enumerate(texts):
            if "poison" in text:
                out[row] = np.nan
        return out


def test_a_draft_the_model_gives_nan_for_is_an_error_not_an_empty_list(
    sample_index: Path,
) -> None:
    """A NaN vector makes every score NaN: the draft was answered with an empty list, as if
    nothing were related, instead of the model's failure (refused for articles since #23)."""
    rec = Recommender.open(sample_index, encoder=_NaNForPoison())
    try:
        assert rec.similar_to_text("Earthquake in Corvena", 3)
        with pytest.raises(ModelError, match="not finite"):
            rec.similar_to_text("Earthquake poison in Corvena", 3)
    finally:
        rec.close()
    app = create_app(sample_index, encoder=_NaNForPoison())
    with TestClient(app) as client:
        answer = client.post("/similar", json={"text": "Earthquake poison in Corvena"})
    assert answer.status_code == 503, answer.text
    assert "not finite" in answer.json()["error"]


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/similar", {"text": "quake", "categories": ["n" * 1_000_000]}),
        ("POST", "/similar", {"text": "quake", "since": "x" * 1_000_000}),
        ("POST", "/similar", {"text": "q", "published_at": "2020-01-01T00:00:00" + "0" * 10**6}),
        ("PUT", "/articles", [{"id": "q" * 1_000_000 + "\n", "title": "t"}]),
        ("PUT", "/articles", [{"id": "ok", "title": "t", "published_at": "z" * 1_000_000}]),
    ],
)
def test_an_error_quotes_a_huge_value_cut_short(
    sample_index: Path, method: str, url: str, body: object
) -> None:
    """A value of 1 MB that is refused was quoted whole in the error: a 1 to 2 MB answer (and
    in a file, an error line as long as the value)."""
    app = create_app(sample_index, encoder=FakeEncoder(), options=ServeOptions(token="t"))
    with TestClient(app) as client:
        answer = client.request(method, url, json=body, headers={"Authorization": "Bearer t"})
    assert answer.status_code == 422, answer.text[:300]
    assert len(answer.content) < 2_000, answer.text[:300]
    assert "(1,000,0" in answer.json()["error"]  # how long the value was


def test_an_encoded_slash_stays_in_the_id_under_a_root_path(sample_index: Path) -> None:
    """A server (or test client) that gives a ``root_path`` but leaves it out of ``path``
    made IdPaths step aside: ``a-1001%2Fsimilar`` was answered with ``a-1001``'s list again.
    Mounted under a prefix it held, and still does."""
    app = create_app(sample_index, encoder=FakeEncoder())
    with TestClient(app, root_path="/api") as client:
        answer = client.get("/articles/a-1001%2Fsimilar")
        assert answer.status_code == 404, answer.text[:200]
        assert "'a-1001/similar'" in answer.json()["error"]
        assert client.get("/articles/a-1001/similar?k=1").status_code == 200
    outer = FastAPI()
    outer.mount("/rec", create_app(sample_index, encoder=FakeEncoder()))
    with TestClient(outer) as client:
        answer = client.get("/rec/articles/a-1001%2Fsimilar")
        assert answer.status_code == 404, answer.text[:200]
        assert client.get("/rec/articles/a-1001/similar?k=1").status_code == 200
