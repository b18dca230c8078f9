"""The ``recommend`` command: parse, call the Recommender facade, format. Nothing else."""

from __future__ import annotations

import enum
import functools
import inspect
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from .engine import DEFAULT_INDEX, Recommender
from .errors import IndexNotFoundError, RecommenderError
from .read.retrieve import Filters
from .results import BuildReport, IndexInfo, Recommendation, UpdateReport, to_json
from .settings import (
    CACHED_ARTICLES,
    DEFAULT_MODEL,
    ENGLISH_MODEL,
    MAX_THREADS,
    MULTILINGUAL_MODEL,
    Ranking,
    Settings,
    ranking_options,
    ranking_overrides,
)

# Imported where used: `similar` needs none of them (see docs/contributing.md, "Lazy imports").
if TYPE_CHECKING:
    from .embedding.supplied import MissingVectors
    from .quality.clicks import ClickLabels
    from .storage.events import Events

app = typer.Typer(
    help="Related articles for news sites: build an index, then ask what is related.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

IndexOption = Annotated[
    Path,
    typer.Option(
        "--index",
        "-i",
        help="Index folder.",
        envvar="RECOMMENDER_INDEX",
        show_envvar=True,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", help="If another process is writing the index, wait for it instead of failing."
    ),
]


def _choices(name: str, values: tuple[str, ...]) -> Any:
    """An Enum of these strings: how typer takes an option with a fixed set of values."""
    return enum.Enum(name, {value: value for value in values}, type=str)


FieldOption = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        help="Read a field from another column, e.g. --field id=article_id (repeatable).",
    ),
]
DropFieldOption = Annotated[
    list[str] | None,
    typer.Option("--drop-field", help="Input column not to store at all (repeatable)."),
]
SkipInvalidOption = Annotated[
    bool,
    typer.Option("--skip-invalid", help="Leave out invalid records instead of failing."),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        envvar="RECOMMENDER_WRITER_THREADS",
        show_envvar=True,
        help=(
            "Threads for embedding and vector indexing (default 1, so that a server answering "
            "queries on the same machine keeps its cores; more embeds faster)."
        ),
    ),
]
VectorsOption = Annotated[
    Path | None,
    typer.Option(
        "--vectors",
        help=(
            "Embeddings computed elsewhere: Parquet (a file or a folder of shards) or .npz/.npy "
            "with id, content_hash, model and vector (what recommend embed writes); see "
            "--missing-vectors for articles they do not cover."
        ),
    ),
]


class MissingVectorsChoice(str, enum.Enum):
    """``--missing-vectors``: the values of ``supplied.MissingVectors``."""

    embed = "embed"
    refuse = "refuse"


MissingVectorsOption = Annotated[
    MissingVectorsChoice,
    typer.Option(
        "--missing-vectors",
        help=(
            "Articles --vectors does not cover (no row, or a stale one made from an older "
            "text): 'embed' them here, or 'refuse' to write anything (counting each kind)."
        ),
    ),
]


def _ranking_parameters() -> list[inspect.Parameter]:
    """One command-line option per ranking option (``--half-life-days`` ...; see
    ``settings.ranking_options``), and ``--no-recency``; each defaults to None, "not given"."""
    parameters = []
    for ranking_option in ranking_options():
        kind: Any = {"integer": int, "number": float}.get(ranking_option.kind)
        if kind is None:  # a choice: typer takes an Enum
            kind = _choices(ranking_option.name, ranking_option.choices)
        shown = "off" if ranking_option.default is None else ranking_option.default
        option = typer.Option(
            f"--{ranking_option.name.replace('_', '-')}",
            help=f"{ranking_option.help} Default: {shown}, or the index's.",
            show_default=False,
        )
        parameters.append(
            inspect.Parameter(
                ranking_option.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[kind | None, option],
            )
        )
    no_recency = typer.Option("--no-recency", help="Turn recency off (half-life: off).")
    parameters.append(
        inspect.Parameter(
            "no_recency",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[bool, no_recency],
        )
    )
    return parameters


RANKING_PARAMETERS = _ranking_parameters()


def _with_ranking_options(command: F) -> F:
    """Give a command the ranking options, declared once (from ``Ranking``): the command
    receives those given on the command line as ``ranking``, a dict of overrides."""
    signature = inspect.signature(command, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "ranking"]

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        given = {p.name: kwargs.pop(p.name) for p in RANKING_PARAMETERS}
        no_recency = given.pop("no_recency")
        values = {n: v.value if isinstance(v, enum.Enum) else v for n, v in given.items()}
        overrides = ranking_overrides(values, no_recency=no_recency)
        return command(*args, ranking=overrides, **kwargs)

    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*kept, *RANKING_PARAMETERS]
    )
    return run  # type: ignore[return-value]


SAMPLE_INDEX = Path("indexes") / "sample"
#: Sample articles the demo asks about: different sections, each with hard negatives.
DEMO_QUERIES = ("a-1001", "a-2016", "a-3002")


#: The multilingual model's threads (default: one per core), for every command.
THREADS_ENV = "RECOMMENDER_THREADS"


def _model_threads() -> int | None:
    """The multilingual model's threads from RECOMMENDER_THREADS (a whole number from 1 to
    ``MAX_THREADS``), else None: the library's default. Read here, at the edge, and
    passed down; every command reads it, so a value that is not a count must not fail one."""
    value = os.environ.get(THREADS_ENV, "").strip()
    # isdecimal, not isdigit: int() refuses digits such as "²" that isdigit accepts.
    if not value.isdecimal() or not 1 <= int(value) <= MAX_THREADS:
        return None
    return int(value)


@app.callback()
def _quiet_model_loading() -> None:
    # The model's own loading bar says nothing a user needs; ours shows the embedding.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _cli_errors(command: F) -> F:
    """Library errors become one line on stderr and exit status 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RecommenderError as exc:
            typer.echo(f"error: {_visible(str(exc))}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; the index was left as it was", err=True)
            raise typer.Exit(130) from None

    return run  # type: ignore[return-value]


def _print_json(data: object) -> None:
    typer.echo(to_json(data, indent=2))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr while embedding; silent when stderr is not a terminal."""
    with _progress_bars(label) as (update,):
        yield update


@contextmanager
def _progress_bars(*labels: str) -> Iterator[tuple[Callable[[int, int], None], ...]]:
    """One progress display on stderr with a bar per stage, each shown from its first update;
    silent when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("articles"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    ) as progress:

        def stage(label: str) -> Callable[[int, int], None]:
            task: list[TaskID] = []

            def update(done: int, total: int) -> None:
                if not task:
                    task.append(progress.add_task(label, total=None))
                progress.update(task[0], completed=done, total=total)

            return update

        yield tuple(stage(label) for label in labels)


def _notes(skipped: int, duplicates: int) -> list[str]:
    notes = []
    if skipped:
        notes.append(f"{skipped} invalid skipped")
    if duplicates:
        notes.append(f"{duplicates} duplicate ids, last kept")
    return notes


def _limit_threads(threads: int) -> None:
    """Cap the threads of the libraries that embed and index (read when they first load, which
    is after this: nothing here imports them)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "torch" in sys.modules:  # pragma: no cover - only when embedded in a larger program
        sys.modules["torch"].set_num_threads(threads)
    if "faiss" in sys.modules:  # pragma: no cover
        sys.modules["faiss"].omp_set_num_threads(threads)


