"""Hostile review of the third hardening pass (issue 23): what a killed writer leaves, drafts a
model answers with NaN for, and other inputs the fixes did not think of."""

from __future__ import annotations

from pathlib import Path

from conftest import FakeEncoder, article

from recommender import Recommender


def _version(index: Path) -> Path:
    return index / (index / "CURRENT").read_text().strip()


def test_the_next_write_deletes_what_a_killed_writer_was_writing(sample_index: Path) -> None:
    """A writer killed in ``write_mapped`` (an image) or ``replace_manifest`` leaves its
    temporary file; the next write deletes it, and nothing of the user's."""
    version = _version(sample_index)
    left = [
        version / ".image-000000000001.bin.4242",
        version / ".precomputed-000000000001.bin.4242",
        version / ".manifest.json.0123abcd",
    ]
    for path in left:
        path.write_bytes(b"x" * 100)
    mine = [version / ".image-notes.txt", version / ".manifest.json.bak"]
    for path in mine:
        path.write_bytes(b"mine")
    rec = Recommender.open(sample_index, encoder=FakeEncoder())
    try:
        rec.add([article("new-1", "Rescue teams reach Corvena")])
    finally:
        rec.close()
    assert [path.name for path in left if path.exists()] == []
    assert all(path.read_bytes() == b"mine" for path in mine)
