"""``recommend embed``: the embeddings of an archive, as Parquet shards an index is built from.

Embedding is the one cost that outgrows a machine (all-MiniLM-L6-v2 embeds a few hundred
headlines or a few dozen full articles a second per CPU), so it can run on a Ray cluster while
the index is written on one machine from what it made (``build-index --vectors DIR``).

The articles are read exactly as ``build-index`` reads them (same validation, field mapping,
embedded text and content hash), deduplicated the same way, and cut into shards of
``shard_size`` in file order. Each shard becomes one file ``shard-NNNNN-DIGEST.parquet`` with
the columns of ``supplied`` (id, content_hash, model, vector), written to a temporary name and
renamed once complete. The digest covers the model, the body cut and every (id, content hash)
of the shard, so a rerun over the same files finds its finished shards by name and embeds
only the rest; shards of another run (other files, model or cut) are deleted first. A folder
of shards is therefore always one run's work, finished or not.

The folder may hold the user's files too, so a file is deleted or replaced only when this
module can show it wrote it: a shard named in its own ``embed.json``, or a plain file with a
shard's exact name (``shard-NNNNN-`` and 16 hex digits) that is a Parquet file of the four
columns, or one of its temporary files by exact name. Symbolic links and folders are never
deleted, and nothing is written through one. Anything else where this module must write (an
``embed.json`` that is not its summary, a file of the user's at a shard's name) stops the job
before it changes anything.

Two runners, one output: in this process (``ray=None``), or as a Ray Data job
(``map_batches`` over a pool of actors, each loading the model once; one shard per task, so a
failed or lost shard is retried by Ray on another actor). Ray is an optional extra
(``pip install "recommender[cluster]"``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..articles import Article, read_valid
from ..errors import InputFileError, RecommenderError
from ..storage.files import fsync_dir
from ..text import content_hash, embedding_text
from .encode import Encoder, ProgressFn, encode_all, load_encoder, model_for
from .supplied import COLUMNS, SUMMARY

logger = logging.getLogger(__name__)

#: Articles per shard by default: a minute or so of one CPU on full articles, so that a lost
#: shard costs little, and few enough files for a million-article archive (1,000 shards).
SHARD_SIZE = 1000
# SUMMARY (embed.json): what a finished run writes beside its shards; for people, for the next
# run, which deletes only shards it can show are its own, and for build-index --vectors.
_LOCK = ".embed-lock"
#: The exact names this module gives its files (see the module docstring): nothing else in the
#: output folder is ever deleted or replaced.
_SHARD_NAME = re.compile(r"shard-[0-9]{5,}-[0-9a-f]{16}\.parquet")
_SHARD_TEMPORARY = re.compile(r"\.shard-[0-9]{5,}-[0-9a-f]{16}\.parquet\.tmp")
_SUMMARY_TEMPORARY = f".{SUMMARY}.tmp"
#: How ``embed.json`` says it is this module's; one written before it said so has these keys.
_WRITTEN_BY = "recommender embed"
_OLDER_SUMMARY_KEYS = {"model", "model_choice", "dimension", "max_body_chars", "articles", "shards"}
#: Object store of a Ray instance started with ray="local": vectors and texts of a few
#: shards in flight at a time need far less than Ray's default (30% of memory).
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2

EncoderFactory = Callable[[], Encoder]


class EmbedError(RecommenderError):
    """The embedding job cannot run (output folder, Ray missing or unreachable, a worker
    that keeps failing)."""


@dataclass(frozen=True)
class Shard:
    """One unit of work and one output file: consecutive articles of the input."""

    number: int
    ids: tuple[str, ...]
    hashes: tuple[str, ...]
    texts: tuple[str, ...]
    name: str  # its file name, which says what it holds (see module docstring)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class EmbedReport:
    """The outcome of an embedding job."""

    out: str
    model: str
    model_choice: str
    runner: str  # "this process" or "ray <address>"
    articles: int
    records: int
    skipped: int
    duplicates: int
    shards: int
    shards_done_before: int  # finished by an earlier run over the same articles: kept
    embedded: int  # articles embedded by this run
    dimension: int | None  # None when nothing was embedded and no shard read
    seconds: float

    @property
    def articles_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def plan_shards(
    articles: Sequence[Article], *, model: str, max_body_chars: int, shard_size: int = SHARD_SIZE
) -> list[Shard]:
    """The shards of ``articles`` (already one per id) for ``model``; see the module docstring."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    shards = []
    for number, start in enumerate(range(0, len(articles), shard_size)):
        part = articles[start : start + shard_size]
        texts = tuple(embedding_text(a.title, a.body, max_body_chars) for a in part)
        hashes = tuple(content_hash(text) for text in texts)
        digest = hashlib.blake2b(digest_size=8)
        digest.update(f"{model}\n{max_body_chars}\n".encode())
        for article, text_hash in zip(part, hashes, strict=True):
            digest.update(f"{article.id}\t{text_hash}\n".encode())
        shards.append(
            Shard(
                number=number,
                ids=tuple(a.id for a in part),
                hashes=hashes,
                texts=texts,
                name=f"shard-{number:05d}-{digest.hexdigest()}.parquet",
            )
        )
    return shards