def _supplied_note(report: BuildReport | UpdateReport) -> str:
    return (
        f"{report.supplied} vectors supplied, {report.stale} stale ones left out, "
        f"{report.without_vector} articles without one; {report.embedded} embedded here"
    )


def _build(
    articles: list[Path],
    index: Path,
    *,
    fields: list[str],
    drop_fields: list[str],
    skip_invalid: bool,
    settings: Settings,
    wait: bool = False,
    vectors: Path | None = None,
    missing_vectors: MissingVectors = "embed",
) -> None:
    from .articles import parse_field_map

    started = time.perf_counter()
    with _progress_bars("embedding", "precomputing lists") as (progress, lists_progress):
        report = Recommender.build_from_files(
            articles,
            index,
            field_map=parse_field_map(fields),
            drop_fields=drop_fields,
            skip_invalid=skip_invalid,
            settings=settings,
            progress=progress,
            lists_progress=lists_progress,
            wait=wait,
            vectors=vectors,
            missing_vectors=missing_vectors,
            threads=_model_threads(),
        )
    seconds = time.perf_counter() - started
    notes = _notes(report.skipped, report.duplicates)
    if report.reused:
        notes.append(f"{report.reused} stored embeddings reused")
    if vectors is not None:
        notes.append(_supplied_note(report))
    extra = f" ({'; '.join(notes)})" if notes else ""
    typer.echo(
        f"indexed {report.articles} articles from {report.records} records{extra} "
        f"in {seconds:.1f} s, {report.articles / seconds if seconds else 0:.0f} articles/s; "
        f"index {_size(report.index_bytes)} at {report.index}"
    )


@app.command("build-index")
@_cli_errors
@_with_ranking_options
def build_index(
    articles: Annotated[
        list[Path],
        typer.Argument(help="JSON Lines (.jsonl, .jsonl.gz) or CSV (.csv, .csv.gz) files."),
    ],
    ranking: dict[str, Any],
    index: IndexOption = DEFAULT_INDEX,
    model: Annotated[
        str,
        typer.Option(
            help=(
                f"'auto' ({ENGLISH_MODEL} for an all-English corpus, else the multilingual "
                f"{MULTILINGUAL_MODEL}), either of those, or any sentence-transformers model "
                "name or local path."
            )
        ),
    ] = DEFAULT_MODEL,
    field: FieldOption = None,
    drop_field: DropFieldOption = None,
    skip_invalid: SkipInvalidOption = False,
    max_body_chars: Annotated[
        int, typer.Option(help="Characters of body embedded after the title.")
    ] = Settings.max_body_chars,
    batch_size: Annotated[int, typer.Option(help="Texts per model batch.")] = Settings.batch_size,
    vector_type: Annotated[
        str, typer.Option(help="Store vectors as float16 (half the memory, faster) or float32.")
    ] = Settings.vector_type,
    vector_search: Annotated[
        str,
        typer.Option(
            help=(
                "Vector search: 'flat' (exact), 'hnsw' (graph, near-exact, fast at any size) "
                f"or 'auto' (hnsw from {Settings.hnsw_min_rows:,} articles)."
            )
        ),
    ] = Settings.vector_search,
    precomputed_k: Annotated[
        int,
        typer.Option(
            help=(
                "Related articles precomputed per article (0: none): similar with k up to "
                "this, the index's ranking and no filters is then a lookup. Costs about one "
                "query per article at build time."
            )
        ),
    ] = Settings.precomputed_k,
    vectors: VectorsOption = None,
    missing_vectors: MissingVectorsOption = MissingVectorsChoice.embed,
    wait: WaitOption = False,
) -> None:
    """Read articles, embed them and write the index (replacing any index there once done).

    Articles already in the index with the same text keep their stored embedding. Ranking
    options set the index's default ranking; those not given keep the values of the index
    being replaced (e.g. from recommend tune), or the defaults for a new index.
    """
    stored = Recommender.stored_ranking(index) or Ranking()
    settings = Settings(
        model=model,
        max_body_chars=max_body_chars,
        batch_size=batch_size,
        vector_type=vector_type,  # type: ignore[arg-type]
        vector_search=vector_search,  # type: ignore[arg-type]
        precomputed_k=precomputed_k,
        ranking=replace(stored, **ranking),
    )
    _build(
        articles,
        index,
        fields=field or [],
        drop_fields=drop_field or [],
        skip_invalid=skip_invalid,
        settings=settings,
        wait=wait,
        vectors=vectors,
        missing_vectors=missing_vectors.value,
    )


@app.command()
@_cli_errors
def add(
    articles: Annotated[
        list[Path],
        typer.Argument(help="JSON Lines (.jsonl, .jsonl.gz) or CSV (.csv, .csv.gz) files."),
    ],
    index: IndexOption = DEFAULT_INDEX,
    field: FieldOption = None,
    drop_field: DropFieldOption = None,
    skip_invalid: SkipInvalidOption = False,
    vectors: VectorsOption = None,
    missing_vectors: MissingVectorsOption = MissingVectorsChoice.embed,
    threads: ThreadsOption = None,
    wait: WaitOption = False,
) -> None:
    """Add new articles to an index and update changed ones (same id), in place.

    Only articles whose title or body changed are embedded again.
    """
    from .articles import parse_field_map

    _limit_threads(threads or 1)
    opened = Recommender.open(index, lazy=True, threads=_model_threads())
    with opened as rec, _progress_bar("embedding") as progress:
        report = rec.add_from_files(
            articles,
            field_map=parse_field_map(field or []),
            drop_fields=drop_field or [],
            skip_invalid=skip_invalid,
            progress=progress,
            wait=wait,
            vectors=vectors,
            missing_vectors=missing_vectors.value,
        )
    notes = _notes(report.skipped, report.duplicates)
    if vectors is not None:
        notes.append(_supplied_note(report))
    if report.compacted:
        notes.append("index compacted")
    extra = f" ({'; '.join(notes)})" if notes else ""
    typer.echo(
        f"added {report.added}, replaced {report.replaced}, updated fields of "
        f"{report.fields_only}{extra}; embedded {report.embedded} in {report.seconds:.1f} s; "
        f"{report.index}"
    )


