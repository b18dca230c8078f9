"""Shared fixtures: a deterministic fake encoder and small indexes built with it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest

from recommender import ENGLISH_MODEL, MULTILINGUAL_MODEL, Article, Recommender, Settings
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


def copy_index(source: Path, target: Path) -> Path:
    """A copy of the index folder ``source`` at ``target``: CURRENT, LOCK and every version
    folder, with their files' modes and times (segments stay read-only), links as links."""
    shutil.copytree(source, target, symlinks=True)
    return target


def _fingerprint(folder: Path) -> list[tuple[str, int, int]]:
    """Each file under ``folder``: its relative name, mode and CRC-32 of its bytes."""
    return [
        (str(path.relative_to(folder)), path.lstat().st_mode, zlib.crc32(path.read_bytes()))
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    ]


class SampleBuilds:
    """The bundled sample indexed with the fake encoder, once per session for each settings
    asked for (``settings`` None: the defaults). These folders are the originals the copies are
    made from: tests never open them, they take a copy (``sample_index``, ``sample_copy`` or
    ``copy_index``). Each copy first checks that its original is as built."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._built: dict[str, tuple[Path, list[tuple[str, int, int]]]] = {}

    def __call__(self, settings: Settings | None = None) -> Path:
        key = json.dumps((settings or Settings()).to_dict(), sort_keys=True)
        if key not in self._built:
            path = self._folder / f"sample-{len(self._built)}"
            Recommender.build_from_files([SAMPLE], path, encoder=FakeEncoder(), settings=settings)
            self._built[key] = (path, _fingerprint(path))
        path, fingerprint = self._built[key]
        assert _fingerprint(path) == fingerprint, (
            f"the session's sample index {path} was changed by a test: write into a copy"
        )
        return path

    def copy(self, target: Path, settings: Settings | None = None) -> Path:
        """A fresh copy at ``target`` of the sample built with ``settings``."""
        return copy_index(self(settings), target)


@pytest.fixture(scope="session")
def sample_builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleBuilds]:
    builds = SampleBuilds(tmp_path_factory.mktemp("sample-builds"))
    yield builds
    for path, fingerprint in builds._built.values():
        assert _fingerprint(path) == fingerprint, f"a test changed the session's index {path}"


@pytest.fixture
def sample_index(sample_builds: SampleBuilds, tmp_path: Path) -> Path:
    """The bundled sample, indexed with the fake encoder (once per session): a fresh copy
    that the test may change."""
    return sample_builds.copy(tmp_path / "sample-index")


class SampleCopy(Protocol):
    def __call__(self, settings: Settings | None = None, *, name: str = ...) -> Path: ...


@pytest.fixture
def sample_copy(sample_builds: SampleBuilds, tmp_path: Path) -> SampleCopy:
    """Makes fresh copies in ``tmp_path`` of the sample built (once per session) with the
    settings given: ``sample_copy(Settings(precomputed_k=0), name="searched")``."""

    def copy(settings: Settings | None = None, *, name: str = "sample-index") -> Path:
        return sample_builds.copy(tmp_path / name, settings)

    return copy


@pytest.fixture
def sample_rec(sample_index: Path) -> Iterator[Recommender]:
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
