"""The index on disk: layout, manifest, and clear errors for missing or damaged files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from recommender import (
    IncompatibleIndexError,
    IndexDamagedError,
    IndexNotFoundError,
    Recommender,
)
from recommender.store import ARTICLES, CURRENT, FORMAT_VERSION, MANIFEST

SEGMENT = "seg-000001.faiss"


def version_dir(index: Path) -> Path:
    return index / (index / CURRENT).read_text().strip()


def test_layout_and_manifest(sample_index: Path) -> None:
    version = version_dir(sample_index)
    assert sorted(p.name for p in version.iterdir()) == sorted([ARTICLES, MANIFEST, SEGMENT])
    manifest = json.loads((version / MANIFEST).read_text())
    assert manifest["format"] == "recommender-index"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == "fake-bag-of-words"
    assert manifest["dimension"] == 256
    assert manifest["settings"]["max_body_chars"] == 1000
    assert manifest["settings"]["vector_type"] == "float16"
    assert sorted(p.name for p in sample_index.iterdir()) == sorted([CURRENT, "LOCK", version.name])


def test_faiss_holds_only_row_ids_and_sqlite_the_rest(sample_index: Path) -> None:
    import faiss

    version = version_dir(sample_index)
    index = faiss.read_index(str(version / SEGMENT))
    with sqlite3.connect(version / ARTICLES) as db:
        rows = db.execute("SELECT row, id, content_hash FROM articles ORDER BY row").fetchall()
        segments = db.execute("SELECT number, first_row, count, file FROM segments").fetchall()
    assert [row[0] for row in rows] == list(range(index.ntotal))
    assert all(len(row[2]) == 32 for row in rows)
    assert segments == [(1, 0, index.ntotal, SEGMENT)]


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match=r"no index at .*build-index"):
        Recommender.open(tmp_path / "nothing")


def test_current_names_a_missing_version(sample_index: Path) -> None:
    (sample_index / CURRENT).write_text("v-gone\n")
    with pytest.raises(IndexDamagedError, match="CURRENT names 'v-gone'"):
        Recommender.open(sample_index)


def test_truncated_segment(sample_index: Path) -> None:
    path = version_dir(sample_index) / SEGMENT
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexDamagedError, match=f"{SEGMENT} has 100 bytes, expected"):
        Recommender.open(sample_index)


def test_segment_with_wrong_checksum(sample_index: Path) -> None:
    path = version_dir(sample_index) / SEGMENT
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    with pytest.raises(IndexDamagedError, match="does not match its checksum; build it again"):
        Recommender.open(sample_index)


@pytest.mark.parametrize("name", [SEGMENT, ARTICLES])
def test_missing_files(sample_index: Path, name: str) -> None:
    (version_dir(sample_index) / name).unlink()
    with pytest.raises(IndexDamagedError, match=f"{name} is missing"):
        Recommender.open(sample_index)


@pytest.mark.parametrize("keep", [0, 100, 5000])
def test_damaged_sqlite_is_not_a_crash(sample_index: Path, keep: int) -> None:
    path = version_dir(sample_index) / ARTICLES
    path.write_bytes(path.read_bytes()[:keep] + b"\0" * 64)
    with pytest.raises(IndexDamagedError, match=f"{ARTICLES}: .*; build it again"):
        Recommender.open(sample_index)


def test_broken_manifest(sample_index: Path) -> None:
    (version_dir(sample_index) / MANIFEST).write_text("{not json")
    with pytest.raises(IndexDamagedError, match=MANIFEST):
        Recommender.open(sample_index)


@pytest.mark.parametrize(
    ("found", "message"), [(FORMAT_VERSION + 1, "upgrade recommender"), (1, "older format")]
)
def test_other_formats_are_refused(sample_index: Path, found: int, message: str) -> None:
    path = version_dir(sample_index) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["format_version"] = found
    path.write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleIndexError, match=message):
        Recommender.open(sample_index)


def test_manifest_disagreeing_with_vectors(sample_index: Path) -> None:
    path = version_dir(sample_index) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["dimension"] = 384
    del manifest["checksum"]  # as an earlier version wrote it: accepted, then found out
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexDamagedError, match="vectors of dimension 256, expected"):
        Recommender.open(sample_index)
