"""``recommend sync``: bring an index in line with a site's database or feed, incrementally.

One run reads the source (``sources.database``, ``sources.feeds``) from where the source's
cursor in the index says the last run stopped (``storage.cursors``), validates each row as
build-index validates a record (a bad one is named with its reason and left out), drops what
was already written as it is (by digest: ties on the update time, a feed's entries), finds the
takedowns, and writes the rest, the takedowns and the advanced cursor in one commit
(``IndexWriter.add``; the first sync of a missing index is a build). Killed at any point, the
index holds either all of a run or none of it, and the next run reads again from the cursor
it holds: no gap and no duplicate. A row edited while a run reads gets a later update time,
which the next run reads.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..articles import Article, parse_article
from ..errors import InvalidArticleError, SourceError
from ..results import SyncReport
from ..settings import Settings
from ..storage import cursors
from ..storage.layout import ARTICLES, CURRENT, current_version
from ..storage.table import ArticleTable, connect
from . import database, feeds

if TYPE_CHECKING:
    from ..embedding.encode import Encoder, ProgressFn


@dataclass(frozen=True)
class Read:
    """What one read of a source gave: its records (each with where it is), its new position,
    the ids it says are taken down and what kind of source it is."""

    kind: str
    records: list[tuple[str, dict[str, Any]]]
    position: str | None
    taken_down: list[str]
    count: int  # rows or entries read (those taken down included)


def source_key(source: str, table: str | None, query: str | None) -> str:
    """The name a source's cursor is kept under: its URL without the password, and its table
    or its query's digest (another query is another source, read from the start)."""
    if not database.is_database(source):
        return source if feeds.is_url(source) else str(Path(source).resolve())
    if table is not None:
        return f"{database.shown(source)} table {table}"
    digest = hashlib.sha256((query or "").encode()).hexdigest()[:16]
    return f"{database.shown(source)} query {digest}"


def _digest(record: Mapping[str, Any], mapping: str) -> str:
    """A row as read, with the mapping that makes it an article."""
    text = mapping + json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _checked_options(
    source: str,
    table: str | None,
    query: str | None,
    field_map: Mapping[str, str],
    options: Mapping[str, str | None],
) -> None:
    if database.is_database(source):
        if (table is None) == (query is None):
            raise SourceError(f"give --table or --query (one of them) for {database.shown(source)}")
        return
    given = {"--table": table, "--query": query, **options}
    named = [name for name, value in given.items() if value is not None]
    if field_map:
        named.append("--field")
    if named:
        raise SourceError(
            f"{', '.join(named)} {'is' if len(named) == 1 else 'are'} for a database; {source} "
            "is read as a feed or news sitemap"
        )


def _read_database(
    source: str,
    table: str | None,
    query: str | None,
    field_map: Mapping[str, str],
    updated_column: str | None,
    deleted: database.Deleted | None,
    deleted_query: str | None,
    since: str | None,
) -> Read:
    columns = {f"the {name}": field_map.get(name, name) for name in ("id", "title")}
    columns |= {f"--field {ours}": theirs for ours, theirs in field_map.items()}
    if updated_column is not None:
        columns["--updated-column"] = updated_column
    if deleted is not None:
        columns["--deleted-column"] = deleted.column
    rows = database.read_rows(
        source,
        table=table,
        query=query,
        columns=columns,
        updated_column=updated_column,
        since=since,
    )
    what = f"table {table}" if table else "the query"
    id_column = field_map.get("id", "id")
    records, taken_down = [], []
    for number, record in enumerate(rows.records, start=1):
        key = record.get(id_column)
        if deleted is not None and deleted.holds(record.get(deleted.column)):
            if key is not None:
                taken_down.append(str(key))
            continue
        # A bad row's reason names its id; a row without one is named by where it came.
        records.append((what if key is not None else f"{what}, row {number}", record))
    if deleted_query is not None:
        taken_down += database.read_ids(source, deleted_query)
    position = database.later_position(since, rows.position)
    return Read("database", records, position, taken_down, len(rows.records))


def _stored(index: Path, key: str) -> tuple[bool, cursors.Cursor]:
    """Whether there is an index at ``index``, and the cursor of ``key`` in it."""
    if not (index / CURRENT).is_file():
        return False, cursors.Cursor(key)
    connection = connect(current_version(index) / ARTICLES, write=False)
    try:
        return True, cursors.read(connection, key)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read the sync cursors of {index} ({exc})") from None
    finally:
        connection.close()


