"""The index on disk: layout, manifest, and clear errors for missing or damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender import (
    IncompatibleIndexError,
    IndexDamagedError,
    IndexNotFoundError,
    Recommender,
)
from recommender.store import ARTICLES, CURRENT, FORMAT_VERSION, MANIFEST, VECTORS


def version_dir(index: Path) -> Path:
    return index / (index / CURRENT).read_text().strip()


def test_layout_and_manifest(sample_index: Path) -> None:
    version = version_dir(sample_index)
    assert sorted(p.name for p in version.iterdir()) == sorted([ARTICLES, MANIFEST, VECTORS])
    manifest = json.loads((version / MANIFEST).read_text())
    assert manifest["format"] == "recommender-index"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == "fake-bag-of-words"
    assert manifest["dimension"] == 256
    assert manifest["files"][VECTORS]["bytes"] == (version / VECTORS).stat().st_size
    assert len(manifest["files"][ARTICLES]["sha256"]) == 64
    assert manifest["settings"]["max_body_chars"] == 1000


def test_faiss_holds_only_row_ids_and_sqlite_the_rest(sample_index: Path) -> None:
    import sqlite3

    import faiss

    version = version_dir(sample_index)
    index = faiss.read_index(str(version / VECTORS))
    with sqlite3.connect(version / ARTICLES) as db:
        rows = db.execute("SELECT row, id, content_hash FROM articles ORDER BY row").fetchall()
    assert [row[0] for row in rows] == list(range(index.ntotal))
    assert all(len(row[2]) == 32 for row in rows)


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match=r"no index at .*build-index"):
        Recommender.open(tmp_path / "nothing")


def test_current_names_a_missing_version(sample_index: Path) -> None:
    (sample_index / CURRENT).write_text("v-gone\n")
    with pytest.raises(IndexDamagedError, match="CURRENT names 'v-gone'"):
        Recommender.open(sample_index)


@pytest.mark.parametrize("name", [VECTORS, ARTICLES])
def test_truncated_files_are_detected(sample_index: Path, name: str) -> None:
    path = version_dir(sample_index) / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexDamagedError, match=f"{name} has 100 bytes, expected"):
        Recommender.open(sample_index)


@pytest.mark.parametrize("name", [VECTORS, ARTICLES])
def test_missing_files_are_detected(sample_index: Path, name: str) -> None:
    (version_dir(sample_index) / name).unlink()
    with pytest.raises(IndexDamagedError, match=f"{name} is missing"):
        Recommender.open(sample_index)


def test_garbage_of_the_right_size_is_not_a_crash(sample_index: Path) -> None:
    path = version_dir(sample_index) / VECTORS
    path.write_bytes(b"\0" * path.stat().st_size)
    with pytest.raises(IndexDamagedError, match="cannot be read"):
        Recommender.open(sample_index)


def test_broken_manifest(sample_index: Path) -> None:
    (version_dir(sample_index) / MANIFEST).write_text("{not json")
    with pytest.raises(IndexDamagedError, match=MANIFEST):
        Recommender.open(sample_index)


def test_newer_format_is_refused(sample_index: Path) -> None:
    path = version_dir(sample_index) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleIndexError, match="upgrade recommender"):
        Recommender.open(sample_index)


def test_manifest_disagreeing_with_vectors(sample_index: Path) -> None:
    path = version_dir(sample_index) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["dimension"] = 384
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexDamagedError, match="dimension 256, the manifest says"):
        Recommender.open(sample_index)