@app.command()
@_cli_errors
def embed(
    articles: Annotated[
        list[Path],
        typer.Argument(help="JSON Lines (.jsonl, .jsonl.gz) or CSV (.csv, .csv.gz) files."),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help=(
                "Folder for the Parquet shards (created if missing; shards of another run "
                "there are replaced). Then: recommend build-index FILES --vectors DIR."
            ),
        ),
    ],
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS|auto|local",
            help=(
                "Run as a Ray Data job: 'local' starts Ray on this machine, 'auto' joins the "
                "cluster this machine belongs to (ray start), or a cluster address such as "
                "ray://head:10001. Without it the job runs in this process, with the same output."
            ),
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help=(
                "As for build-index: 'auto' chooses as a build of the same files would, or a "
                "model name or local path."
            )
        ),
    ] = DEFAULT_MODEL,
    field: FieldOption = None,
    skip_invalid: SkipInvalidOption = False,
    max_body_chars: Annotated[
        int,
        typer.Option(
            min=0, help="Characters of body embedded after the title (as the index will use)."
        ),
    ] = Settings.max_body_chars,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Texts per model batch.")
    ] = Settings.batch_size,
    shard_size: Annotated[
        int,
        typer.Option(min=1, help="Articles per shard: the unit of work, of retry and of resuming."),
    ] = 1000,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "--concurrency",
            min=1,
            help=(
                "With --ray: model copies embedding at once (Ray actors). Default: as many as "
                "the cluster's GPUs, or CPUs / --cpus-per-worker, allow."
            ),
        ),
    ] = None,
    cpus_per_worker: Annotated[
        float, typer.Option(min=0.01, help="With --ray: CPUs each worker takes (and threads).")
    ] = 1.0,
    gpus_per_worker: Annotated[
        float | None,
        typer.Option(
            min=0, help="With --ray: GPUs each worker takes. Default: 1 if the cluster has GPUs."
        ),
    ] = None,
) -> None:
    """Embed articles into Parquet shards, here or on a Ray cluster, for build-index --vectors.

    Reads the files exactly as build-index does. A rerun over the same files embeds only the
    shards that are not finished (after an interruption, or a shard that failed for good).
    """
    from .articles import parse_field_map
    from .embedding.shards import embed_files

    with _progress_bar("embedding") as progress:
        report = embed_files(
            articles,
            out,
            field_map=parse_field_map(field or []),
            skip_invalid=skip_invalid,
            model=model,
            max_body_chars=max_body_chars,
            batch_size=batch_size,
            shard_size=shard_size,
            ray=ray,
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            threads=_model_threads(),
            progress=progress,
        )
    notes = _notes(report.skipped, report.duplicates)
    if report.shards_done_before:
        notes.append(f"{report.shards_done_before} shards finished before, kept")
    extra = f" ({'; '.join(notes)})" if notes else ""
    typer.echo(
        f"embedded {report.embedded} of {report.articles} articles{extra} with {report.model} "
        f"({report.runner}) in {report.seconds:.1f} s, {report.articles_per_second:.0f} "
        f"articles/s; {report.shards} shards in {report.out}"
    )


@app.command()
@_cli_errors
def remove(
    ids: Annotated[
        list[str] | None, typer.Argument(metavar="ID...", help="Ids of the articles to remove.")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="Read ids from this file, one per line ('-' for stdin)."),
    ] = None,
    index: IndexOption = DEFAULT_INDEX,
    wait: WaitOption = False,
) -> None:
    """Take articles out of an index: no query returns them from then on."""
    wanted = list(ids or [])
    if from_file is not None:
        try:
            text = sys.stdin.read() if str(from_file) == "-" else from_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {from_file}: {exc}") from None
        # Ids are kept exactly as given (spaces around one included); blank lines are skipped.
        wanted += [line for line in text.splitlines() if line.strip()]
    if not wanted:
        raise typer.BadParameter("give the ids to remove, or --from FILE")
    with Recommender.open(index, lazy=True) as rec:
        report = rec.remove(wanted, wait=wait)
    extra = "; index compacted" if report.compacted else ""
    typer.echo(
        f"removed {report.removed}; {report.missing} not in the index{extra}; {report.index}"
    )


#: Invalid rows a sync names one by one; past these, it counts the rest.
NAMED_INVALID = 50


def _sync_once(source: str, index: Path, options: dict[str, Any]) -> None:
    """One sync of ``source`` into ``index``, with its invalid rows and summary printed."""
    started = time.perf_counter()
    with _progress_bars("embedding", "precomputing lists") as (progress, lists_progress):
        report = Recommender.sync(
            source, index, progress=progress, lists_progress=lists_progress, **options
        )
    for reason in report.invalid[:NAMED_INVALID]:
        typer.echo(f"skipped {_visible(reason)}", err=True)
    if len(report.invalid) > NAMED_INVALID:
        typer.echo(f"skipped {len(report.invalid) - NAMED_INVALID} more invalid rows", err=True)
    seconds = time.perf_counter() - started
    notes = [f"{report.unchanged} unchanged", *_notes(len(report.invalid), 0)]
    if report.built:
        notes.append("a new index")
    if report.compacted:
        notes.append("index compacted")
    counts = f"add {report.added}, update {report.updated}, remove {report.removed}"
    read = f"from {report.read} {'rows' if report.kind == 'database' else 'entries'}"
    if report.dry_run:
        typer.echo(f"would {counts} ({'; '.join(notes)}) {read} of {report.source}; dry run")
        for verb, ids in (
            ("add", report.would_add),
            ("update", report.would_update),
            ("remove", report.would_remove),
        ):
            if ids:
                more = f" ... and {len(ids) - 20} more" if len(ids) > 20 else ""
                typer.echo(f"  {verb}: {', '.join(_visible(i) for i in ids[:20])}{more}")
        return
    done = counts.replace("add ", "added ").replace("update ", "updated ")
    done = done.replace("remove ", "removed ")
    typer.echo(
        f"synced {report.source}: {done} ({'; '.join(notes)}) {read} in {seconds:.1f} s; "
        f"embedded {report.embedded}; index at {report.index}"
    )


