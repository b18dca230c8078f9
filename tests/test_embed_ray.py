"""recommend embed --ray: the same job as a Ray Data job on a local Ray instance (2 CPUs).

The [cluster] extra is part of the test install (scripts/setup): these tests run in CI, they
are not skipped there. Ray workers are separate processes: the test encoders travel to them by
value (cloudpickle), since they cannot import the tests' modules.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE, SHARED_DATA, FakeEncoder
from typer.testing import CliRunner

from recommender import Recommender
from recommender.cli import app
from recommender.embedding.shards import embed_files
from recommender.embedding.supplied import read_vectors
from recommender.settings import MULTILINGUAL_MODEL

ray = pytest.importorskip("ray", reason='the [cluster] extra (pip install -e ".[cluster]")')

MODEL = "fake-bag-of-words"
runner = CliRunner()


# -- with the real models, through the command line (first: each starts its own Ray) -------


def _compare_with_plain_build(files: list[Path], tmp_path: Path, shard_size: int) -> None:
    """recommend embed --ray local, then build-index --vectors: the index equals a plain
    build-index of the same files (same ids, vectors within float16 rounding, same lists)."""
    out = tmp_path / "vectors"
    embedded = runner.invoke(
        app,
        [
            "embed",
            *map(str, files),
            "--out",
            str(out),
            "--ray",
            "local",
            "--shard-size",
            str(shard_size),
        ],
    )
    assert embedded.exit_code == 0, embedded.output
    assert "(ray local)" in embedded.output
    from_shards = runner.invoke(
        app,
        [
            "build-index",
            *map(str, files),
            "--index",
            str(tmp_path / "from-shards"),
            "--vectors",
            str(out),
            "--missing-vectors",
            "refuse",
        ],
    )
    assert from_shards.exit_code == 0, from_shards.output
    assert "0 embedded here" in from_shards.output
    plain = runner.invoke(
        app, ["build-index", *map(str, files), "--index", str(tmp_path / "plain")]
    )
    assert plain.exit_code == 0, plain.output
    with (
        Recommender.open(tmp_path / "plain") as one,
        Recommender.open(tmp_path / "from-shards") as other,
    ):
        assert one.manifest.model == other.manifest.model
        ids = sorted(one.snapshot.columns.row_of)
        assert ids == sorted(other.snapshot.columns.row_of)
        rows_one = np.array([one.snapshot.row(i) for i in ids])
        rows_other = np.array([other.snapshot.row(i) for i in ids])
        vectors_one = one.snapshot.vectors(rows_one).astype(np.float32)
        vectors_other = other.snapshot.vectors(rows_other).astype(np.float32)
        lists_one = {i: [r.id for r in one.similar(i)] for i in ids}
        lists_other = {i: [r.id for r in other.similar(i)] for i in ids}
        if one.manifest.model == MULTILINGUAL_MODEL:
            # Its runner scales activations per batch (e5onnx: int8): a text's vector moves a
            # little with the texts embedded beside it, and shards batch them otherwise.
            cosines = np.einsum("ij,ij->i", vectors_one, vectors_other)
            assert cosines.min() >= 0.99
            shared = [len(set(lists_one[i]) & set(lists_other[i])) for i in ids]
            assert sum(shared) >= 0.95 * sum(len(lists_one[i]) for i in ids)
            return
        difference = np.abs(vectors_one - vectors_other)
        assert difference.max() <= 2e-3  # float16 keeps ~3 decimal digits of values below 1
        different = [i for i in ids if lists_one[i] != lists_other[i]]
        assert not different, different[:5]


@pytest.mark.model
def test_sample_embedded_on_ray_builds_the_plain_index(tmp_path: Path) -> None:
    _compare_with_plain_build([SAMPLE], tmp_path, shard_size=100)


ECB = SHARED_DATA / "ecbplus-dev" / "articles.jsonl.gz"


@pytest.mark.model
@pytest.mark.skipif(not ECB.exists(), reason=f"{ECB} is not here")
def test_ecbplus_embedded_on_ray_builds_the_plain_index(tmp_path: Path) -> None:
    # The ground truth never reaches the engine: the copy it reads has no story field.
    copy = tmp_path / "ecbplus.jsonl"
    with gzip.open(ECB, "rt", encoding="utf-8") as source:
        copy.write_text(
            "".join(
                json.dumps({k: v for k, v in json.loads(line).items() if k != "story"}) + "\n"
                for line in source
            ),
            encoding="utf-8",
        )
    _compare_with_plain_build([copy], tmp_path, shard_size=150)


# -- with a test encoder, on one Ray instance for the module ---------------------------------


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import conftest

    ray.cloudpickle.register_pickle_by_value(conftest)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, object_store_memory=256 * 1024**2, include_dashboard=False)
    yield
    ray.shutdown()


class CrashesOnce:
    """An encoder whose process dies (as a lost node would) the first time it embeds the shard
    holding ``article``: Ray must restart the worker and run that shard again."""

    def __init__(self, marker: str, text: str) -> None:
        self.marker, self.text = marker, text
        self.inner = FakeEncoder()
        self.name, self.dimension = self.inner.name, self.inner.dimension

    def encode(self, texts: list[str]) -> np.ndarray:
        if any(self.text in t for t in texts) and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return self.inner.encode(texts)


@pytest.mark.usefixtures("local_ray")
def test_ray_writes_what_this_process_writes(tmp_path: Path) -> None:
    options = {"model": MODEL, "encoder_factory": FakeEncoder, "shard_size": 60}
    here = embed_files([SAMPLE], tmp_path / "here", **options)  # type: ignore[arg-type]
    on_ray = embed_files([SAMPLE], tmp_path / "ray", ray="local", workers=2, **options)  # type: ignore[arg-type]
    assert on_ray.runner == "ray local" and on_ray.embedded == 338 and on_ray.shards == 6
    assert sorted(p.name for p in (tmp_path / "here").glob("shard-*")) == sorted(
        p.name for p in (tmp_path / "ray").glob("shard-*")
    )
    one, other = read_vectors(tmp_path / "here"), read_vectors(tmp_path / "ray")
    assert one.ids == other.ids and one.hashes == other.hashes
    np.testing.assert_array_equal(one.vectors, other.vectors)
    assert here.shards == on_ray.shards


@pytest.mark.usefixtures("local_ray")
def test_a_shard_whose_worker_dies_is_retried_by_ray(tmp_path: Path) -> None:
    marker = tmp_path / "died"
    report = embed_files(
        [SAMPLE],
        tmp_path / "v",
        model=MODEL,
        encoder_factory=lambda: CrashesOnce(str(marker), "Valdoria"),
        shard_size=100,
        ray="local",
        workers=2,
    )
    assert marker.exists()  # a worker did die ...
    assert report.embedded == 338  # ... and its shard was embedded again
    assert len(read_vectors(tmp_path / "v").ids) == 338


@pytest.mark.usefixtures("local_ray")
def test_a_rerun_on_ray_embeds_only_unfinished_shards(tmp_path: Path) -> None:
    options = {"model": MODEL, "encoder_factory": FakeEncoder, "shard_size": 100}
    embed_files([SAMPLE], tmp_path / "v", **options)  # type: ignore[arg-type]
    first = sorted((tmp_path / "v").glob("shard-*"))
    first[1].unlink()
    report = embed_files([SAMPLE], tmp_path / "v", ray="local", **options)  # type: ignore[arg-type]
    assert (report.shards_done_before, report.embedded) == (3, 100)
