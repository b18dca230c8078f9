"""recommend embed: shards of vectors made here or by Ray, and builds from them (--vectors DIR)."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, FakeEncoder, sample_records
from typer.testing import CliRunner

from recommender import Recommender, SuppliedVectorsError
from recommender.cli import app
from recommender.embedding.encode import register_encoder
from recommender.embedding.shards import EmbedError, embed_files, plan_shards
from recommender.embedding.supplied import read_vectors
from recommender.errors import InvalidArticlesError

MODEL = "fake-bag-of-words"
runner = CliRunner()


def _embed(out: Path, files: list[Path] | None = None, **options: object) -> object:
    options.setdefault("model", MODEL)
    options.setdefault("encoder_factory", FakeEncoder)
    options.setdefault("shard_size", 100)
    return embed_files(files or [SAMPLE], out, **options)  # type: ignore[arg-type]


def _shards(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("shard-*.parquet"))


def _write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_shards_hold_every_article_once_with_hash_and_model(tmp_path: Path) -> None:
    report = _embed(tmp_path / "v")
    assert (report.articles, report.shards, report.embedded) == (338, 4, 338)  # type: ignore[attr-defined]
    assert len(_shards(tmp_path / "v")) == 4
    supplied = read_vectors(tmp_path / "v")
    assert supplied.model == MODEL and supplied.dimension == 256
    assert supplied.ids == [str(r["id"]) for r in sample_records()]
    summary = json.loads((tmp_path / "v" / "embed.json").read_text())
    assert summary["model"] == MODEL and summary["articles"] == 338 and len(summary["shards"]) == 4


def test_a_build_from_the_shards_equals_a_plain_build(tmp_path: Path) -> None:
    _embed(tmp_path / "v")
    plain = Recommender.build_from_files([SAMPLE], tmp_path / "plain", encoder=FakeEncoder())
    counting = FakeEncoder()
    built = Recommender.build_from_files(
        [SAMPLE],
        tmp_path / "from-shards",
        encoder=counting,
        vectors=tmp_path / "v",
        missing_vectors="refuse",
    )
    assert counting.texts_encoded == 0
    assert (built.supplied, built.embedded, built.stale, built.without_vector) == (338, 0, 0, 0)
    assert plain.articles == built.articles
    with (
        Recommender.open(tmp_path / "plain") as one,
        Recommender.open(tmp_path / "from-shards") as other,
    ):
        for article_id in ("a-1001", "a-1101", "a-3033", "a-4020"):
            assert [r.id for r in one.similar(article_id)] == [
                r.id for r in other.similar(article_id)
            ]


def test_a_rerun_embeds_only_what_changed(tmp_path: Path) -> None:
    records = sample_records()
    files = [_write_jsonl(tmp_path / "a.jsonl", records)]
    _embed(tmp_path / "v", files)
    before = _shards(tmp_path / "v")
    again = _embed(tmp_path / "v", files)
    assert (again.shards_done_before, again.embedded) == (4, 0)  # type: ignore[attr-defined]
    records[150]["title"] = "A new headline for the second shard"
    _write_jsonl(files[0], records)
    counting = FakeEncoder()
    changed = _embed(tmp_path / "v", files, encoder_factory=lambda: counting)
    assert (changed.shards_done_before, changed.embedded) == (3, 100)  # type: ignore[attr-defined]
    after = _shards(tmp_path / "v")
    assert len(after) == 4 and len(set(before) & set(after)) == 3  # the old second shard: gone
    Recommender.build_from_files(
        files,
        tmp_path / "ix",
        encoder=FakeEncoder(),
        vectors=tmp_path / "v",
        missing_vectors="refuse",
    )


class _FailsAt:
    """An encoder that fails on the n-th shard it embeds (a worker dying, a kill)."""

    def __init__(self, shard: int) -> None:
        self.left = shard
        self.inner = FakeEncoder()
        self.name, self.dimension = self.inner.name, self.inner.dimension

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.inner.encode(texts)


def test_an_interrupted_job_keeps_its_finished_shards(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _embed(tmp_path / "v", encoder_factory=lambda: _FailsAt(2))
    assert len(_shards(tmp_path / "v")) == 2
    leftover = tmp_path / "v" / f".{_shard_names()[2]}.tmp"  # as a kill mid-write leaves it
    leftover.write_bytes(b"half a file")
    counting = FakeEncoder()
    report = _embed(tmp_path / "v", encoder_factory=lambda: counting)
    assert (report.shards_done_before, report.embedded) == (2, 138)  # type: ignore[attr-defined]
    assert counting.texts_encoded == 138
    assert not list((tmp_path / "v").glob(".shard-*"))  # the leftover temporary file
    assert len(read_vectors(tmp_path / "v").ids) == 338


def test_a_damaged_shard_is_embedded_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _embed(tmp_path / "v")
    damaged = tmp_path / "v" / _shards(tmp_path / "v")[1]
    damaged.write_bytes(damaged.read_bytes()[:500])
    with caplog.at_level(logging.WARNING, logger="recommender"):
        report = _embed(tmp_path / "v")
    assert (report.shards_done_before, report.embedded) == (3, 100)  # type: ignore[attr-defined]
    assert len(read_vectors(tmp_path / "v").ids) == 338
    assert [r.name for r in caplog.records] == ["recommender.embedding.shards"]
    assert f"shard {damaged} cannot be read" in caplog.records[0].getMessage()


def test_shard_names_depend_on_model_cut_and_content() -> None:
    from recommender.articles import read_articles

    articles = read_articles([SAMPLE]).articles
    base = plan_shards(articles, model="m", max_body_chars=1000, shard_size=100)
    assert [s.name for s in base] == [
        s.name for s in plan_shards(articles, model="m", max_body_chars=1000, shard_size=100)
    ]
    for other in (
        plan_shards(articles, model="n", max_body_chars=1000, shard_size=100),
        plan_shards(articles, model="m", max_body_chars=10, shard_size=100),
    ):
        assert not {s.name for s in base} & {s.name for s in other}
    with pytest.raises(ValueError):
        plan_shards(articles, model="m", max_body_chars=1000, shard_size=0)


def test_invalid_records_fail_naming_the_line_unless_skipped(tmp_path: Path) -> None:
    records: list[dict[str, object]] = [{"id": "a", "title": "Quake"}, {"id": "b"}]
    files = [_write_jsonl(tmp_path / "a.jsonl", [*records, {"id": "c", "title": "Flood"}])]
    with pytest.raises(InvalidArticlesError, match=r"a\.jsonl:2: article 'b'"):
        _embed(tmp_path / "v", files)
    assert not _shards(tmp_path / "v")
    report = _embed(tmp_path / "v", files, skip_invalid=True)
    assert (report.articles, report.skipped) == (2, 1)  # type: ignore[attr-defined]


def test_duplicate_ids_last_wins_as_in_a_build(tmp_path: Path) -> None:
    records: list[dict[str, object]] = [
        {"id": "a", "title": "Old quake headline"},
        {"id": "b", "title": "Flood"},
        {"id": "a", "title": "New quake headline"},
    ]
    files = [_write_jsonl(tmp_path / "a.jsonl", records)]
    report = _embed(tmp_path / "v", files)
    assert (report.articles, report.duplicates) == (2, 1)  # type: ignore[attr-defined]
    built = Recommender.build_from_files(
        files,
        tmp_path / "ix",
        encoder=FakeEncoder(),
        vectors=tmp_path / "v",
        missing_vectors="refuse",
    )
    assert built.supplied == 2


def test_the_output_must_be_a_folder_and_one_job_at_a_time(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(EmbedError, match="not a folder"):
        _embed(tmp_path / "file")
    (tmp_path / "v").mkdir()
    fd = os.open(tmp_path / "v" / ".embed-lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(EmbedError, match="another embedding job"):
            _embed(tmp_path / "v")
    finally:
        os.close(fd)


def test_an_output_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(EmbedError, match=r"cannot write shards to .*not a directory"):
        _embed(tmp_path / "file" / "v")


def test_a_full_disk_keeps_the_finished_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recommender.embedding.shards as embed

    real = embed.write_shard
    written: list[int] = []

    def fills_up(path: Path, shard: embed.Shard, model: str, vectors: np.ndarray) -> None:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(shard.number)
        real(path, shard, model, vectors)

    monkeypatch.setattr(embed, "write_shard", fills_up)
    with pytest.raises(EmbedError, match="disk full; the shards finished so far are kept"):
        _embed(tmp_path / "v")
    monkeypatch.setattr(embed, "write_shard", real)
    assert _embed(tmp_path / "v").shards_done_before == 1  # type: ignore[attr-defined]


def test_other_files_in_the_folder_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "notes.txt").write_text("mine")
    _embed(tmp_path / "v")
    assert (tmp_path / "v" / "notes.txt").read_text() == "mine"


def _contents(folder: Path) -> dict[str, str]:
    """Each entry of ``folder`` (symbolic links not followed) and what it is or holds."""
    seen = {}
    for path in sorted(folder.iterdir()):
        if path.is_symlink():
            seen[path.name] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            seen[path.name] = "folder"
        elif path.is_file():
            seen[path.name] = path.read_bytes().hex()
        else:
            seen[path.name] = "pipe"
    return seen


def _shard_names(shard_size: int = 100) -> list[str]:
    from recommender.articles import read_articles

    articles = read_articles([SAMPLE]).articles
    return [
        s.name
        for s in plan_shards(articles, model=MODEL, max_body_chars=1000, shard_size=shard_size)
    ]


def test_files_named_like_shards_that_it_did_not_write_are_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "v"
    out.mkdir()
    (tmp_path / "target.txt").write_text("the link's target")
    (out / "shard-notes.txt").write_text("mine")
    (out / ".shard-notes").write_text("mine too")
    (out / ".shard-00001-0000.parquet.tmp").write_text("not this module's name")
    (out / "shard-00000-0123456789abcdef.parquet.bak").write_text("a copy")
    pq.write_table(pa.table({"a": [1, 2]}), out / "shard-mine.parquet")  # the user's Parquet
    pq.write_table(pa.table({"a": [1, 2]}), out / "shard-00009-0123456789abcdef.parquet")
    (out / "shard-00008-0123456789abcdef.parquet").mkdir()
    (out / "shard-00008-0123456789abcdef.parquet" / "inside.txt").write_text("kept")
    (out / "shard-link").symlink_to(tmp_path / "target.txt")
    (out / "shard-00007-0123456789abcdef.parquet").symlink_to(tmp_path / "target.txt")
    (out / ".shard-00006-0123456789abcdef.parquet.tmp").symlink_to(tmp_path / "target.txt")
    before = _contents(out)
    _embed(out)
    after = _contents(out)
    assert {name: after.get(name) for name in before} == before
    assert (tmp_path / "target.txt").read_text() == "the link's target"
    assert set(after) - set(before) == {*_shard_names(), "embed.json", ".embed-lock"}


def test_shards_of_another_run_are_deleted_with_or_without_its_summary(tmp_path: Path) -> None:
    records = sample_records()
    files = [_write_jsonl(tmp_path / "a.jsonl", records)]
    _embed(tmp_path / "v", files)
    first = set(_shards(tmp_path / "v"))
    (tmp_path / "v" / "embed.json").unlink()  # as after a run killed before it wrote one
    records[5]["title"] = "A new headline for the first shard"
    _write_jsonl(files[0], records)
    _embed(tmp_path / "v", files)
    second = set(_shards(tmp_path / "v"))
    assert len(second) == 4 and len(first & second) == 3  # the old first shard: its, deleted
    records[5]["title"] = "Yet another headline for the first shard"
    _write_jsonl(files[0], records)
    _embed(tmp_path / "v", files)  # listed in its embed.json this time
    assert len(set(_shards(tmp_path / "v")) & second) == 3


def test_an_embed_json_of_an_earlier_version_is_its_own(tmp_path: Path) -> None:
    _embed(tmp_path / "v")
    summary = json.loads((tmp_path / "v" / "embed.json").read_text())
    del summary["written_by"]  # versions before it wrote that key
    (tmp_path / "v" / "embed.json").write_text(json.dumps(summary))
    damaged = tmp_path / "v" / _shards(tmp_path / "v")[0]
    damaged.write_bytes(b"PAR1")  # listed there: its own, embedded again
    report = _embed(tmp_path / "v")
    assert (report.shards_done_before, report.embedded) == (3, 100)  # type: ignore[attr-defined]
    assert json.loads((tmp_path / "v" / "embed.json").read_text())["written_by"]


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        ("not json", "embed.json is not a summary this command wrote (not JSON)"),
        ('{"notes": "mine"}', "embed.json is not a summary this command wrote"),
        ('{"model": "m", "shards": ["../etc/passwd"]}', "is not a summary this command wrote"),
        ("[1, 2]", "embed.json is not a summary this command wrote"),
        ("folder", "embed.json is not a plain file (a folder)"),
        ("link", "embed.json is not a plain file (a symbolic link)"),
        ("pipe", "embed.json is not a plain file (a device or pipe)"),
    ],
)
def test_an_embed_json_it_did_not_write_is_refused(
    tmp_path: Path, summary: str, message: str
) -> None:
    out = tmp_path / "v"
    out.mkdir()
    (tmp_path / "target.txt").write_text("the link's target")
    if summary == "folder":
        (out / "embed.json").mkdir()
    elif summary == "link":
        (out / "embed.json").symlink_to(tmp_path / "target.txt")
    elif summary == "pipe":
        os.mkfifo(out / "embed.json")  # never opened: reading it would wait forever
    else:
        (out / "embed.json").write_text(summary)
    (out / "shard-notes.txt").write_text("mine")
    before = _contents(out)
    with pytest.raises(EmbedError, match=re.escape(message)) as refused:
        _embed(out)
    assert str(out / "embed.json") in str(refused.value)
    assert "\n" not in str(refused.value)
    assert _contents(out) == before  # nothing written, not even the lock
    assert (tmp_path / "target.txt").read_text() == "the link's target"


@pytest.mark.parametrize("kind", ["file", "folder", "link"])
def test_something_where_a_shard_must_go_is_refused(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "v"
    out.mkdir()
    (tmp_path / "target.txt").write_text("the link's target")
    in_the_way = out / _shard_names()[1]
    if kind == "file":
        in_the_way.write_text("my notes")
    elif kind == "folder":
        in_the_way.mkdir()
    else:
        in_the_way.symlink_to(tmp_path / "target.txt")
    before = _contents(out)
    with pytest.raises(EmbedError, match="1 file in the way") as refused:
        _embed(out)
    assert str(in_the_way) in str(refused.value) and "nothing was changed" in str(refused.value)
    assert _contents(out) == before
    assert (tmp_path / "target.txt").read_text() == "the link's target"


@pytest.mark.usefixtures("fake_model")
def test_cli_embed_leaves_the_users_files_and_refuses_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "shard-notes.txt").write_text("mine\n")
    articles = _write_jsonl(tmp_path / "a.jsonl", sample_records()[:10])
    result = runner.invoke(app, ["embed", str(articles), "--out", str(out), "--model", MODEL])
    assert result.exit_code == 0, result.output
    assert (out / "shard-notes.txt").read_text() == "mine\n"
    (out / "embed.json").write_text('{"mine": true}\n')
    refused = runner.invoke(app, ["embed", str(articles), "--out", str(out), "--model", MODEL])
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) == 1
    assert (out / "embed.json").read_text() == '{"mine": true}\n'


def test_missing_vectors_refuse_counts_each_kind_and_writes_nothing(tmp_path: Path) -> None:
    records = sample_records()
    files = [_write_jsonl(tmp_path / "a.jsonl", records[:100])]
    _embed(tmp_path / "v", files)
    records[3]["title"] = "A headline changed after embedding"
    bigger = [_write_jsonl(tmp_path / "b.jsonl", records[:120])]
    with pytest.raises(
        SuppliedVectorsError, match=r"21 articles .* 20 have no vector .* 1 have a stale"
    ):
        Recommender.build_from_files(
            bigger,
            tmp_path / "ix",
            encoder=FakeEncoder(),
            vectors=tmp_path / "v",
            missing_vectors="refuse",
        )
    assert not (tmp_path / "ix" / "CURRENT").exists()
    report = Recommender.build_from_files(
        bigger, tmp_path / "ix", encoder=FakeEncoder(), vectors=tmp_path / "v"
    )
    assert (report.supplied, report.stale, report.without_vector, report.embedded) == (
        99,
        1,
        20,
        21,
    )


def test_add_with_missing_vectors_refuse(tmp_path: Path) -> None:
    records = sample_records()
    Recommender.build_from_files(
        [_write_jsonl(tmp_path / "a.jsonl", records[:100])], tmp_path / "ix", encoder=FakeEncoder()
    )
    new = [_write_jsonl(tmp_path / "b.jsonl", records[100:130])]
    _embed(tmp_path / "v", [_write_jsonl(tmp_path / "c.jsonl", records[100:120])])
    with Recommender.open(tmp_path / "ix", encoder=FakeEncoder()) as rec:
        with pytest.raises(SuppliedVectorsError, match="10 have no vector"):
            rec.add_from_files(new, vectors=tmp_path / "v", missing_vectors="refuse")
        assert rec.info().articles == 100
        report = rec.add_from_files(new, vectors=tmp_path / "v")
    assert (report.added, report.supplied, report.without_vector, report.embedded) == (
        30,
        20,
        10,
        10,
    )


@pytest.fixture
def fake_model() -> Iterator[None]:
    register_encoder(MODEL, FakeEncoder)
    yield
    register_encoder(MODEL, None)


@pytest.mark.usefixtures("fake_model")
def test_cli_embed_then_build_from_the_shards(tmp_path: Path) -> None:
    out = tmp_path / "v"
    result = runner.invoke(
        app, ["embed", str(SAMPLE), "--out", str(out), "--model", MODEL, "--shard-size", "200"]
    )
    assert result.exit_code == 0, result.output
    assert "embedded 338 of 338 articles" in result.output and "2 shards" in result.output
    again = runner.invoke(
        app, ["embed", str(SAMPLE), "--out", str(out), "--model", MODEL, "--shard-size", "200"]
    )
    assert "embedded 0 of 338" in again.output and "2 shards finished before" in again.output
    built = runner.invoke(
        app,
        [
            "build-index",
            str(SAMPLE),
            "--index",
            str(tmp_path / "ix"),
            "--vectors",
            str(out),
            "--missing-vectors",
            "refuse",
        ],
    )
    assert built.exit_code == 0, built.output
    assert "338 vectors supplied" in built.output and "0 embedded here" in built.output
    assert "--missing-vectors" in runner.invoke(app, ["build-index", "--help"]).output


def test_cli_embed_help_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = runner.invoke(app, ["embed", "--help"])
    assert shown.exit_code == 0
    for option in (
        "--out",
        "--ray",
        "--model",
        "--field",
        "--shard-size",
        "--workers",
        "--batch-size",
    ):
        assert option in shown.output
    missing = runner.invoke(
        app, ["embed", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "v")]
    )
    assert missing.exit_code != 0 and "no such file" in missing.output
    assert "Traceback" not in missing.output
    for option, value in (
        ("--shard-size", "0"),
        ("--workers", "0"),
        ("--cpus-per-worker", "0"),
        ("--batch-size", "-1"),
        ("--max-body-chars", "-5"),
        ("--gpus-per-worker", "-1"),
    ):
        odd = runner.invoke(
            app, ["embed", str(SAMPLE), "--out", str(tmp_path / "v"), option, value]
        )
        assert odd.exit_code == 2 and option in odd.output, (option, odd.output)
    assert not (tmp_path / "v").exists()
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [cluster] extra were not installed
    no_ray = runner.invoke(
        app,
        ["embed", str(SAMPLE), "--out", str(tmp_path / "v"), "--model", MODEL, "--ray", "local"],
    )
    assert no_ray.exit_code != 0 and "pip install" in no_ray.output and "[cluster]" in no_ray.output


def test_a_shard_is_parquet_with_the_four_columns(tmp_path: Path) -> None:
    _embed(tmp_path / "v")
    table = pq.read_table(tmp_path / "v" / _shards(tmp_path / "v")[0])
    assert table.column_names == ["id", "content_hash", "model", "vector"]
    vectors = np.array(table.column("vector").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_an_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already up in this process")
    with pytest.raises(EmbedError, match="cannot reach the Ray cluster"):
        _embed(tmp_path / "v", ray="auto")  # no `ray start` on this machine


KILLED_JOB = """
import sys, time
sys.path.insert(0, {tests!r})
from conftest import SAMPLE, FakeEncoder
from recommender.embedding.shards import embed_files