@app.command()
@_cli_errors
def sync(
    source: Annotated[
        str,
        typer.Argument(
            envvar="RECOMMENDER_SYNC_SOURCE",
            show_envvar=True,
            help=(
                "A database URL (postgresql://USER:PASSWORD@HOST/DB, mysql://... for MySQL and "
                "MariaDB, sqlite:///FILE), or the URL or file of an RSS or Atom feed or a "
                "Google News sitemap. The environment keeps a password out of the process list."
            ),
        ),
    ],
    index: IndexOption = DEFAULT_INDEX,
    table: Annotated[
        str | None, typer.Option(help="Database: the table of the articles, one row each.")
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(help="Database: instead of --table, a SELECT giving one row per article."),
    ] = None,
    field: FieldOption = None,
    drop_field: DropFieldOption = None,
    updated_column: Annotated[
        str | None,
        typer.Option(
            help=(
                "Database: the column of each row's last update time (or a number that grows): "
                "each run reads only the rows updated since the last."
            )
        ),
    ] = None,
    deleted_column: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN[=V,...|!=V,...]",
            help=(
                "Database: rows taken down: COLUMN (a deleted-at or flag column: any value but "
                "null, 0, false or ''), COLUMN=V,... (one of these values) or COLUMN!=V,... "
                "(none of these, e.g. status!=publish)."
            ),
        ),
    ] = None,
    deleted_query: Annotated[
        str | None,
        typer.Option(help="Database: a SELECT whose first column lists the ids taken down."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be added, updated and removed.")
    ] = False,
    every: Annotated[
        float | None,
        typer.Option(
            min=1,
            metavar="SECONDS",
            help="Keep running: sync again SECONDS after each run ends (an error is printed, "
            "and the next run tries again).",
        ),
    ] = None,
    model: Annotated[
        str, typer.Option(help="The first sync of a missing index builds it: as for build-index.")
    ] = DEFAULT_MODEL,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            envvar="RECOMMENDER_WRITER_THREADS",
            show_envvar=True,
            help=(
                "Threads for embedding and vector indexing (default: all cores, as build-index; "
                "1 leaves a server answering queries on the same machine its cores)."
            ),
        ),
    ] = None,
    wait: WaitOption = False,
) -> None:
    """Bring an index in line with a site's database or feed: new and changed articles are
    added, those taken down removed, with a cursor kept in the index per source.

    A run killed at any point leaves the index as it was or with the whole run; running it
    again continues from the cursor. Invalid rows are named and left out. See docs/sync.md.
    """
    from .articles import parse_field_map

    if threads is not None:
        _limit_threads(threads)
    options: dict[str, Any] = {
        "table": table,
        "query": query,
        "field_map": parse_field_map(field or []),
        "drop_fields": drop_field or [],
        "updated_column": updated_column,
        "deleted_column": deleted_column,
        "deleted_query": deleted_query,
        "dry_run": dry_run,
        "settings": Settings(model=model),
        "wait": wait,
        "threads": _model_threads(),
    }
    if every is None:
        _sync_once(source, index, options)
        return
    while True:
        try:
            _sync_once(source, index, options)
        except RecommenderError as exc:
            typer.echo(f"error: {_visible(str(exc))}", err=True)
        time.sleep(every)


ArticleArgument = Annotated[str, typer.Argument(help="Id of the article whose list it is.")]
RelatedArgument = Annotated[str, typer.Argument(help="Id of the related article.")]
UndoOption = Annotated[bool, typer.Option("--undo", help="Take this override back.")]


@app.command()
@_cli_errors
def pin(
    article_id: ArticleArgument,
    related_id: RelatedArgument,
    position: Annotated[
        int, typer.Option(min=1, help="Its place in the list, 1 for the first.")
    ] = 1,
    undo: UndoOption = False,
    index: IndexOption = DEFAULT_INDEX,
    wait: WaitOption = False,
) -> None:
    """Show RELATED_ID in ARTICLE_ID's related list at --position, ranked or not."""
    with Recommender.open(index, lazy=True) as rec:
        rec.overrides.pin(article_id, related_id, position, undo=undo, wait=wait)
    done = "unpinned" if undo else f"pinned at position {position}"
    typer.echo(f"{related_id} {done} in the list of {article_id}")


@app.command()
@_cli_errors
def block(
    article_id: ArticleArgument,
    related_id: RelatedArgument,
    undo: UndoOption = False,
    index: IndexOption = DEFAULT_INDEX,
    wait: WaitOption = False,
) -> None:
    """Never show RELATED_ID in ARTICLE_ID's related list."""
    with Recommender.open(index, lazy=True) as rec:
        rec.overrides.block(article_id, related_id, undo=undo, wait=wait)
    typer.echo(f"{related_id} {'unblocked' if undo else 'blocked'} in the list of {article_id}")


@app.command()
@_cli_errors
def hide(
    article_id: Annotated[str, typer.Argument(help="Id of the article to hide.")],
    undo: UndoOption = False,
    index: IndexOption = DEFAULT_INDEX,
    wait: WaitOption = False,
) -> None:
    """Show ARTICLE_ID in no related list; it stays indexed and its own list still works."""
    with Recommender.open(index, lazy=True) as rec:
        rec.overrides.hide(article_id, undo=undo, wait=wait)
    typer.echo(f"{article_id} {'shown again' if undo else 'hidden'} in every related list")


@app.command()
@_cli_errors
def overrides(index: IndexOption = DEFAULT_INDEX, json_output: JsonOption = False) -> None:
    """List the editorial overrides: pins, blocks and hidden articles."""
    with Recommender.open(index) as rec:
        listed = rec.overrides.list()
    if json_output:
        _print_json([asdict(override) for override in listed])
        return
    for override in listed:
        if override.kind == "pin":
            line = f"pin    {override.article_id} {override.related_id} {override.position}"
        elif override.kind == "block":
            line = f"block  {override.article_id} {override.related_id}"
        else:
            line = f"hide   {override.article_id}"
        typer.echo(line)
    if not listed:
        typer.echo("no overrides", err=True)


@app.command()
@_cli_errors
def precompute(index: IndexOption = DEFAULT_INDEX, wait: WaitOption = False) -> None:
    """Compute the related lists that updates touched, so that similar looks them up again.

    A build or compaction computes every article's list; updates since are checked on every
    query (a list they touch is not used), and past 5,000 changed rows no list is used
    (recommend info says so). This computes again the lists the updates touched, about one
    query each, on every core, and keeps the others: run it from cron on a busy site.
    """
    with Recommender.open(index, lazy=True) as rec, _progress_bar("precomputing") as progress:
        status = rec.precompute(progress=progress, wait=wait)
    typer.echo(f"precomputed lists: {status}; {index}")