def _live(index: Path, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` that are live articles of the index."""
    if not ids or not (index / CURRENT).is_file():
        return set()
    table = ArticleTable(current_version(index))
    try:
        return set(table.live_hashes(ids))
    finally:
        table.close()


def sync(
    source: str,
    index: Path,
    *,
    table: str | None = None,
    query: str | None = None,
    field_map: Mapping[str, str] | None = None,
    drop_fields: Iterable[str] = (),
    updated_column: str | None = None,
    deleted_column: str | None = None,
    deleted_query: str | None = None,
    dry_run: bool = False,
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    progress: ProgressFn | None = None,
    lists_progress: ProgressFn | None = None,
    wait: bool | float = False,
    threads: int | None = None,
) -> SyncReport:
    """Bring the index at ``index`` in line with ``source`` (a database URL with ``table`` or
    ``query``, or a feed or news sitemap's URL or file); see the module's docstring.
    ``settings``, ``encoder``, ``threads``: for the first sync, a build, as in
    ``Recommender.build``; ``wait``: for another writer."""
    from ..write.writer import IndexWriter

    started = time.perf_counter()
    fields = dict(field_map or {})
    optional = {
        "--updated-column": updated_column,
        "--deleted-column": deleted_column,
        "--deleted-query": deleted_query,
    }
    _checked_options(source, table, query, fields, optional)
    key = source_key(source, table, query)
    exists, cursor = _stored(index, key)
    if database.is_database(source):
        deleted = database.Deleted.parse(deleted_column) if deleted_column else None
        read = _read_database(
            source, table, query, fields, updated_column, deleted, deleted_query, cursor.position
        )
    else:
        entries = feeds.read_entries(source)
        read = Read(entries.kind, entries.records, None, [], len(entries.records))

    drop = frozenset(drop_fields)
    changed: dict[str, Article] = {}
    digests: dict[str, str] = {}
    invalid: list[str] = []
    unchanged = 0
    taken_down = list(dict.fromkeys(read.taken_down))
    down = set(taken_down)
    id_column = fields.get("id", "id")
    mapping = json.dumps([sorted(fields.items()), sorted(drop)])  # another mapping: rewritten
    for where, record in read.records:
        digest = _digest(record, mapping)
        known = record.get(id_column)
        if (
            isinstance(known, str | int)
            and not isinstance(known, bool)
            and cursor.seen.get(str(known)) == digest
            and str(known) not in down
        ):
            unchanged += 1  # written as it is: valid then, valid now (no need to parse it)
            continue
        try:
            article = parse_article(record, fields, drop)
        except InvalidArticleError as exc:
            invalid.append(f"{where}: {exc.reason}")
            continue
        if article.id in down:
            continue
        changed.pop(article.id, None)  # the last row of an id wins, as in build-index
        changed[article.id] = article
        digests[article.id] = digest
    live = _live(index, [*changed, *taken_down])
    removing = [i for i in taken_down if i in live]
    forget = tuple(i for i in taken_down if i in cursor.seen)
    report = SyncReport(
        index=str(index),
        source=database.shown(source),
        kind=read.kind,
        read=read.count,
        added=sum(1 for i in changed if i not in live),
        updated=sum(1 for i in changed if i in live),
        unchanged=unchanged,
        removed=len(removing),
        invalid=tuple(invalid),
        dry_run=dry_run,
    )
    if dry_run:
        return _done(
            report,
            started,
            would_add=tuple(i for i in changed if i not in live),
            would_update=tuple(i for i in changed if i in live),
            would_remove=tuple(removing),
        )
    if not changed and not removing and not forget and read.position == cursor.position:
        return _done(report, started)  # nothing to write: the index stays as it is
    advance = cursors.Advance(key, cursor.runs, read.position, digests, forget)
    writer = IndexWriter(index, encoder=encoder, wait=wait, threads=threads)
    if not exists:
        if not changed:
            raise SourceError(f"no valid articles in {report.source}; nothing to index")
        built = writer.build(
            list(changed.values()),
            settings,
            progress=progress,
            lists_progress=lists_progress,
            records=report.read,
            skipped=len(invalid),
            cursor=advance,
        )
        return _done(report, started, built=True, embedded=built.embedded)
    updated = writer.add(
        list(changed.values()), progress=progress, removed=removing, cursor=advance
    )
    return _done(
        report,
        started,
        removed=updated.removed,
        embedded=updated.embedded,
        compacted=updated.compacted,
    )


def _done(report: SyncReport, started: float, **changes: Any) -> SyncReport:
    return replace(report, seconds=time.perf_counter() - started, **changes)