class Slow(FakeEncoder):
    def encode(self, texts):
        time.sleep(0.3)
        return super().encode(texts)

embed_files([SAMPLE], {out!r}, model="fake-bag-of-words", encoder_factory=Slow, shard_size=20)
"""


def test_a_job_killed_mid_write_leaves_whole_shards_and_resumes(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    out = tmp_path / "v"
    script = KILLED_JOB.format(tests=str(Path(__file__).parent), out=str(out))
    job = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while len(_shards(out) if out.is_dir() else []) < 3 and time.monotonic() < deadline:
            assert job.poll() is None, "the job ended before it was killed"
            time.sleep(0.05)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    finished = _shards(out)
    assert 3 <= len(finished) < 17
    for name in finished:  # every file there is whole
        assert pq.read_metadata(out / name).num_rows == 20
    report = _embed(out, shard_size=20)
    assert report.shards_done_before == len(finished)  # type: ignore[attr-defined]
    assert report.embedded == 338 - 20 * len(finished)  # type: ignore[attr-defined]
    assert len(read_vectors(out).ids) == 338


def test_a_folder_with_its_embed_json_is_read_as_the_shards_it_names(tmp_path: Path) -> None:
    """Parquet files of the user's beside the shards (which embed leaves alone) are not read
    as vectors; a shard the summary names that is gone is a clear refusal."""
    out = tmp_path / "v"
    _embed(out)
    mine = pq.read_table(out / _shards(out)[0]).slice(0, 5)
    pq.write_table(mine, out / "my-copy-of-a-few.parquet")  # the same ids again
    supplied = read_vectors(out)
    assert supplied.ids == [str(r["id"]) for r in sample_records()]
    (out / _shards(out)[1]).unlink()
    with pytest.raises(SuppliedVectorsError, match=r"names 1 shards that are not there"):
        read_vectors(out)
    (out / "embed.json").unlink()  # a folder without a summary: every Parquet file in it
    with pytest.raises(SuppliedVectorsError, match=r"5 ids have more than one row"):
        read_vectors(out)