#: What never reaches the terminal raw: C0 and C1 controls (escape sequences start with one),
#: DEL, line and paragraph separators, and the bidirectional overrides that reorder a line.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(text: str) -> str:
    """``text`` with every character that could move the cursor, clear the screen or reorder
    the line shown as an escape (``\x1b``): visible and harmless. ``--json`` keeps the exact
    strings."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "-"


def _print_table(items: list[Recommendation]) -> None:
    if not items:
        typer.echo("no related articles found")
        return
    header = f"{'#':>2}  {'score':>5}  {'sim':>5}  {'rec':>5}  {'cat':>5}  {'date':10}  "
    rows = [
        (item, _visible(item.category or "-"), _visible(item.id), _visible(item.title))
        for item in items
    ]
    width_cat = max(8, *(len(category) for _, category, _, _ in rows))
    width_id = max(2, *(len(shown_id) for _, _, shown_id, _ in rows))
    typer.echo(f"{header}{'category':{width_cat}}  {'id':{width_id}}  title")
    for n, (item, category, shown_id, title) in enumerate(rows, start=1):
        copies = f"  (+{item.copies - 1} copies)" if item.copies > 1 else ""
        typer.echo(
            f"{n:>2}  {item.score:5.3f}  {item.similarity:5.3f}  {item.recency_factor:5.3f}  "
            f"{item.category_factor:5.3f}  {_date(item.published_at):10}  "
            f"{category:{width_cat}}  {shown_id:{width_id}}  {title}{copies}"
        )


def _show_similar(rec: Recommender, article_id: str, k: int) -> None:
    article = rec.get(article_id)
    typer.echo(
        f"\nRelated to {_visible(article.id)} [{_visible(article.category or '-')}, "
        f"{_date(article.published_at)}]: {_visible(article.title)}"
    )
    _print_table(rec.similar(article_id, k=k))


@app.command()
@_cli_errors
@_with_ranking_options
def similar(
    ranking: dict[str, Any],
    article_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="Id of an indexed article.")
    ] = None,
    index: IndexOption = DEFAULT_INDEX,
    k: Annotated[int, typer.Option("-k", "--k", help="How many related articles.")] = 10,
    json_output: JsonOption = False,
    text: Annotated[
        str | None, typer.Option(help="Find articles related to this text instead of an ID.")
    ] = None,
    text_file: Annotated[
        Path | None,
        typer.Option(help="Like --text, read from a file ('-' for standard input)."),
    ] = None,
    text_category: Annotated[
        str | None, typer.Option(help="Category of the --text article, for the category weight.")
    ] = None,
    text_date: Annotated[
        str | None, typer.Option(help="Date of the --text article (default: now).")
    ] = None,
    text_lang: Annotated[
        str | None,
        typer.Option(help="Language of the --text article, e.g. az (default: detected)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model for --text; must be the one the index was built with."),
    ] = None,
    same_category: Annotated[
        bool, typer.Option("--same-category", help="Only articles in the query's category.")
    ] = False,
    category: Annotated[
        list[str] | None,
        typer.Option("--category", help="Only articles in this category (repeatable)."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only articles published on or after.")] = None,
    until: Annotated[str | None, typer.Option(help="Only articles published on or before.")] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Never return this id (repeatable).")
    ] = None,
    same_language: Annotated[
        bool,
        typer.Option(
            "--same-language",
            help="Only articles in the query's language (not applied when it is unknown).",
        ),
    ] = False,
) -> None:
    """Print the articles related to an indexed article (ID) or to a new text."""
    given = [x for x in (article_id, text, text_file) if x is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of ID, --text or --text-file")
    filters = Filters(
        same_category=same_category,
        categories=category or None,
        since=since,
        until=until,
        exclude=tuple(exclude or ()),
        same_language=same_language,
    )
    with Recommender.open(index, model=model, threads=_model_threads()) as rec:
        if article_id is not None:
            items = rec.similar(article_id, k=k, filters=filters, **ranking)
        else:
            if text_file is not None:
                try:
                    text = sys.stdin.read() if str(text_file) == "-" else text_file.read_text()
                except (OSError, UnicodeDecodeError) as exc:
                    raise typer.BadParameter(f"cannot read {text_file}: {exc}") from None
            assert text is not None
            items = rec.similar_to_text(
                text,
                k=k,
                category=text_category,
                published_at=text_date,
                lang=text_lang,
                filters=filters,
                **ranking,
            )
    if json_output:
        _print_json([asdict(item) for item in items])
    else:
        _print_table(items)


@app.command()
@_cli_errors
@_with_ranking_options
def explain(
    ranking: dict[str, Any],
    article_id: Annotated[str, typer.Argument(metavar="ID", help="Id of an indexed article.")],
    index: IndexOption = DEFAULT_INDEX,
    k: Annotated[int, typer.Option("-k", "--k", help="How many related articles.")] = 10,
    json_output: JsonOption = False,
) -> None:
    """Print an article's related list with the evidence behind each one.

    The list is searched as `recommend similar ID` searches it (no editorial overrides). Each
    article's similarity is taken apart: the part of the topic (the embeddings), of the shared
    words (TF-IDF) and of the shared names (places, people, organisations, figures), each with
    its neighbours' part; then the recency and section factors that make its score.
    """
    with Recommender.open(index) as rec:
        found = rec.explain(article_id, k=k, **ranking)
    if json_output:
        _print_json([asdict(item) for item in found])
        return
    if not found:
        typer.echo("no related articles")
        return
    combination = found[0].combination
    typer.echo(f"evidence combined: {combination} ({_weights_line(found[0].weights)})")
    typer.echo(
        f"{'#':>2} {'score':>6} {'topic':>6} {'words':>6} {'names':>6} "
        f"{'recency':>7} {'section':>7}  id, title"
    )
    for place, item in enumerate(found, start=1):
        parts = item.by_kind
        typer.echo(
            f"{place:>2} {item.score:6.3f} {parts['topic']:6.3f} {parts['words']:6.3f} "
            f"{parts['names']:6.3f} {item.recency_factor:7.2f} {item.category_factor:7.2f}  "
            f"{_visible(item.id)}: {_visible(item.title)[:60]}"
        )
        if item.shared_names:
            typer.echo(f"{'':45}shares {_visible(', '.join(item.shared_names))}")


def _weights_line(weights: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in weights.items())


@app.command()
@_cli_errors
def info(index: IndexOption = DEFAULT_INDEX, json_output: JsonOption = False) -> None:
    """Show what an index holds: articles, model, settings, build time, size on disk."""
    with Recommender.open(index) as rec:
        details = rec.info()
    if json_output:
        _print_json(asdict(details))
        return
    settings = " ".join(f"{key}={value}" for key, value in details.settings.items())
    for label, value in (
        ("index", f"{details.index} (version {details.version})"),
        ("articles", f"{details.articles} in {details.categories} categories"),
        ("languages", _visible(_languages(details))),
        ("categories", _visible(_categories(details))),
        ("overrides", _overrides(details)),
        ("model", f"{details.model} (dimension {details.dimension})"),
        ("model chosen", details.model_choice or "not recorded (built before 0.2)"),
        ("vector search", details.vector_search),
        ("precomputed", details.precomputed),
        ("built", f"{details.built_at} in {details.build_seconds:.1f} s"),
        ("size on disk", _size(details.bytes_on_disk)),
        ("format", str(details.format_version)),
        (
            "updates",
            f"generation {details.generation}, {details.segments} segments, "
            f"{details.removed_rows} removed rows awaiting compaction",
        ),
        ("settings", settings),
    ):
        typer.echo(f"{label:13} {value}")


#: Categories ``recommend info`` names, the most held first; ``--json`` gives them all.
INFO_CATEGORIES = 12


def _categories(details: IndexInfo) -> str:
    """The articles per category, the most held first, and those of none."""
    counts = list(details.category_counts.items())
    shown = [f"{name} {count}" for name, count in counts[:INFO_CATEGORIES]]
    if len(counts) > INFO_CATEGORIES:
        shown.append(f"{len(counts) - INFO_CATEGORIES} more")
    without = details.articles - sum(details.category_counts.values())
    if without > 0 or not shown:
        shown.append(f"{max(without, 0)} without one")
    return ", ".join(shown)


def _overrides(details: IndexInfo) -> str:
    """The editorial overrides held, by kind."""
    counts = details.overrides
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in ("pins", "blocks", "hidden"))


def _languages(details: IndexInfo) -> str:
    """The articles per language, those of unknown language, and codes kept as given."""
    shown = [f"{code} {count}" for code, count in details.languages.items()]
    unknown = details.articles - sum(details.languages.values())
    if unknown > 0 or not shown:
        shown.append(f"{max(unknown, 0)} unknown")
    line = ", ".join(shown)
    if details.unrecognised_languages:
        codes = ", ".join(details.unrecognised_languages)
        line += f" (not language codes, kept as given: {codes})"
    return line


@app.command()
@_cli_errors
def check(index: IndexOption = DEFAULT_INDEX) -> None:
    """Verify an index: every file's checksum, every stored article, counts that must agree.

    Prints a line per problem and exits with status 1 if there is any.
    """
    report = Recommender.check(index)
    for note in report.notes:
        typer.echo(f"note: {note}")
    for problem in report.problems:
        typer.echo(f"problem: {problem}")
    if not report.sound:
        todo = (
            "queries do not use those files; delete them, or run recommend precompute"
            if report.ignored_files == len(report.problems)
            else "build it again"
        )
        typer.echo(f"index at {index} has {len(report.problems)} problem(s); {todo}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"index at {index} is sound: {report.articles} articles, {report.rows} rows "
        f"({report.rows_verified} with a verified checksum), {report.segments} "
        f"segment{'' if report.segments == 1 else 's'} "
        f"(version {report.version})"
    )


SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DATE",
        help="Only events at or after DATE (2026-12-01, or an ISO-8601 time; UTC).",
    ),
]


def _stored_events(index: Path, since: str | None) -> tuple[Events, datetime | None]:
    from .quality.report import parse_since
    from .storage.events import read_events
    from .storage.layout import is_index_folder

    if not is_index_folder(index):
        raise IndexNotFoundError(f"no index at {index}; events are kept beside an index")
    when = None if since is None else parse_since(since)
    return read_events(index, when), when


@app.command()
@_cli_errors
def report(
    index: IndexOption = DEFAULT_INDEX, since: SinceOption = None, json_output: JsonOption = False
) -> None:
    """Views, clicks and click-through of the box, by position, section, language and day.

    From the events the service kept (POST /events, see docs/events.md). Position 1 is the
    box's first place (0 in --json and in the events).
    """
    from .quality.report import report_of

    events, when = _stored_events(index, since)
    found = report_of(events, since=when)
    if json_output:
        _print_json(found.as_json())
        return

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    typer.echo(
        f"{count(found.views, 'view')}, {count(found.clicks, 'click')}, click-through "
        f"{found.click_through:.2%}" + (f" since {_utc(when)}" if when else "")
    )
    typer.echo(
        f"{count(found.explored, 'view')} explored (two places swapped), "
        f"{count(found.interleaved, 'view')} interleaving two rankings"
    )
    for title, rows in (
        ("position", found.by_position),
        ("section", found.by_section),
        ("language", found.by_language),
        ("ranking", found.by_ranking),
        ("day", found.by_day),
    ):
        typer.echo(f"\n{title:<24} {'views':>8} {'clicks':>8} {'click-through':>14}")
        for row in rows:
            key = "-" if row.key is None else row.key
            if title == "position":
                key = f"#{int(row.key or 0) + 1}"
            typer.echo(
                f"{_visible(str(key))[:24]:<24} {row.views:>8} {row.clicks:>8} "
                f"{row.click_through:>14.2%}"
            )
    for compared in found.interleaving:
        typer.echo(f"\n{_visible(compared.line)}")
    notes = [
        (found.clicks_without_view, "click", "whose view is not in the period"),
        (found.duplicates, "event", "sent twice, counted once"),
        (found.damaged, "damaged record", "skipped"),
    ]
    for number, word, what in notes:
        if number:
            typer.echo(f"note: {count(number, word)} {what}", err=True)
    for group, number in found.left_out.items():
        if number:
            typer.echo(
                f"note: {number:,} more {group[3:]} rows with fewer views left out", err=True
            )


def _utc(when: datetime) -> str:
    """``when`` in UTC (``--since 2026-12-01T00:00+05:00`` is 2026-11-30 19:00 UTC); as given
    when UTC cannot hold it (0001-01-01T00:00+05:00)."""
    try:
        when = when.astimezone(UTC)
    except OverflowError:
        return when.isoformat(timespec="minutes")
    return f"{when.date().isoformat()} {when:%H:%M} UTC"


@app.command("export-events")
@_cli_errors
def export_events(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The Parquet file to write (replaced whole).")
    ],
    index: IndexOption = DEFAULT_INDEX,
    since: SinceOption = None,
) -> None:
    """Write the box's events (views and clicks, one table) to a Parquet file."""
    from .quality.export import export_events as export

    events, _ = _stored_events(index, since)
    written = export(events, out)
    typer.echo(f"wrote {written} events to {out}")
    if events.damaged:
        typer.echo(f"note: {events.damaged} damaged record(s) skipped", err=True)


