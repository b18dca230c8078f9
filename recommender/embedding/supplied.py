"""Embeddings computed elsewhere: read, checked, and matched to the articles they are for.

A job outside the engine (a GPU batch, a vector store) may embed the articles itself; the
index then stores its vectors instead of embedding them again. What it supplies, per article:
``id``, ``content_hash`` (``recommender.article_content_hash`` of the article, so that a
vector of an older text is never stored for a newer one), ``model`` (the name the index uses)
and ``vector``. As

- Parquet: one file, or a folder of ``*.parquet`` shards, with those four columns (``vector``
  a list of floats);
- NumPy: an ``.npz`` holding the arrays ``id``, ``content_hash``, ``model`` and ``vector``
  (one row each; ``model`` may be one name for all), or an ``.npy`` structured array with
  those four fields. Read without pickle.

Vectors are scaled to length 1 (by their largest value first, so that huge and tiny ones do
not overflow). A file for another model or dimension, a vector that is zero or not finite, an
id given more than one row, a row for an article that is not being written, or a file that
cannot be read is refused whole (``SuppliedVectorsError``, naming the file and the value at
fault, with counts and examples); a row whose content hash is not the article's (a stale
vector) is left out and the article embedded here, counted in the report.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..articles import Article
from ..errors import InputFileError
from ..text import content_hash, embedding_text

#: What ``recommend embed`` writes beside its shards (model, counts, shard names): a folder
#: holding one is read as the shards it names.
SUMMARY = "embed.json"
COLUMNS = ("id", "content_hash", "model", "vector")
#: What a build or an update does with articles the supplied vectors do not cover (no row, or
#: a stale one): embed them here, or refuse the whole write.
MissingVectors = Literal["embed", "refuse"]


class SuppliedVectorsError(InputFileError):
    """A file of supplied vectors is refused (unreadable, another model or dimension, a row
    for an article that is not being written)."""


def article_content_hash(article: Article, max_body_chars: int = 1000) -> str:
    """The content hash an index keeps for ``article``: a fingerprint of the text it embeds
    (the title, then the body cut to ``max_body_chars``, the index's setting). A job that
    supplies vectors computes it to say which text each vector is for."""
    return content_hash(embedding_text(article.title, article.body, max_body_chars))


@dataclass(frozen=True)
class SuppliedVectors:
    """The rows of a supplied file: ids, content hashes, one model, unit float32 vectors."""

    path: Path
    model: str
    ids: list[str]
    hashes: list[str]
    vectors: np.ndarray

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])


@dataclass(frozen=True)
class Matched:
    """Supplied vectors for some of the articles being written."""

    path: Path  # the file or folder they were read from
    vectors: dict[int, np.ndarray]  # position among the articles -> vector
    stale_at: frozenset[int]  # positions whose row was made from another text

    @property
    def stale(self) -> int:
        """Rows for an article whose text changed since: embedded here instead (or refused)."""
        return len(self.stale_at)


def _refuse(path: Path, why: str) -> SuppliedVectorsError:
    return SuppliedVectorsError(f"vectors file {path}: {why}; nothing was written")


def read_vectors(path: str | Path) -> SuppliedVectors:
    """Read a file (or folder of Parquet shards) of supplied vectors; SuppliedVectorsError
    if it cannot be read, lacks a column, mixes models, gives an id more than one row, or
    holds vectors that are not finite, zero or of different lengths. Vectors come back scaled
    to length 1."""
    path = Path(path)
    if not path.exists():
        raise _refuse(path, "no such file or folder")
    try:
        if path.is_dir() or path.suffix == ".parquet":
            columns = _read_parquet(path)
        elif path.suffix in (".npz", ".npy"):
            columns = _read_numpy(path)
        else:
            raise _refuse(path, "unknown format (give .parquet, a folder of them, .npz or .npy)")
    except SuppliedVectorsError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise _refuse(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
    ids, hashes, models, blocks = columns
    models = sorted(set(models))
    if len(models) > 1:
        raise _refuse(path, f"holds vectors of several models ({', '.join(models[:3])})")
    if any(block.ndim != 2 or (len(block) and block.shape[1] == 0) for block in blocks):
        raise _refuse(path, "its vectors are not of one length")
    if not len(ids):
        raise _refuse(path, "holds no vectors")
    repeated = _repeated(ids)
    if repeated:
        raise _refuse(path, repeated)
    scaled = [unit_vectors(block) for block in blocks]
    not_finite = np.concatenate([bad for _, bad, _ in scaled])
    zero = np.concatenate([bad for _, _, bad in scaled])
    if not_finite.any() or zero.any():
        raise _refuse(path, _not_scalable(ids, not_finite, zero))
    return SuppliedVectors(
        path=path,
        model=models[0],
        ids=ids,
        hashes=hashes,
        vectors=np.concatenate([unit for unit, _, _ in scaled]),
    )


def _repeated(ids: Sequence[str], shown: int = 3) -> str | None:
    """The refusal of ids given more than one row (counts and examples), or None. Unlike an
    article given twice, where the later record is the newer text, the order of rows says
    nothing about which vector is right (a folder is read in name order), so none is chosen."""
    counts = Counter(ids)
    if len(counts) == len(ids):
        return None
    repeated = [(i, n) for i, n in counts.items() if n > 1]
    ids_part = "1 id has" if len(repeated) == 1 else f"{len(repeated)} ids have"
    listed = _listed([f"{i[:80]!r} {n} rows" for i, n in repeated[: shown + 1]], shown)
    return (
        f"{ids_part} more than one row, {sum(n for _, n in repeated)} rows in all (e.g. "
        f"{listed}); give each article one vector"
    )


#: Rows scaled at a time: bounds the temporary arrays of a large file.
_CHUNK_ROWS = 65536


def unit_vectors(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``vectors`` (rows of float32 or float64) scaled to length 1, as float32, and the masks
    of the rows that cannot be: not finite (a NaN or an infinity in it) and zero (those rows
    are zero in the result). Each row is first divided by its largest magnitude, so that no
    square overflows or underflows: a unit vector times 1e30, or 1e-30, is that unit vector,
    never a zero one, and numpy has nothing to warn about."""
    unit = np.zeros(vectors.shape, dtype=np.float32)
    not_finite = np.zeros(len(vectors), dtype=bool)
    zero = np.zeros(len(vectors), dtype=bool)
    for start in range(0, len(vectors), _CHUNK_ROWS):
        rows = vectors[start : start + _CHUNK_ROWS]
        finite = np.isfinite(rows).all(axis=1)
        rows = np.where(finite[:, None], rows, 0)
        largest = np.abs(rows).max(axis=1)
        usable = largest > 0
        rows = rows / np.where(usable, largest, 1)[:, None]  # within [-1, 1]
        norms = np.linalg.norm(rows, axis=1)  # from 1 to sqrt(dimension) where usable
        unit[start : start + len(rows)] = rows / np.where(usable, norms, 1)[:, None]
        not_finite[start : start + len(rows)] = ~finite
        zero[start : start + len(rows)] = finite & ~usable
    return unit, not_finite, zero


def _not_scalable(ids: Sequence[str], not_finite: np.ndarray, zero: np.ndarray) -> str:
    """The refusal of vectors that cannot be scaled to length 1: counts, and examples."""
    parts = []
    for mask, what in ((not_finite, "not finite (NaN or infinity; "), (zero, "zero (")):
        found = [ids[int(i)] for i in np.flatnonzero(mask)]
        if found:
            verb = "is" if len(found) == 1 else "are"
            parts.append(f"{len(found)} {verb} {what}{_examples(found)})")
    total = int(not_finite.sum() + zero.sum())
    vectors = "1 vector" if total == 1 else f"{total} vectors"
    return f"{vectors} cannot be scaled to length 1: {' and '.join(parts)}"


def _floats(values: np.ndarray, path: Path) -> np.ndarray:
    """Vector values as read: float32, or float64 where the file holds doubles (a value beyond
    float32's range still scales to a unit vector); integers and booleans as float64."""
    values = np.asarray(values)
    if values.dtype in (np.float32, np.float64):
        return values
    if values.dtype.kind not in "fiub":
        raise _refuse(path, f"its vectors are not real numbers ({values.dtype})")
    return values.astype(np.float64)


def _parquet_files(folder: Path) -> list[Path]:
    """The shards of a folder: those its ``embed.json`` names when ``recommend embed`` wrote
    one (the folder may hold Parquet files of the user's too), else every ``*.parquet``."""
    summary = folder / SUMMARY
    try:
        listed = json.loads(summary.read_bytes()) if summary.is_file() else None
    except (OSError, ValueError):
        listed = None
    names = listed.get("shards") if isinstance(listed, dict) else None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        return sorted(folder.glob("*.parquet"))
    files = [folder / Path(name).name for name in names]
    missing = [file.name for file in files if not file.is_file()]
    if missing:
        raise _refuse(
            folder,
            f"its {SUMMARY} names {len(missing)} shards that are not there "
            f"({_listed(missing)}); run recommend embed again to finish them",
        )
    return files


def _read_parquet(path: Path) -> tuple[list[str], list[str], list[str], list[np.ndarray]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - a declared dependency
        raise _refuse(path, "reading Parquet needs pyarrow (pip install pyarrow)") from None
    files = _parquet_files(path) if path.is_dir() else [path]
    if not files:
        raise _refuse(path, "the folder holds no .parquet files")
    ids: list[str] = []
    hashes: list[str] = []
    models: list[str] = []
    blocks = []
    for file in files:
        try:
            table = pq.read_table(file, columns=list(COLUMNS))
        except Exception as exc:  # pyarrow's own errors: damaged file, missing column
            raise _refuse(file, f"cannot be read ({type(exc).__name__}: {exc})") from None
        for name in ("id", "content_hash", "model"):
            missing = table.column(name).null_count
            if missing:  # str(None) would be the id "None"
                raise _refuse(file, f"{missing} rows have no {name} (null)")
        ids += [str(v) for v in table.column("id").to_pylist()]
        hashes += [str(v) for v in table.column("content_hash").to_pylist()]
        models += table.column("model").unique().to_pylist()
        column = table.column("vector").combine_chunks()
        values = _floats(column.flatten().to_numpy(zero_copy_only=False), file)
        lengths = np.diff(np.asarray(column.offsets)) if hasattr(column, "offsets") else None
        width = int(lengths[0]) if lengths is not None and len(lengths) else column.type.list_size
        if lengths is not None and (lengths != width).any():
            raise _refuse(file, "its vectors are not of one length")
        if column.null_count:
            raise _refuse(file, "a vector is missing (null)")
        blocks.append(values.reshape(len(table), width))
    widths = {block.shape[1] for block in blocks}
    if len(widths) > 1:
        raise _refuse(path, f"its shards hold vectors of lengths {sorted(widths)}")
    return ids, hashes, [str(m) for m in models], blocks


def _read_numpy(path: Path) -> tuple[list[str], list[str], list[str], list[np.ndarray]]:
    data: Any = np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with data:
            missing = [name for name in COLUMNS if name not in data.files]
            if missing:
                raise _refuse(path, f"has no array {missing[0]!r} (it needs {', '.join(COLUMNS)})")
            ids, hashes, model, vectors = (data[name] for name in COLUMNS)
    else:
        names = data.dtype.names or ()
        missing = [name for name in COLUMNS if name not in names]
        if missing:
            raise _refuse(path, f"has no field {missing[0]!r} (it needs {', '.join(COLUMNS)})")
        ids, hashes, model, vectors = (data[name] for name in COLUMNS)
    count = len(ids)
    models = [str(model)] if np.ndim(model) == 0 else [str(m) for m in np.unique(model)]
    if (np.ndim(model) and len(model) != count) or len(hashes) != count or len(vectors) != count:
        raise _refuse(path, "its arrays differ in length")
    return (
        [str(v) for v in ids],
        [str(v) for v in hashes],
        models,
        [_floats(vectors, path)],
    )


def check_model(supplied: SuppliedVectors, model: str, dimension: int | None, where: str) -> None:
    """SuppliedVectorsError unless the vectors are ``model``'s, of ``dimension`` (if known)."""
    if supplied.model != model:
        raise _refuse(
            supplied.path,
            f"its vectors are of model {supplied.model!r}, {where} uses {model!r}",
        )
    if dimension is not None and supplied.dimension != dimension:
        raise _refuse(
            supplied.path,
            f"its vectors have dimension {supplied.dimension}, {where} holds {dimension}",
        )


def check_dimension(supplied: SuppliedVectors, model: str, dimension: int | None) -> None:
    """SuppliedVectorsError unless the vectors are of ``dimension``, the length of ``model``'s
    vectors (None: not known here, not checked)."""
    if dimension is not None and supplied.dimension != dimension:
        raise _refuse(
            supplied.path,
            f"its {len(supplied.ids)} vectors have dimension {supplied.dimension}, model "
            f"{model!r} gives {dimension}",
        )


def match(supplied: SuppliedVectors, articles: Sequence[Article], hashes: Sequence[str]) -> Matched:
    """The supplied vector of each article whose text it was made from (same content hash).

    SuppliedVectorsError for a row whose id is not among ``articles``; a row with another
    hash is stale and left out (the article is embedded here). Ids are unique in a file
    (``read_vectors`` refuses one that repeats an id); should one repeat, the last row counts.
    """
    position = {article.id: i for i, article in enumerate(articles)}
    found: dict[int, np.ndarray] = {}
    stale: set[int] = set()
    for row, (article_id, text_hash) in enumerate(zip(supplied.ids, supplied.hashes, strict=True)):
        at = position.get(article_id)
        if at is None:
            raise _refuse(
                supplied.path,
                f"it holds a vector for article {article_id!r}, which is not among the "
                "articles being written",
            )
        if text_hash == hashes[at]:
            found[at] = supplied.vectors[row]
            stale.discard(at)
        else:
            found.pop(at, None)
            stale.add(at)
    return Matched(path=supplied.path, vectors=found, stale_at=frozenset(stale))


def without_vector(positions: Sequence[int], matched: Matched) -> int:
    """How many of ``positions`` (articles to embed here) have no supplied row at all (the
    rest have a stale one)."""
    return sum(1 for i in positions if i not in matched.stale_at)


def refuse_unsupplied(
    matched: Matched, articles: Sequence[Article], positions: Sequence[int]
) -> None:
    """SuppliedVectorsError if any article at ``positions`` would have to be embedded here:
    what ``missing_vectors="refuse"`` asks for. The message counts those without a row and
    those with a stale one, with examples of each."""
    if not positions:
        return
    absent = [articles[i].id for i in positions if i not in matched.stale_at]
    stale = [articles[i].id for i in positions if i in matched.stale_at]
    parts = []
    if absent:
        parts.append(f"{len(absent)} have no vector in it ({_examples(absent)})")
    if stale:
        parts.append(f"{len(stale)} have a stale one, made from an older text ({_examples(stale)})")
    raise _refuse(
        matched.path,
        f"{len(positions)} articles would have to be embedded here: {' and '.join(parts)}. "
        "Embed them (recommend embed) or let this machine do it (--missing-vectors embed)",
    )


def _examples(ids: Sequence[str], shown: int = 3) -> str:
    return "e.g. " + _listed([repr(i[:80]) for i in ids[: shown + 1]], shown)


def _listed(items: Sequence[str], shown: int = 3) -> str:
    """The first ``shown`` of ``items``, then ``...`` when there are more."""
    return ", ".join(items[:shown]) + (", ..." if len(items) > shown else "")
