"""Mapped files of aligned arrays (recommender/storage/mapped.py), as image and lists use them."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from recommender.storage.mapped import (
    ALIGN,
    decode_header,
    encode_header,
    layout,
    layout_of,
    map_file,
    padded,
    remove_older,
    view_arrays,
    write_mapped,
)

MAGIC = b"TESTMAP1"


def _arrays() -> dict[str, np.ndarray]:
    return {
        "days": np.array([1.5, np.nan, 3.0], dtype="<f8"),
        "alive": np.array([True, False, True], dtype="|b1"),
        "empty": np.zeros(0, dtype="<i4"),
        "grid": np.arange(6, dtype="<i8").reshape(2, 3),
    }


def test_arrays_come_back_as_written_each_at_an_aligned_offset(tmp_path: Path) -> None:
    arrays = _arrays()
    spec, size = layout_of(arrays)
    assert [entry["offset"] % ALIGN for entry in spec.values()] == [0] * len(arrays)
    assert spec["grid"] == {"dtype": "<i8", "shape": [2, 3], "offset": 2 * ALIGN}
    path = tmp_path / "file.bin"
    head = encode_header(MAGIC, {"arrays": spec, "note": "é"})
    assert len(head) % ALIGN == 0
    write_mapped(path, itertools.chain([head], padded(arrays.values())))
    assert path.stat().st_size == len(head) + size
    assert list(tmp_path.iterdir()) == [path]  # the temporary file was renamed
    mapped = map_file(path)
    decoded = decode_header(mapped, MAGIC)
    assert decoded is not None
    header, base = decoded
    assert base == len(head) and header["note"] == "é"
    found = view_arrays(mapped, header, base)
    assert list(found) == list(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(found[name], array)
        assert found[name].dtype == array.dtype and not found[name].flags.writeable
    assert decode_header(mapped, b"OTHERMAG") is None


def test_pieces_and_arrays_lay_out_alike() -> None:
    """An array given as bytes in pieces (how the lists write their records) takes the same
    place as the same bytes given as an array."""
    data = np.arange(100, dtype=np.uint8)
    whole = b"".join(padded([data]))
    assert whole == b"".join(padded([[data[:30].tobytes(), data[30:].tobytes()]]))
    assert len(whole) == layout({"x": ("|u1", [100])})[1] == 2 * ALIGN


def test_an_array_of_another_dtype_or_past_the_end_is_refused(tmp_path: Path) -> None:
    arrays = {"offsets": np.arange(4, dtype="<i8")}
    spec, _ = layout_of(arrays)
    path = tmp_path / "file.bin"
    write_mapped(
        path, itertools.chain([encode_header(MAGIC, {"arrays": spec})], padded([arrays["offsets"]]))
    )
    mapped = map_file(path)
    header, base = decode_header(mapped, MAGIC) or ({}, 0)
    assert view_arrays(mapped, header, base, {"offsets": "<i8"})["offsets"].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="dtype"):
        view_arrays(mapped, header, base, {"offsets": "<i4"})
    header["arrays"]["offsets"]["shape"] = [9]  # past the padding too
    with pytest.raises(ValueError, match="does not fit"):
        view_arrays(mapped, header, base)


def test_older_generations_are_removed(tmp_path: Path) -> None:
    name = re.compile(r"thing-(\d{3})\.bin")
    for generation in (1, 2, 3):
        (tmp_path / f"thing-{generation:03d}.bin").write_bytes(b"x")
    (tmp_path / "other-001.bin").write_bytes(b"x")
    remove_older(tmp_path, name, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other-001.bin",
        "thing-002.bin",
        "thing-003.bin",
    ]


def test_the_same_generation_under_another_name_and_folders(tmp_path: Path) -> None:
    """With ``written``, the generation's file under the other name goes too (an old index's
    answers-G.bin when precomputed-G.bin is written); a folder under such a name stays."""
    name = re.compile(r"(?:new|old)-(\d{3})\.bin")
    for file in ("old-002.bin", "new-002.bin", "new-003.bin"):
        (tmp_path / file).write_bytes(b"x")
    (tmp_path / "old-001.bin").mkdir()
    remove_older(tmp_path, name, 2, "new-002.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "new-002.bin",
        "new-003.bin",
        "old-001.bin",
    ]