@app.command()
@_cli_errors
def replicate(
    replica: Annotated[
        Path,
        typer.Argument(
            metavar="DEST",
            help="The replica's folder: new, empty, or written by an earlier replicate; "
            "outside the index.",
        ),
    ],
    index: Annotated[
        Path,
        typer.Option(
            "--index",
            "-i",
            help="The index to copy (its writer and readers go on meanwhile).",
            envvar="RECOMMENDER_INDEX",
            show_envvar=True,
        ),
    ] = DEFAULT_INDEX,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="If another replicate is writing DEST, wait for it instead of failing.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Copy an index to DEST for read-only serving: one consistent state, new version last.

    DEST gets the copy as a new version folder, named in DEST/CURRENT only once complete;
    older copies are then deleted. Nothing is copied when DEST is up to date, so it can run
    every minute. Serve DEST with `recommend serve --index DEST`; ship it to other machines
    with rsync, the version folder first and CURRENT last (see the README).
    """
    report = Recommender.replicate(index, replica, wait=wait)
    if json_output:
        _print_json(asdict(report))
        return
    state = (
        f"{report.articles} articles, version {report.source_version} "
        f"generation {report.generation}"
    )
    if not report.copied:
        typer.echo(f"{replica} is up to date with {index} ({state}); nothing copied")
        return
    linked = f", {report.files_linked} unchanged segment(s) linked" if report.files_linked else ""
    typer.echo(
        f"replicated {index} ({state}) to {replica / report.version}: "
        f"{_size(report.bytes_copied)} copied{linked} in {report.seconds:.2f} s"
    )


def _relevance(articles: list[Path], label: str, id_field: str) -> dict[str, frozenset[str]]:
    from .quality.evaluate import labels_from_field, relevance_from_labels, relevance_from_pairs

    if Path(label).suffix.lower() == ".csv" and Path(label).is_file():
        return relevance_from_pairs(label)
    return relevance_from_labels(labels_from_field(articles, label, id_field))


@app.command()
@_cli_errors
@_with_ranking_options
def evaluate(
    articles: Annotated[
        list[Path], typer.Argument(help="The labelled articles (JSON Lines or CSV).")
    ],
    ranking: dict[str, Any],
    label: Annotated[
        str,
        typer.Option(
            help="Label field of ARTICLES (e.g. story), or a CSV file of related id pairs."
        ),
    ],
    index: IndexOption = DEFAULT_INDEX,
    k: Annotated[int, typer.Option("-k", "--k", help="Length of each related list.")] = 10,
    queries: Annotated[
        int | None, typer.Option(help="Score a seeded sample of this many queries (default all).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the query sample.")] = 0,
    id_field: Annotated[
        str, typer.Option(help="Column of ARTICLES that holds the article id.")
    ] = "id",
    json_output: JsonOption = False,
) -> None:
    """Score the related lists against labels: P@5, P@10, nDCG@10, MRR, recall and more."""
    from .quality.evaluate import evaluate as run_evaluation

    relevance = _relevance(articles, label, id_field)
    with Recommender.open(index) as rec, _progress_bar("querying") as progress:
        report = run_evaluation(
            rec, relevance, k=k, queries=queries, seed=seed, options=ranking, progress=progress
        )
    if json_output:
        _print_json(asdict(report))
        return

    def show(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    typer.echo(
        f"{report.queries} queries ({report.skipped} labelled ids without a relevant indexed "
        f"article left out), lists of {report.k}"
    )
    for name, value in (
        ("P@5", show(report.precision_at_5)),
        ("P@10", show(report.precision_at_10)),
        ("nDCG@10", show(report.ndcg_at_10)),
        ("MRR", show(report.mrr)),
        (f"recall of candidates ({report.candidates} a query)", show(report.candidate_recall)),
        ("recall@50 of candidates", show(report.recall_at_50)),
        ("share in query's category", show(report.same_category)),
        ("share of near-duplicates", show(report.near_duplicates)),
        ("median age gap (days)", show(report.median_age_gap_days, 1)),
    ):
        typer.echo(f"{name:28} {value}")
    if report.by_language:
        typer.echo("\nby the query's language (und: unknown)")
        typer.echo(
            f"{'language':8}  {'queries':>7}  {'P@5':>5}  {'P@10':>5}  {'nDCG@10':>7}  {'MRR':>5}"
        )
        for code, part in report.by_language.items():
            typer.echo(
                f"{_visible(code):8}  {part.queries:>7}  {part.precision_at_5:5.3f}  "
                f"{part.precision_at_10:5.3f}  {part.ndcg_at_10:7.3f}  {part.mrr:5.3f}"
            )


@app.command()
@_cli_errors
@_with_ranking_options
def tune(
    ranking: dict[str, Any],
    articles: Annotated[
        list[Path] | None,
        typer.Argument(help="The labelled articles (JSON Lines or CSV); not with --clicks."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            help="Label field of ARTICLES (e.g. story), or a CSV file of related id pairs "
            "(e.g. read together)."
        ),
    ] = None,
    clicks: Annotated[
        bool,
        typer.Option(
            "--clicks",
            help="Tune on the readers' clicks kept in the index (the box's events), "
            "corrected for position bias, instead of labels.",
        ),
    ] = False,
    index: IndexOption = DEFAULT_INDEX,
    queries: Annotated[
        int, typer.Option(help="Use a seeded sample of at most this many queries.")
    ] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of a random split.")] = 0,
    id_field: Annotated[
        str, typer.Option(help="Column of ARTICLES that holds the article id.")
    ] = "id",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report; never store the new settings.")
    ] = False,
    wait: WaitOption = False,
    json_output: JsonOption = False,
) -> None:
    """Search the ranking settings on the site's labelled history; keep them if they win.

    Tunes on the earlier 70% of the queries (by date; at random when undated) and scores the
    old and new settings on the later 30%. The new ones are stored in the index only if they
    score higher there (nDCG@10, by at least 0.001). Ranking options given set where the
    search starts (the index's ranking otherwise). With --clicks, an article's related ones
    are those its readers clicked in its box, corrected for position bias.
    """
    from .quality.tune import MIN_GAIN

    if clicks and (articles or label):
        raise typer.BadParameter("give ARTICLES and --label, or --clicks (not both)")
    if not clicks and (not articles or label is None):
        raise typer.BadParameter("give ARTICLES and --label, or --clicks")
    with Recommender.open(index) as rec:
        # Opened first: a wrong --index is "no index", not "too few events".
        labels = _click_labels(index) if clicks else None
        relevance = (
            labels.relevance if labels else _relevance(articles or [], label or "", id_field)
        )
        with _stage_bar() as progress:
            report = rec.tune(
                relevance,
                queries=queries,
                seed=seed,
                start=replace(rec.settings.ranking, **ranking) if ranking else None,
                dry_run=dry_run,
                progress=progress,
                wait=wait,
            )
    if json_output:
        extra = {"clicks": asdict(labels) | {"relevance": None}} if labels else {}
        _print_json(asdict(report) | {"gain": report.gain} | extra)
        return
    if labels:
        typer.echo(_click_summary(labels))
    split = (
        f"by time: tuned on queries published up to {report.cutoff[:10]}, held out the later"
        if report.split == "time" and report.cutoff
        else f"at random (seed {seed})"
    )
    typer.echo(
        f"{report.tuning_queries} tuning and {report.held_out_queries} held-out queries, "
        f"split {split}"
    )
    typer.echo(f"{'setting':22} {'old':>8} {'new':>8}")
    for name, old in report.old.items():
        new = report.new[name]
        mark = "" if new == old else "  *"
        typer.echo(f"{name:22} {_value(old):>8} {_value(new):>8}{mark}")
    typer.echo(f"\n{'':22} {'old':>8} {'new':>8}")
    for what, old_report, new_report in (
        ("tuning", report.old_tuning, report.new_tuning),
        ("held out", report.old_held_out, report.new_held_out),
    ):
        for metric in ("ndcg_at_10", "precision_at_5", "mrr"):
            name = {"ndcg_at_10": "nDCG@10", "precision_at_5": "P@5", "mrr": "MRR"}[metric]
            typer.echo(
                f"{what + ' ' + name:22} {getattr(old_report, metric):8.3f} "
                f"{getattr(new_report, metric):8.3f}"
            )
    if report.model_gain is not None:
        learned = "new" if report.new_model != report.old_model else "kept as they were"
        typer.echo(
            f"\nevidence weights: {learned} (the correction learned now: held-out nDCG@10 "
            f"{report.model_gain:+.3f} over the settings alone)"
        )
    if report.stored:
        verdict = f"stored in {index}: held-out nDCG@10 {report.gain:+.3f}"
    elif dry_run:
        verdict = f"not stored (--dry-run); held-out nDCG@10 {report.gain:+.3f}"
    else:
        verdict = (
            f"kept the old settings: held-out nDCG@10 {report.gain:+.3f} "
            f"(needs +{MIN_GAIN:.3f} or more)"
        )
    typer.echo(f"\n{verdict}")


def _click_labels(index: Path) -> ClickLabels:
    """Related articles by the clicks stored in the index, position bias corrected."""
    from .quality.clicks import click_labels
    from .storage.events import read_events

    return click_labels(read_events(index))


def _click_summary(labels: ClickLabels) -> str:
    """What tuning from clicks learned its labels from, in two lines."""
    stray = f" ({labels.stray_clicks} matched no view)" if labels.stray_clicks else ""
    head = (
        f"{labels.views} views, {labels.clicks} clicks{stray}: {labels.queries} articles "
        f"have related articles by clicks"
    )
    if labels.bias is None:
        return f"{head}\nposition bias not corrected: {labels.uncorrected_because}"
    looks = " ".join(f"{look:.2f}" for look in labels.bias.looks)
    return (
        f"{head}\nposition bias from {labels.bias.swapped_views} swapped views, looks by "
        f"place: {looks}"
    )


def _value(value: object) -> str:
    if value is None:
        return "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


@contextmanager
def _stage_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar on stderr that names the stage it is in; silent off a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update


@app.command()
@_cli_errors
def demo(
    index: Annotated[Path, typer.Option("--index", "-i", help="Index folder.")] = SAMPLE_INDEX,
    k: Annotated[int, typer.Option("-k", "--k", help="Related articles per example.")] = 5,
) -> None:
    """Build an index of the bundled sample news and show related articles for a few of them."""
    from importlib import resources

    sample = resources.files("recommender") / "sample" / "articles.jsonl"
    with resources.as_file(sample) as path:
        typer.echo(f"Building an index of the bundled sample ({path.name}) at {index} ...")
        _build([path], index, fields=[], drop_fields=[], skip_invalid=False, settings=Settings())
    with Recommender.open(index) as rec:
        for article_id in DEMO_QUERIES:
            _show_similar(rec, article_id, k)
    typer.echo(f"\nTry: recommend similar {DEMO_QUERIES[0]} --index {index} --json")


class LogLevel(str, enum.Enum):
    """What ``recommend serve --log-level`` takes."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(str, enum.Enum):
    """What ``recommend serve --log-format`` takes (``http.workers.LOG_FORMATS``)."""

    plain = "plain"
    json = "json"


def _serve_env(name: str) -> dict[str, Any]:
    """The environment variable of a ``serve`` option (``RECOMMENDER_`` and its name, as
    RECOMMENDER_INDEX), shown in ``--help``; the command line wins over it. A deployment
    (a container, a unit file) then configures the server without a command line."""
    return {"envvar": f"RECOMMENDER_{name.upper()}", "show_envvar": True}


@app.command()
@_cli_errors
def serve(
    index: IndexOption = DEFAULT_INDEX,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on (0.0.0.0: every interface).", **_serve_env("host")),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", **_serve_env("port"))] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Worker processes, each with the index open.", **_serve_env("workers")
        ),
    ] = 1,
    max_age: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seconds browsers and CDNs may keep a read (max-age).",
            **_serve_env("max_age"),
        ),
    ] = 60,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="Origin whose pages may call the service, e.g. https://news.example "
            "(repeatable, or several in the variable separated by spaces; '*' for any).",
            **_serve_env("cors_origin"),
        ),
    ] = None,
    max_body_bytes: Annotated[
        int,
        typer.Option(
            min=0, help="Larger request bodies get 413 unread.", **_serve_env("max_body_bytes")
        ),
    ] = 10 * 1024 * 1024,
    write_wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds a write waits for another writer before 409 (?wait= overrides).",
            **_serve_env("write_wait"),
        ),
    ] = 0.0,
    max_k: Annotated[
        int,
        typer.Option(min=0, help="The largest k a request may ask for.", **_serve_env("max_k")),
    ] = 100,
    events_rate: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Events (POST /events) a client address may send a second, per worker, in "
            "bursts of 200; over it, 429. Raise it behind a proxy that hides the readers.",
            **_serve_env("events_rate"),
        ),
    ] = 10.0,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            help="Log level: debug, info (a line per request), warning, error.",
            case_sensitive=False,
            **_serve_env("log_level"),
        ),
    ] = LogLevel.info,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            help="Log lines as plain text, or each one JSON object (json).",
            case_sensitive=False,
            **_serve_env("log_format"),
        ),
    ] = LogFormat.plain,
    cached_articles: Annotated[
        int,
        typer.Option(
            min=0,
            help="Articles whose listed fields each worker keeps, checked once, for related "
            "lists (about 1.2 KB each; 0: read every one from the database each time).",
            **_serve_env("cached_articles"),
        ),
    ] = CACHED_ARTICLES,
) -> None:
    """Serve the index over HTTP: related lists, the editor's page (/) and the box (/box.js).

    Writes (PUT /articles, DELETE /articles/ID) need the bearer token in RECOMMENDER_TOKEN;
    without it they are refused. API reference at /docs.
    """
    from .http.logs import json_line
    from .http.options import TOKEN_ENV, ServeOptions
    from .http.workers import run as run_server

    with Recommender.open(index):  # a clear error now rather than 503s later
        pass
    options = ServeOptions(
        token=os.environ.get(TOKEN_ENV) or None,
        max_age=max_age,
        cors_origins=tuple(cors_origin or ()),
        max_body_bytes=max_body_bytes,
        write_wait=write_wait,
        max_k=max_k,
        threads=_model_threads(),
        events_rate=events_rate,
        cached_articles=cached_articles,
    )
    writes = "writes need the token" if options.token else f"writes off ({TOKEN_ENV} not set)"
    said = f"serving {index} on http://{host}:{port}/ with {workers} worker(s); {writes}"
    if log_format is LogFormat.json:  # every line on standard error one JSON object
        said = json_line("info", "recommender.cli", said)
    typer.echo(said, err=True)
    run_server(
        index,
        host=host,
        port=port,
        workers=workers,
        options=options,
        log_level=log_level.value,
        log_format=log_format.value,
    )


def main() -> None:
    app()
