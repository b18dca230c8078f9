"""recommend sync from PostgreSQL beside recommend build-index from JSON Lines: the same rows and
the same model, in one run.

The first N rows (default 100,000) of uci-news-2014-04, without their story label, go into a
JSON Lines file and into a table of a throwaway PostgreSQL server (tests/db_servers.py: a
temporary folder, 127.0.0.1, stopped afterwards), with an update time per row. Timed as whole
processes (`python -m recommender ...`: reading, model load, embedding, writing), each into a
new index: build-index of the file, then the first sync of the table. Then syncs with nothing
changed (whole processes, and in-process: `Recommender.sync`'s own time), incremental (with
--updated-column) and reading the whole table (without it), and a sync after 100 rows changed.
The model is loaded once beforehand, untimed, so that neither process pays a cold disk.

Usage: python benchmarks/sync.py [--rows N] [--model NAME] [--no-write]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import ROOT, dataset, header, table, write_section

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import db_servers

from recommender import ENGLISH_MODEL, Recommender

UPDATED = datetime(2014, 5, 20, tzinfo=timezone.utc)
COLUMNS = ("id", "title", "body", "category", "published_at", "url", "source", "lang")


def rows_of(count: int) -> list[dict[str, object]]:
    """The first ``count`` articles, without the story label (never given to the engine)."""
    found = []
    with gzip.open(dataset("uci-news-2014-04"), "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            found.append({name: record.get(name) for name in COLUMNS})
            if len(found) == count:
                break
    return found


def load(url: str, rows: list[dict[str, object]]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE articles (id text PRIMARY KEY, title text, body text, category text, "
            "published_at timestamptz, url text, source text, lang text, "
            "updated_at timestamptz NOT NULL)"
        )
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY articles ({', '.join(COLUMNS)}, updated_at) FROM STDIN") as copy,
        ):
            for number, row in enumerate(rows):  # three rows a second: ties too
                at = UPDATED + timedelta(seconds=number // 3)
                copy.write_row([*(row[name] for name in COLUMNS), at])
        connection.execute("CREATE INDEX articles_updated ON articles (updated_at)")
        connection.execute("ANALYZE articles")


def timed(command: list[str]) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", default=ENGLISH_MODEL)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    run_started = time.perf_counter()
    if db_servers.postgres_binaries() is None:
        sys.exit("PostgreSQL is not installed (scripts/setup installs it as root)")
    rows = rows_of(args.rows)
    work = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    jsonl = work / "articles.jsonl"
    with open(jsonl, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    python = [sys.executable, "-m", "recommender"]
    with db_servers.postgres() as server:
        load(server.url, rows)
        warm = work / "warm.jsonl"
        warm.write_text("".join(json.dumps(r) + "\n" for r in rows[:20]), encoding="utf-8")
        timed(
            [
                *python,
                "build-index",
                str(warm),
                "--index",
                str(work / "warm"),
                "--model",
                args.model,
            ]
        )

        model = ["--model", args.model]
        sync = [*python, "sync", server.url, "--table", "articles"]
        incremental = [*sync, "--updated-column", "updated_at"]
        build_s, build_line = timed(
            [*python, "build-index", str(jsonl), "--index", str(work / "built"), *model]
        )
        print(f"build-index: {build_s:.1f} s; {build_line}", flush=True)
        first_s, first_line = timed([*incremental, "--index", str(work / "synced"), *model])
        print(f"first sync: {first_s:.1f} s; {first_line}", flush=True)
        index = work / "synced"
        with Recommender.open(work / "built") as built, Recommender.open(index) as synced:
            assert len(built) == len(synced) == len(rows), (len(built), len(synced))

        same_process = [timed([*incremental, "--index", str(index)])[0] for _ in range(3)]
        same_full_process = [timed([*sync, "--index", str(index)])[0] for _ in range(3)]
        in_process, in_process_full = [], []
        for _ in range(3):
            report = Recommender.sync(
                server.url, index, table="articles", updated_column="updated_at"
            )
            assert report.added == report.updated == report.removed == 0
            in_process.append(report.seconds)
            full = Recommender.sync(server.url, index, table="articles")
            assert full.added == full.updated == full.removed == 0 and full.unchanged == len(rows)
            in_process_full.append(full.seconds)
        import psycopg

        with psycopg.connect(server.url, autocommit=True) as connection:
            connection.execute(
                "UPDATE articles SET title = title || ' (updated)', updated_at = now() "
                "WHERE id IN (SELECT id FROM articles ORDER BY id LIMIT 100)"
            )
        changed_s, changed_line = timed([*incremental, "--index", str(index)])
        print(f"100 changed: {changed_s:.1f} s; {changed_line}", flush=True)

    shutil.rmtree(work, ignore_errors=True)
    median = statistics.median
    ratio = build_s / first_s
    result = [
        ["build-index, JSON Lines file", f"{build_s:.1f}", f"{len(rows) / build_s:.0f}", "1.00"],
        [
            "first sync, PostgreSQL table",
            f"{first_s:.1f}",
            f"{len(rows) / first_s:.0f}",
            f"{ratio:.2f}",
        ],
    ]
    unchanged = [
        [
            "--updated-column (incremental)",
            f"{median(in_process):.3f}",
            f"{median(same_process):.2f}",
        ],
        [
            "no update column (reads the whole table)",
            f"{median(in_process_full):.3f}",
            f"{median(same_full_process):.2f}",
        ],
    ]
    text = header("Sync (benchmarks/sync.py)", time.perf_counter() - run_started)
    text += (
        f"\n{len(rows):,} rows of uci-news-2014-04 (headlines; the story label left out), model "
        f"{args.model}, PostgreSQL "
        f"{db_servers.postgres_binaries().parent.name} on 127.0.0.1 (a throwaway server). Whole "
        "processes, each into a new index, the model's files read once before (untimed). Speed "
        "of the first sync against build-index of the same rows from a file: "
        f"**{ratio:.2f}x** (target: at least 0.90x).\n\n"
    )
    text += table(["run", "seconds", "articles/s", "speed vs build-index"], result)
    text += (
        "\n\nA sync with nothing changed, median of 3: `Recommender.sync`'s own time "
        "(`SyncReport.seconds`: reading the cursor, the query, comparing; nothing written) and "
        "a whole `recommend sync` process (Python, imports and the same).\n\n"
    )
    text += table(["sync with nothing changed", "in-process s", "whole process s"], unchanged)
    text += (
        f"\n\nAfter 100 rows changed, a whole incremental `recommend sync`: {changed_s:.1f} s "
        f"(model load included): `{changed_line}`.\n"
    )
    print(text)
    if not args.no_write:
        write_section("sync", text)


if __name__ == "__main__":
    main()