def embed_files(
    files: Sequence[str | Path],
    out: str | Path,
    *,
    field_map: Mapping[str, str] | None = None,
    skip_invalid: bool = False,
    model: str = "auto",
    max_body_chars: int = 1000,
    batch_size: int = 64,
    shard_size: int = SHARD_SIZE,
    ray: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float | None = None,
    encoder_factory: EncoderFactory | None = None,
    threads: int | None = None,
    progress: ProgressFn | None = None,
) -> EmbedReport:
    """Embed the articles of ``files`` into Parquet shards in the folder ``out``.

    ``model``: as for a build ("auto" chooses as a build of the same files would).
    ``ray``: None runs here; "local" starts a Ray instance on this machine (or uses the one this
    process already started), "auto" joins the cluster this machine belongs to (``ray
    start``), anything else is a cluster address (``ray://head:10001``). ``workers``: model
    copies at once (Ray actors; default: as many as the cluster's CPUs, or GPUs, allow);
    ``gpus_per_worker``: default 1 when the cluster has GPUs, else 0.
    ``encoder_factory``: makes the encoder (in each worker); default ``load_encoder(model)``.
    ``threads``: the multilingual model's threads in this process (None: one per core); a Ray
    worker's are its ``cpus_per_worker``.
    """
    started = time.perf_counter()
    read = read_valid(files, field_map, skip_invalid=skip_invalid)
    if not read.articles:
        raise InputFileError(f"no articles in {', '.join(str(f) for f in files)}; nothing to embed")
    choice = model_for(model, read.articles)
    shards = plan_shards(
        read.articles, model=choice.model, max_body_chars=max_body_chars, shard_size=shard_size
    )
    factory = encoder_factory or functools.partial(
        load_encoder,
        choice.model,
        batch_size=batch_size,
        threads=threads if ray is None else _worker_threads(cpus_per_worker),
    )
    out = Path(out)
    if out.is_dir():  # refused before the lock file is made: a refused folder is as it was
        _survey_before_lock(out, shards)
    with _output_folder(out):
        survey = _survey(out, shards)
        for note in survey.notes:
            logger.warning("%s", note)
        for path in survey.stale:
            path.unlink()
        pending = survey.pending
        total = sum(len(s) for s in shards)
        done = total - sum(len(s) for s in pending)
        if progress is not None:
            progress(done, total)
        dimension = _dimension_of(out, shards, pending)
        runner = "this process"
        if pending:
            if ray is None:
                results = _embed_here(pending, factory)
            else:
                runner = f"ray {ray}"
                results = _embed_on_ray(
                    pending, factory, ray, workers, cpus_per_worker, gpus_per_worker
                )
            for shard, vectors in results:
                write_shard(out / shard.name, shard, choice.model, vectors)
                dimension = int(vectors.shape[1])
                done += len(shard)
                if progress is not None:
                    progress(done, total)
        _write_summary(out, choice.model, choice.reason, max_body_chars, dimension, shards)
    return EmbedReport(
        out=str(out),
        model=choice.model,
        model_choice=choice.reason,
        runner=runner,
        articles=len(read.articles),
        records=read.records,
        skipped=len(read.invalid),
        duplicates=read.duplicates,
        shards=len(shards),
        shards_done_before=len(shards) - len(pending),
        embedded=sum(len(s) for s in pending),
        dimension=dimension,
        seconds=time.perf_counter() - started,
    )


# -- the output folder -------------------------------------------------------------------------


