"""recommend export-events: the events store as one Parquet file, for a warehouse.

One row per event, in the order stored, views and clicks in one table told apart by ``type``
(docs/events.md lists the columns): a click's ``shown``, ``ranking`` and the other view fields
are null, a view's ``position`` is null. Written to a temporary file made beside ``out`` (a new
name, ``mkstemp``: never a link planted at a name that could be guessed) and renamed: a reader of
``out`` never sees half a file, and a file already there is replaced whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import OutputFileError
from ..events import Click, Event

#: Rows written at a time: a row group each.
CHUNK = 100_000


def export_events(events: Iterable[Event], out: Path) -> int:
    """Write ``events`` to the Parquet file ``out``; how many were written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("type", pa.string()),
            ("view", pa.string()),
            ("article", pa.string()),
            ("time", pa.timestamp("us", tz="UTC")),
            ("position", pa.int32()),
            ("shown", pa.list_(pa.string())),
            ("ranking", pa.string()),
            ("section", pa.string()),
            ("language", pa.string()),
            ("swapped", pa.int32()),
            ("teams", pa.list_(pa.string())),
        ]
    )
    if not out.name or out.is_dir():
        raise OutputFileError(f"cannot write {out}: it is a folder; name the file to write")
    temporary: Path | None = None
    written = 0
    try:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        temporary = Path(name)
        os.fchmod(fd, 0o666 & ~_umask())  # as a new file would be, not mkstemp's 0600
        with open(fd, "wb") as handle, pq.ParquetWriter(handle, schema) as writer:
            rows: list[dict[str, object]] = []
            for event in events:
                rows.append(_row(event))
                if len(rows) == CHUNK:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    written, rows = written + len(rows), []
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            written += len(rows)
        os.replace(temporary, out)
    except OSError as exc:
        raise OutputFileError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    return written


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _row(event: Event) -> dict[str, object]:
    if isinstance(event, Click):
        return {
            "type": "click",
            "view": event.view,
            "article": event.article,
            "time": event.time,
            "position": event.position,
        }
    return {
        "type": "view",
        "view": event.view,
        "article": event.article,
        "time": event.time,
        "shown": list(event.shown),
        "ranking": event.ranking,
        "section": event.section,
        "language": event.language,
        "swapped": event.swapped,
        "teams": None if event.teams is None else list(event.teams),
    }
