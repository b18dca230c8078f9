"""A sync process for the kill -9 test: syncs a database table into an index, again and again.

Usage: python tests/sync_worker.py URL TABLE INDEX

It runs until it is killed (the test sends SIGKILL at random moments, in the middle of reading,
embedding or committing), with the fake encoder: no model.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FakeEncoder

from recommender.sources.sync import sync


def main() -> None:
    url, table, index = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    encoder = FakeEncoder()
    while True:
        sync(
            url,
            index,
            table=table,
            field_map={"title": "headline", "body": "content", "category": "section"},
            updated_column="updated_at",
            deleted_column="deleted_at",
            encoder=encoder,
            wait=True,
        )


if __name__ == "__main__":
    main()