@contextlib.contextmanager
def _output_folder(out: Path) -> Iterator[None]:
    """``out`` created if missing and locked for this job: two jobs writing one folder would
    delete each other's shards. OSErrors become EmbedError naming the folder."""
    try:
        if out.exists() and not out.is_dir():
            raise EmbedError(f"cannot write shards to {out}: it is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / _LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise EmbedError(f"cannot write shards to {out} ({_reason(exc)})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmbedError(
                f"another embedding job is writing to {out}; wait for it or choose another folder"
            ) from None
        try:
            yield
        except OSError as exc:
            raise EmbedError(f"cannot write shards to {out} ({_reason(exc)})") from None
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full; the shards finished so far are kept, run again to go on"
    return (exc.strerror or str(exc)).lower()


@dataclass(frozen=True)
class _Survey:
    """What the output folder holds for a job, decided before anything in it changes."""

    pending: list[Shard]  # to embed: missing, or a damaged shard of this module's
    stale: list[Path]  # this module's files of another run, and its unfinished temporary files
    notes: list[str]  # warnings for the log


def _survey(out: Path, shards: Sequence[Shard]) -> _Survey:
    """Sort the entries of ``out`` (see the module docstring). EmbedError, naming them, when
    anything that is not this module's is where it must write: nothing is changed then."""
    listed = _listed_shards(out)
    wanted = {shard.name: shard for shard in shards}
    temporaries = {f".{name}.tmp" for name in wanted} | {_SUMMARY_TEMPORARY}
    finished: set[str] = set()
    stale: list[Path] = []
    notes: list[str] = []
    in_the_way: list[str] = []
    with os.scandir(out) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name, path = entry.name, out / entry.name
            plain = entry.is_file(follow_symlinks=False)
            if name in wanted:
                rows = _rows_in(path) if plain else None
                if rows == len(wanted[name]):
                    finished.add(name)
                elif plain and (rows is not None or name in listed):
                    notes.append(f"shard {path} cannot be read or is incomplete; embedded again")
                else:
                    in_the_way.append(str(path))
            elif name in temporaries or _SHARD_TEMPORARY.fullmatch(name):
                if plain:
                    stale.append(path)  # an unfinished file of this module's
                elif name in temporaries:
                    in_the_way.append(str(path))
            elif _SHARD_NAME.fullmatch(name) and plain:
                if name in listed or _rows_in(path) is not None:
                    stale.append(path)
                else:
                    notes.append(f"{path} is named like a shard but is not one; left alone")
    if in_the_way:
        raise EmbedError(
            f"cannot write shards to {out}: {_count(len(in_the_way), 'file')} in the way that "
            f"this command cannot show it wrote ({_listing(in_the_way)}); move them or choose "
            "another folder; nothing was changed"
        )
    pending = [shard for shard in shards if shard.name not in finished]
    return _Survey(pending=pending, stale=stale, notes=notes)


def _survey_before_lock(out: Path, shards: Sequence[Shard]) -> None:
    try:
        _survey(out, shards)
    except OSError as exc:
        raise EmbedError(f"cannot write shards to {out} ({_reason(exc)})") from None


def _listed_shards(out: Path) -> frozenset[str]:
    """The shard names in this module's ``embed.json`` in ``out`` (none when there is none);
    EmbedError when an ``embed.json`` is there that this module did not write."""
    path = out / SUMMARY
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return frozenset()
    refused = f"cannot write shards to {out}: {path} is "
    ending = "; move it or choose another folder; nothing was changed"
    if not stat.S_ISREG(mode):
        kind = "a device or pipe"
        if stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a symbolic link"
        raise EmbedError(f"{refused}not a plain file ({kind}){ending}")
    try:
        summary = json.loads(path.read_bytes())
    except ValueError:  # UnicodeDecodeError included
        raise EmbedError(f"{refused}not a summary this command wrote (not JSON){ending}") from None
    names = summary.get("shards") if isinstance(summary, dict) else None
    if not (
        isinstance(names, list)
        and all(isinstance(n, str) and _SHARD_NAME.fullmatch(n) for n in names)
        and (summary.get("written_by") == _WRITTEN_BY or set(summary) == _OLDER_SUMMARY_KEYS)
    ):
        raise EmbedError(f"{refused}not a summary this command wrote{ending}")
    return frozenset(names)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _listing(items: Sequence[str], shown: int = 3) -> str:
    return ", ".join(items[:shown]) + (
        f" and {len(items) - shown} more" if len(items) > shown else ""
    )


def _rows_in(path: Path) -> int | None:
    """Rows of a shard file this module wrote; None when it cannot be read or is not one (a
    Parquet file with other columns)."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
        columns = metadata.schema.to_arrow_schema().names
    except Exception as exc:  # damaged: pyarrow raises its own errors
        logger.debug("%s is not a readable shard (%s)", path, exc)
        return None
    return int(metadata.num_rows) if list(columns) == list(COLUMNS) else None


def _dimension_of(out: Path, shards: Sequence[Shard], pending: Sequence[Shard]) -> int | None:
    """The vector length of the finished shards (None when none is finished)."""
    waiting = {s.name for s in pending}
    finished = [s for s in shards if s.name not in waiting]
    if not finished:
        return None
    import pyarrow.parquet as pq

    return int(pq.read_schema(out / finished[0].name).field("vector").type.list_size)


def write_shard(path: Path, shard: Shard, model: str, vectors: np.ndarray) -> None:
    """Write one shard's file: to a temporary name, synced, then renamed (a crash leaves either
    the whole file or none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape[0] != len(shard):
        raise EmbedError(
            f"shard {shard.number}: {vectors.shape[0]} vectors came back for {len(shard)} articles"
        )
    table = pa.table(
        {
            "id": pa.array(shard.ids, pa.string()),
            "content_hash": pa.array(shard.hashes, pa.string()),
            "model": pa.array([model] * len(shard), pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1]
            ),
        }
    )
    temporary = path.with_name(f".{path.name}.tmp")
    with _new_file(temporary) as handle:
        pq.write_table(table, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_dir(path.parent)


def _new_file(path: Path) -> Any:
    """``path`` opened for writing, made new: never a file or link already there (a file of
    the user's, or a link to one, is not written through)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o644), "wb")


def _write_summary(
    out: Path,
    model: str,
    choice: str,
    max_body_chars: int,
    dimension: int | None,
    shards: Sequence[Shard],
) -> None:
    summary = {
        "model": model,
        "model_choice": choice,
        "dimension": dimension,
        "max_body_chars": max_body_chars,
        "articles": sum(len(s) for s in shards),
        "shards": [shard.name for shard in shards],
        "written_by": _WRITTEN_BY,
    }
    temporary = out / _SUMMARY_TEMPORARY
    with _new_file(temporary) as handle:
        handle.write((json.dumps(summary, indent=2) + "\n").encode())
    os.replace(temporary, out / SUMMARY)


# -- runners -----------------------------------------------------------------------------------


def _embed_here(
    pending: Sequence[Shard], factory: EncoderFactory
) -> Iterator[tuple[Shard, np.ndarray]]:
    encoder = factory()
    for shard in pending:
        yield shard, encode_all(encoder, shard.texts)


class ShardEmbedder:
    """A Ray actor's work: load the model once, then embed whole shards (one per batch row)."""

    def __init__(self, factory: EncoderFactory, threads: int) -> None:
        # The multilingual model's C engine is given its threads by the factory (embed_files).
        with contextlib.suppress(ImportError):
            import torch

            torch.set_num_threads(threads)
        self.encoder = factory()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        vectors = [
            encode_all(self.encoder, [str(t) for t in texts]).astype(np.float32).tobytes()
            for texts in batch["texts"]
        ]
        return {"shard": np.asarray(batch["shard"]), "vectors": np.array(vectors, dtype=object)}


def _embed_on_ray(
    pending: Sequence[Shard],
    factory: EncoderFactory,
    address: str,
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float | None,
) -> Iterator[tuple[Shard, np.ndarray]]:
    """Embed the shards as a Ray Data job; yields each shard as its vectors come back."""
    with _ray_session(address) as ray:
        resources = ray.cluster_resources()
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
        if workers is None:
            if gpus_per_worker:
                workers = int(resources.get("GPU", 0) // gpus_per_worker)
            else:
                workers = int(resources.get("CPU", 1) // cpus_per_worker)
        workers = max(1, min(workers, len(pending)))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # ours shows shards as they are written
        items = [{"shard": s.number, "texts": list(s.texts)} for s in pending]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ShardEmbedder,
            fn_constructor_kwargs={"factory": factory, "threads": _worker_threads(cpus_per_worker)},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
        )
        by_number = {shard.number: shard for shard in pending}
        try:
            for batch in dataset.iter_batches(batch_size=1, batch_format="numpy"):
                for number, blob in zip(batch["shard"], batch["vectors"], strict=True):
                    shard = by_number[int(number)]
                    vectors = np.frombuffer(blob, dtype=np.float32).reshape(len(shard), -1)
                    yield shard, vectors
        except ray.exceptions.RayError as exc:
            raise EmbedError(
                f"the Ray job failed ({type(exc).__name__}: {_first_line(exc)}); the shards "
                "finished so far are kept, run again to go on"
            ) from None


def _worker_threads(cpus_per_worker: float) -> int:
    """The threads of a Ray worker's model: as many as the CPUs it takes."""
    return max(1, int(cpus_per_worker))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def _ray_session(address: str) -> Iterator[Any]:
    """Ray, initialised for ``address`` (and shut down after, if this started it)."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise EmbedError(
            'Ray is not installed: pip install "recommender[cluster]" (or run without --ray, '
            "which embeds in this process with the same output)"
        ) from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {
        "logging_level": logging.WARNING,
        "include_dashboard": False,
        "configure_logging": True,
    }
    try:
        if address == "local":
            ray.init(
                num_cpus=os.cpu_count() or 1,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                **options,
            )
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = _first_line(exc)
        raise EmbedError(f"cannot reach the Ray cluster at {address!r}: {reason}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
