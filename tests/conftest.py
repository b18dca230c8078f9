"""Shared fixtures: a deterministic fake encoder and small indexes built with it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from recommender import ENGLISH_MODEL, MULTILINGUAL_MODEL, Article, Recommender
from recommender.articles import parse_datetime
from recommender.embedding.encode import register_encoder

SAMPLE = Path(__file__).resolve().parent.parent / "recommender" / "sample" / "articles.jsonl"
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


class FakeEncoder:
    """Bag of hashed words: texts sharing words get similar vectors. No model, no torch."""

    def __init__(self, dimension: int = 256, name: str = "fake-bag-of-words") -> None:
        self._dimension = dimension
        self._name = name
        self.calls = 0
        self.texts_encoded = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest, "little") % self._dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def article(
    article_id: str,
    title: str,
    *,
    body: str = "",
    category: str | None = None,
    published_at: str | None = None,
    url: str | None = None,
) -> Article:
    return Article(
        id=article_id,
        title=title,
        body=body,
        category=category,
        published_at=parse_datetime(published_at),
        url=url,
    )


def sample_records() -> list[dict[str, object]]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def sample_index(tmp_path: Path) -> Path:
    """The bundled sample, indexed with the fake encoder."""
    path = tmp_path / "sample-index"
    Recommender.build_from_files([SAMPLE], path, encoder=FakeEncoder())
    return path


@pytest.fixture
def sample_rec(sample_index: Path) -> Recommender:
    rec = Recommender.open(sample_index, encoder=FakeEncoder())
    yield rec
    rec.close()


@pytest.fixture
def fake_default_model() -> Iterator[None]:
    """The models the default ("auto") can choose, made by the fake encoder."""
    for name in (ENGLISH_MODEL, MULTILINGUAL_MODEL):
        register_encoder(name, lambda name=name: FakeEncoder(name=name))  # type: ignore[misc]
    yield
    for name in (ENGLISH_MODEL, MULTILINGUAL_MODEL):
        register_encoder(name, None)
