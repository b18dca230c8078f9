"""recommend embed on Ray against the plain build, on this machine: articles/s for 1 and 2 Ray
workers and the overhead Ray adds per job (starting Ray; scheduling and starting the workers).

On 2 cores expect about 1x: the point is that the code path is the cluster one. Corpora:
ecbplus-dev (496 full articles) and a seeded sample of uci-news-2014-04 headlines, both with
all-MiniLM-L6-v2 (the model "auto" picks for them). Each run embeds into a fresh folder.

Usage: python benchmarks/cluster.py [--headlines 20000] [--no-write]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from common import dataset, header, table, write_section

from recommender import ENGLISH_MODEL, Recommender, Settings
from recommender.embedding.shards import embed_files

SEED = 0


def _corpus(name: str, folder: Path, limit: int | None) -> Path:
    """The articles of a shared set without their story labels (the engine never sees them),
    all or a seeded sample of ``limit``."""
    with gzip.open(dataset(name), "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    if limit is not None and limit < len(records):
        records = random.Random(SEED).sample(records, limit)
    path = folder / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            record.pop("story", None)
            out.write(json.dumps(record) + "\n")
    return path


def _timed_embed(
    files: list[Path], out: Path, **options: object
) -> tuple[float, int, float | None]:
    """Seconds and articles of one embedding job, and its steady rate: articles/s from the
    first shard written to the last (start-up, model loading and the first shard left out)."""
    shutil.rmtree(out, ignore_errors=True)
    written: list[tuple[float, int]] = []

    def progress(done: int, total: int) -> None:
        if done:
            written.append((time.perf_counter(), done))

    started = time.perf_counter()
    report = embed_files(
        files,
        out,
        model=ENGLISH_MODEL,
        progress=progress,
        **options,  # type: ignore[arg-type]
    )
    seconds = time.perf_counter() - started
    steady = None
    if len(written) >= 3:
        (first, done_first), (last, done_last) = written[0], written[-1]
        steady = (done_last - done_first) / (last - first)
    return seconds, report.embedded, steady


Run = tuple[str, float, int, float | None]


def measure(files: list[Path], work: Path, shard_size: int) -> list[Run]:
    """(what, seconds, articles, steady articles/s) for the plain build and each embedding."""
    runs: list[Run] = []
    started = time.perf_counter()
    built = Recommender.build_from_files(
        files, work / "plain", settings=Settings(model=ENGLISH_MODEL)
    )
    runs.append(("plain build-index", time.perf_counter() - started, built.articles, None))
    runs.append(("embed, this process", *_timed_embed(files, work / "here", shard_size=shard_size)))
    for workers in (1, 2):
        timed = _timed_embed(
            files,
            work / f"ray-{workers}",
            shard_size=shard_size,
            ray="local",
            workers=workers,
            cpus_per_worker=(os.cpu_count() or 2) / workers,
        )
        runs.append((f"embed --ray local, {workers} worker(s)", *timed))
    return runs


def overhead(files: list[Path], work: Path) -> tuple[float, float, float]:
    """Seconds to start Ray, and a one-article job on Ray against the same job here (the
    difference: scheduling, starting a worker process, moving data)."""
    import ray

    one = work / "one.jsonl"
    one.write_text(files[0].read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    here = _timed_embed([one], work / "one-here")[0]
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level="WARNING")
    start_up = time.perf_counter() - started
    try:
        on_ray = _timed_embed([one], work / "one-ray", ray="local", workers=1)[0]
    finally:
        ray.shutdown()
    return start_up, on_ray, here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--headlines", type=int, default=20000, help="UCI headlines embedded")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    began = time.perf_counter()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        work = Path(tmp)
        corpora = [
            ("ecbplus-dev", _corpus("ecbplus-dev", work, None), 62),
            ("uci-news-2014-04", _corpus("uci-news-2014-04", work, args.headlines), 1000),
        ]
        for name, path, shard_size in corpora:
            runs = measure([path], work / name, shard_size)
            base = runs[0][1] / runs[0][2]
            rows = [
                [
                    what,
                    f"{seconds:.1f}",
                    f"{count / seconds:.1f}",
                    f"{base * count / seconds:.2f}x",
                    "" if steady is None else f"{steady:.1f} ({base * steady:.2f}x)",
                ]
                for what, seconds, count, steady in runs
            ]
            count = runs[0][2]
            title = f"### {name} ({count:,} articles, shards of {shard_size})"
            columns = ["run", "seconds", "articles/s", "vs plain build", "steady articles/s"]
            text = table(columns, rows)
            print(title, text, sep="\n")
            lines += [title, "", text, ""]
        start_up, on_ray, here = overhead([corpora[0][1]], work)
        text = (
            f"- starting a local Ray instance (ray.init): {start_up:.1f} s\n"
            f"- a one-article job: {on_ray:.1f} s on Ray against {here:.1f} s in this process "
            f"(model load included in both): {on_ray - here:.1f} s of scheduling and worker "
            "start-up per job"
        )
        print(text)
        lines += ["### Ray overhead per job", "", text]
    section = header("Embedding on Ray (benchmarks/cluster.py)", time.perf_counter() - began)
    section += (
        '\nEach row embeds the same articles into a fresh folder; "vs plain build" is '
        "articles/s over the plain build's (embedding and indexing). Ray workers: 1 worker "
        "with both cores, or 2 with one core each; each loads the model once. Each Ray row "
        'starts its own local Ray instance, included in its seconds; "steady" is the rate '
        "from the first shard written to the last, without start-up and model loading.\n\n"
    )
    if not args.no_write:
        write_section("cluster", section + "\n".join(lines))


if __name__ == "__main__":
    main()
