"""The recommend command through Typer's runner (fake encoder; the real one is end to end)."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
from pathlib import Path

import pytest
import typer.main
from conftest import SAMPLE
from typer.testing import CliRunner

from recommender.cli import app

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("fake_default_model")


@pytest.fixture
def index(tmp_path: Path) -> Path:
    path = tmp_path / "ix"
    result = runner.invoke(app, ["build-index", str(SAMPLE), "--index", str(path)])
    assert result.exit_code == 0, result.output
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_every_command_and_option_has_help() -> None:
    group = typer.main.get_command(app)
    names = sorted(group.commands)  # type: ignore[attr-defined]
    assert names == [
        "add",
        "block",
        "build-index",
        "check",
        "demo",
        "embed",
        "evaluate",
        "explain",
        "export-events",
        "hide",
        "info",
        "overrides",
        "pin",
        "precompute",
        "remove",
        "replicate",
        "report",
        "serve",
        "similar",
        "sync",
        "tune",
    ]
    for name in names:
        command = group.commands[name]  # type: ignore[attr-defined]
        assert command.help and command.help.strip(), name
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{name} {param.opts}"
            if param.param_type_name == "argument":
                assert param.help, f"{name} {param.name}"
        code, out, _ = run(name, "--help")
        assert code == 0 and "Usage" in out
    code, out, _ = run("--help")
    assert code == 0 and all(name in out for name in names)


def test_build_summary_line(tmp_path: Path) -> None:
    code, out, _ = run("build-index", str(SAMPLE), "--index", str(tmp_path / "ix"))
    assert code == 0
    assert out.startswith("indexed 338 articles from 338 records in ")
    assert "articles/s; index " in out and str(tmp_path / "ix") in out


def test_similar_text_and_json(index: Path) -> None:
    code, out, _ = run("similar", "a-2016", "--index", str(index), "-k", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "#",
        "score",
        "sim",
        "rec",
        "cat",
        "date",
        "category",
        "id",
        "title",
    ]
    assert len(lines) == 4
    code, out, _ = run("similar", "a-2016", "--index", str(index), "-k", "3", "--json")
    items = json.loads(out)
    assert len(items) == 3
    assert {"id", "score", "similarity", "recency_factor", "category_factor", "title"} <= set(
        items[0]
    )
    dated = [item["published_at"] for item in items if item["published_at"]]
    assert dated and all(value.endswith("Z") for value in dated)
    assert items[0]["score"] == pytest.approx(
        items[0]["similarity"] * items[0]["recency_factor"] * items[0]["category_factor"]
    )


def test_similar_options_reach_the_engine(index: Path) -> None:
    base = ["similar", "a-2016", "--index", str(index), "--json", "-k", "20"]
    items = json.loads(run(*base, "--no-recency", "--category-boost", "0")[1])
    assert {(i["recency_factor"], i["category_factor"]) for i in items} == {(1.0, 1.0)}
    items = json.loads(run(*base, "--same-category")[1])
    assert {i["category"] for i in items} == {"technology"}
    items = json.loads(run(*base, "--category", "sport", "--category", "culture")[1])
    assert {i["category"] for i in items} <= {"sport", "culture"}
    items = json.loads(run(*base, "--since", "2026-10-01", "--until", "2026-10-01")[1])
    assert items and {i["published_at"][:10] for i in items} == {"2026-10-01"}
    first = json.loads(run(*base)[1])[0]["id"]
    items = json.loads(run(*base, "--exclude", first)[1])
    assert first not in [i["id"] for i in items]


def test_similar_to_text_and_text_file(index: Path, tmp_path: Path) -> None:
    title = "Keltrix Systems discloses breach of payroll cloud platform"
    code, out, _ = run("similar", "--text", title, "--index", str(index), "--json", "-k", "1")
    assert code == 0 and json.loads(out)[0]["id"] == "a-2016"
    (tmp_path / "q.txt").write_text(title + "\n")
    code, out, _ = run("similar", "--text-file", str(tmp_path / "q.txt"), "-i", str(index))
    assert code == 0 and "a-2016" in out


def test_info(index: Path) -> None:
    code, out, _ = run("info", "--index", str(index))
    assert code == 0
    assert "articles      338 in 9 categories" in out
    assert "model         multilingual-e5-small-q4" in out  # auto: the sample is mixed
    assert "vector search flat (exact" in out  # 338 articles: below the graph's threshold
    assert "languages     en 323, az 5, ru 5, tr 5" in out.splitlines()
    lines = out.splitlines()
    assert (
        "categories    sport 43, world 42, politics 39, technology 39, business 38, science 34,"
        " environment 33, health 32, culture 29, 9 without one"
    ) in lines
    assert "overrides     pins 0, blocks 0, hidden 0" in lines
    data = json.loads(run("info", "--index", str(index), "--json")[1])
    assert data["articles"] == 338 and data["dimension"] == 256
    assert data["category_counts"]["sport"] == 43 and len(data["category_counts"]) == 9
    assert data["overrides"] == {"pins": 0, "blocks": 0, "hidden": 0}
    assert run("hide", "a-1012", "--index", str(index))[0] == 0
    code, out, _ = run("info", "--index", str(index))
    assert "overrides     pins 0, blocks 0, hidden 1" in out.splitlines()
    assert data["search"] == {"type": "flat"}


def test_info_shows_a_graph_search(tmp_path: Path) -> None:
    path = tmp_path / "graph"
    code, _, err = run("build-index", str(SAMPLE), "-i", str(path), "--vector-search", "hnsw")
    assert code == 0, err
    code, out, _ = run("info", "--index", str(path))
    assert "vector search hnsw (approximate graph search: M=32" in out
    assert run("similar", "a-2016", "-i", str(path))[0] == 0
    code, _, err = run("build-index", str(SAMPLE), "-i", str(path), "--vector-search", "ivf")
    assert code != 0 and "vector_search must be" in err


def test_index_from_environment(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOMMENDER_INDEX", str(index))
    code, out, _ = run("info")
    assert code == 0 and str(index) in out


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_an_unknown_choice_is_a_usage_error(index: Path) -> None:
    code, out, err = run("similar", "a-1001", "--recency-from", "later", "--index", str(index))
    assert code == 2 and out == ""
    assert "--recency-from" in err and "'query'" in err and "'now'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["similar", "nope"], "error: article 'nope' is not in index"),
        (["similar", "a-1001", "-k", "-2"], "error: k must be 0 or more"),
        (["similar", "a-1001", "--category", "spurt"], "error: category 'spurt' is not in index"),
        (
            ["similar", "a-1001", "--since", "2026-10-02", "--until", "2026-10-01"],
            "is after until",
        ),
        (["similar", "a-1001", "--lexical-weight", "2"], "lexical_weight must be between"),
        (["similar", "--text", "x", "--model", "other/model"], "not 'other/model'"),
    ],
)
def test_query_errors_are_one_line(index: Path, args: list[str], message: str) -> None:
    code, out, err = run(*args, "--index", str(index))
    assert code == 1 and out == ""
    assert err.startswith(message) or message in err
    assert len(err.strip().splitlines()) == 1


def test_missing_and_damaged_index(tmp_path: Path, index: Path) -> None:
    code, _, err = run("similar", "a-1", "--index", str(tmp_path / "none"))
    assert code == 1 and err.startswith("error: no index at")
    version = index / (index / "CURRENT").read_text().strip()
    (version / "seg-000001.faiss").chmod(0o644)  # written read-only
    (version / "seg-000001.faiss").write_bytes(b"junk")
    code, _, err = run("info", "--index", str(index))
    assert code == 1 and "is damaged: seg-000001.faiss has 4 bytes" in err


def test_unreadable_and_unknown_files(tmp_path: Path) -> None:
    code, _, err = run("build-index", str(tmp_path / "missing.jsonl"), "-i", str(tmp_path / "i"))
    assert code == 1 and err == f"error: cannot read {tmp_path / 'missing.jsonl'}: no such file\n"
    (tmp_path / "a.xml").write_text("<a/>")
    code, _, err = run("build-index", str(tmp_path / "a.xml"), "-i", str(tmp_path / "i"))
    assert code == 1 and "unknown file type" in err
    (tmp_path / "broken.jsonl.gz").write_bytes(b"not gzip at all")
    code, _, err = run("build-index", str(tmp_path / "broken.jsonl.gz"), "-i", str(tmp_path / "i"))
    assert code == 1 and err.startswith(f"error: cannot read {tmp_path / 'broken.jsonl.gz'}")


def test_bad_line_named_then_skipped(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "news.jsonl",
        [
            json.dumps({"id": 1, "title": "Ferry strike ends"}),
            json.dumps({"id": 2, "title": ["not", "a", "string"]}),
            json.dumps({"id": 3, "title": "Ferry strike talks resume"}),
            json.dumps({"id": 1, "title": "Ferry strike ends after deal"}),
        ],
    )
    code, out, err = run("build-index", str(source), "-i", str(tmp_path / "ix"))
    assert code == 1 and out == ""
    assert err.startswith(f"error: {source}:2: article '2': title must be a string, got a list")
    assert "--skip-invalid" in err
    code, out, _ = run("build-index", str(source), "-i", str(tmp_path / "ix"), "--skip-invalid")
    assert code == 0
    assert out.startswith(
        "indexed 2 articles from 4 records (1 invalid skipped; 1 duplicate ids, last kept)"
    )


def test_field_mapping_and_csv(tmp_path: Path) -> None:
    source = tmp_path / "cms.csv.gz"
    with gzip.open(source, "wt", encoding="utf-8", newline="") as handle:
        handle.write("article_id,headline,content,section\n")
        handle.write('7,Ferry strike ends,"<p>Workers &amp; owners agree.</p>",local\n')
        handle.write("8,Ferry strike talks resume,,local\n")
    index = tmp_path / "ix"
    code, _, err = run(
        "build-index",
        str(source),
        "-i",
        str(index),
        "--field",
        "id=article_id",
        "--field",
        "title=headline",
        "--field",
        "body=content",
        "--field",
        "category=section",
    )
    assert code == 0, err
    items = json.loads(run("similar", "7", "-i", str(index), "--json")[1])
    assert [(i["id"], i["category"]) for i in items] == [("8", "local")]
    code, _, err = run("build-index", str(source), "-i", str(index), "--field", "headline")
    assert code == 1 and "not of the form FIELD=COLUMN" in err


def test_exactly_one_query_is_required(index: Path) -> None:
    code, _, err = run("similar", "a-1001", "--text", "ferry", "--index", str(index))
    assert code == 2 and "exactly one of ID, --text or --text-file" in err
    code, _, _ = run("similar", "--index", str(index))
    assert code == 2


def test_add_and_remove_commands(index: Path, tmp_path: Path) -> None:
    original = {r["id"]: r for r in map(json.loads, SAMPLE.read_text().splitlines())}["a-2018"]
    news = write_lines(
        tmp_path / "news.jsonl",
        [
            json.dumps({"id": "n1", "title": "Keltrix breach reaches a second payroll client"}),
            json.dumps({"id": "a-2016", "title": "Keltrix discloses payroll platform breach"}),
            json.dumps({**original, "category": "business"}),  # same text, new section
        ],
    )
    code, out, err = run("add", str(news), "--index", str(index))
    assert code == 0, err
    assert out.startswith("added 1, replaced 1, updated fields of 1; embedded 2 in ")
    assert "articles      339 in 9 categories" in run("info", "-i", str(index))[1]
    item = json.loads(run("similar", "n1", "-i", str(index), "--json", "-k", "50")[1])
    assert "a-2016" in [i["id"] for i in item]
    (tmp_path / "gone.txt").write_text("n1\na-2018\n")
    code, out, _ = run("remove", "nope", "--from", str(tmp_path / "gone.txt"), "-i", str(index))
    assert code == 0 and out.startswith("removed 2; 1 not in the index")
    ids = [i["id"] for i in json.loads(run("similar", "a-2016", "-i", str(index), "--json")[1])]
    assert "n1" not in ids and "a-2018" not in ids
    code, _, err = run("similar", "n1", "-i", str(index))
    assert code == 1 and "not in index" in err
    code, _, err = run("remove", "-i", str(index))
    assert code == 2 and "give the ids to remove" in err


def test_a_second_writer_gets_one_clear_line(index: Path) -> None:
    from recommender.write.transaction import writer_lock

    with writer_lock(index):
        code, out, err = run("remove", "a-1001", "--index", str(index))
    assert code == 1 and out == ""
    assert err.startswith(f"error: index at {index} is being written by another process")
    assert err.strip().endswith("or pass --wait") and len(err.strip().splitlines()) == 1


# recommend tune -----------------------------------------------------------------------------

TUNED = (
    "lexical_weight",
    "lexical_weight_short",
    "neighbour_weight",
    "half_life_days",
    "recency_weight",
    "category_boost",
    "mmr_lambda",
)


def shown(value: object) -> str:
    """A setting as the tune table prints it."""
    if value is None:
        return "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def index_settings(index: Path) -> dict[str, object]:
    code, out, err = run("info", "--index", str(index), "--json")
    assert code == 0, err
    settings: dict[str, object] = json.loads(out)["settings"]
    return settings


def tune_table(out: str) -> dict[str, tuple[str, str, bool]]:
    """setting -> (old, new, marked changed) from the tune command's first table."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["setting", "old", "new"])
    table = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        name, old, new, *mark = line.split()
        table[name] = (old, new, mark == ["*"])
    return table


def test_tune_dry_run_text_and_json(index: Path) -> None:
    before = index_settings(index)
    base = ["tune", str(SAMPLE), "--index", str(index), "--label", "story", "--queries", "12"]
    code, out, err = run(*base, "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("8 tuning and 4 held-out queries, split by time: ")
    assert "tuned on queries published up to 2026-" in lines[0]
    table = tune_table(out)
    assert list(table) == list(TUNED)
    assert {name: old for name, (old, _, _) in table.items()} == {
        name: shown(before[name]) for name in TUNED
    }
    assert all(marked == (old != new) for old, new, marked in table.values())
    for what in ("tuning", "held out"):
        for metric in ("nDCG@10", "P@5", "MRR"):
            row = next(line for line in lines if line.startswith(f"{what} {metric} "))
            assert all(0.0 <= float(v) <= 1.0 for v in row.split()[-2:])
    assert lines[-1].startswith("not stored (--dry-run); held-out nDCG@10 ")
    assert index_settings(index) == before

    code, out, err = run(*base, "--dry-run", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {"old", "new", "stored", "gain", "split", "cutoff"} <= set(report)
    assert report["stored"] is False and report["split"] == "time"
    assert report["cutoff"].startswith("2026-")
    assert report["tuning_queries"] + report["held_out_queries"] == 12
    assert set(report["old"]) == set(report["new"]) == set(TUNED)
    assert report["gain"] == pytest.approx(
        report["new_held_out"]["ndcg_at_10"] - report["old_held_out"]["ndcg_at_10"]
    )
    # The text and the JSON tell of the same (seeded) run.
    assert {name: new for name, (_, new, _) in table.items()} == {
        name: shown(value) for name, value in report["new"].items()
    }
    assert lines[-1].endswith(f"{report['gain']:+.3f}")
    assert index_settings(index) == before


def test_tune_stores_or_keeps_as_it_says(index: Path) -> None:
    before = index_settings(index)
    code, out, err = run(
        "tune", str(SAMPLE), "--index", str(index), "--label", "story", "--queries", "12"
    )
    assert code == 0, err
    verdict = out.splitlines()[-1]
    table = tune_table(out)
    after = index_settings(index)
    if verdict.startswith(f"stored in {index}: held-out nDCG@10 +"):
        assert any(marked for _, _, marked in table.values())
        assert {name: shown(after[name]) for name in TUNED} == {
            name: new for name, (_, new, _) in table.items()
        }
        assert {k: v for k, v in after.items() if k not in TUNED} == {
            k: v for k, v in before.items() if k not in TUNED
        }
    else:
        assert verdict.startswith("kept the old settings: held-out nDCG@10 ")
        assert verdict.endswith("(needs +0.001 or more)")
        assert after == before
    # A second look starts from what the first one left.
    code, out, _ = run(
        "tune",
        str(SAMPLE),
        "-i",
        str(index),
        "--label",
        "story",
        "--queries",
        "12",
        "--json",
        "--dry-run",
    )
    assert code == 0
    assert json.loads(out)["old"] == {name: after[name] for name in TUNED}


def test_tune_keeps_a_small_gain(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("recommender.quality.tune.MIN_GAIN", 10.0)
    before = index_settings(index)
    code, out, err = run(
        "tune", str(SAMPLE), "--index", str(index), "--label", "story", "--queries", "12"
    )
    assert code == 0, err
    assert out.splitlines()[-1].startswith("kept the old settings: held-out nDCG@10 ")
    assert out.splitlines()[-1].endswith("(needs +10.000 or more)")
    assert index_settings(index) == before


def test_tune_from_pairs_csv(index: Path, tmp_path: Path) -> None:
    stories: dict[str, list[str]] = {}
    for record in map(json.loads, SAMPLE.read_text().splitlines()):
        stories.setdefault(record["story"], []).append(record["id"])
    pairs = tmp_path / "read-together.csv"
    from itertools import pairwise

    rows = ["first,second"]  # a header, then a chain of pairs through each story
    rows += [f"{a},{b}" for ids in stories.values() for a, b in pairwise(ids)]
    write_lines(pairs, rows)
    code, out, err = run(
        "tune",
        str(SAMPLE),
        "-i",
        str(index),
        "--label",
        str(pairs),
        "--queries",
        "10",
        "--dry-run",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["stored"] is False and report["split"] == "time"
    assert report["tuning_queries"] + report["held_out_queries"] == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "nosuchfield"], "error: no article in "),
        (["--label", "story", "--queries", "1"], "error: queries must be 2 or more, got 1"),
    ],
)
def test_tune_errors_are_one_line(index: Path, args: list[str], message: str) -> None:
    before = index_settings(index)
    code, out, err = run("tune", str(SAMPLE), "--index", str(index), *args)
    assert code == 1 and out == ""
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1
    assert index_settings(index) == before


def test_tune_without_an_index(tmp_path: Path) -> None:
    code, out, err = run("tune", str(SAMPLE), "-i", str(tmp_path / "none"), "--label", "story")
    assert code == 1 and out == "" and err.startswith("error: no index at")


def test_remove_from_keeps_ids_exactly(index: Path, tmp_path: Path) -> None:
    news = write_lines(
        tmp_path / "spaced.jsonl",
        [
            json.dumps({"id": " a-1001 ", "title": "A second article under a spaced id"}),
            json.dumps({"id": "tab end", "title": "An article with a space inside its id"}),
        ],
    )
    assert run("add", str(news), "--index", str(index))[0] == 0
    (tmp_path / "gone.txt").write_text(" a-1001 \r\n\n   \ntab end\n")
    code, out, _ = run("remove", "--from", str(tmp_path / "gone.txt"), "-i", str(index))
    assert code == 0 and out.startswith("removed 2; 0 not in the index")
    assert run("similar", "a-1001", "-i", str(index))[0] == 0  # the unspaced one stays


def test_table_output_shows_escape_sequences_escaped(index: Path, tmp_path: Path) -> None:
    hostile = "Keltrix breach\x1b[2J\x1b]0;pwned\x07 payroll \u202eevil"
    news = write_lines(
        tmp_path / "esc.jsonl",
        [
            json.dumps({"id": "esc", "title": hostile, "category": "tech\x1b[0m"}),
            json.dumps({"id": "plain", "title": "Keltrix breach payroll clients"}),
        ],
    )
    assert run("add", str(news), "--index", str(index))[0] == 0
    code, out, _ = run("similar", "plain", "-i", str(index), "-k", "50")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "tech\\x1b[0m" in out and "\\x1b[2J" in out and "\\u202e" in out
    code, out, _ = run("similar", "esc", "-i", str(index), "-k", "3")
    assert code == 0 and "\x1b" not in out
    code, out, _ = run("similar", "plain", "-i", str(index), "-k", "50", "--json")
    listed = {item["id"]: item for item in json.loads(out)}
    assert listed["esc"]["title"] == hostile  # JSON keeps the exact strings
    assert "\x1b" not in out  # escaped by JSON itself
    code, _, err = run("similar", "plain", "--category", "nope", "-i", str(index))
    assert code == 1 and "known:" in err and "\x1b" not in err


def test_check_reports_a_sound_index_and_each_problem(index: Path) -> None:
    code, out, _ = run("check", "--index", str(index))
    assert code == 0, out
    assert (
        f"index at {index} is sound: 338 articles, 338 rows (338 with a verified checksum)" in out
    )
    version = index / (index / "CURRENT").read_text().strip()
    with sqlite3.connect(version / "articles.sqlite") as db:
        db.execute("UPDATE articles SET title = 'Kelbrix' WHERE id = 'a-2021'")
    segment = version / "seg-000001.faiss"
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF
    segment.chmod(0o644)  # written read-only
    segment.write_bytes(bytes(data))
    code, out, err = run("check", "--index", str(index))
    assert code == 1
    assert "problem: article 'a-2021' (row " in out and "does not match its checksum" in out
    assert "its stored text does not match its content hash" in out
    assert "seg-000001.faiss does not match its checksum" in out
    assert "has 3 problem(s)" in err


# -- languages ----------------------------------------------------------------------------------


def test_similar_same_language(index: Path) -> None:
    code, out, _ = run("similar", "a-4003", "--index", str(index), "-k", "10", "--json")
    assert code == 0 and len({item["language"] for item in json.loads(out)}) > 1
    code, out, _ = run(
        "similar", "a-4003", "--index", str(index), "-k", "10", "--json", "--same-language"
    )
    items = json.loads(out)
    assert code == 0 and items and {item["language"] for item in items} == {"ru"}
    draft = "Orman yangını: Tavrin Dağları'nda 3 bin kişi tahliye edildi"
    base = ["similar", "--text", draft, "--index", str(index), "--json", "--same-language"]
    code, out, _ = run(*base)
    assert code == 0 and {item["language"] for item in json.loads(out)} == {"tr"}
    code, out, _ = run(*base, "--text-lang", "az")
    assert code == 0 and {item["language"] for item in json.loads(out)} == {"az"}
    code, out, _ = run(*base, "--text-lang", "aze")
    assert code == 0 and {item["language"] for item in json.loads(out)} == {"az"}


def test_info_counts_languages_and_names_codes_kept_as_given(tmp_path: Path) -> None:
    records = [
        {"id": "1", "title": "Storm closes the harbour", "lang": "eng"},
        {"id": "2", "title": "Harbour reopens after the storm", "lang": "en-GB"},
        {"id": "3", "title": "Fırtına limanı bağladı", "lang": "Azerbaijani"},
        {"id": "4", "title": "Storm news in a language of our own", "lang": "xx"},
        {"id": "5", "title": "2600 - 400 - 35"},  # nothing to detect a language from
    ]
    source = write_lines(tmp_path / "a.jsonl", [json.dumps(r) for r in records])
    path = tmp_path / "ix"
    assert run("build-index", str(source), "-i", str(path))[0] == 0
    code, out, _ = run("info", "-i", str(path))
    assert code == 0
    line = "languages     en 2, az 1, xx 1, 1 unknown (not language codes, kept as given: xx)"
    assert line in out.splitlines()
    data = json.loads(run("info", "-i", str(path), "--json")[1])
    assert data["languages"] == {"en": 2, "az": 1, "xx": 1}
    assert data["unrecognised_languages"] == ["xx"]


def test_letters_of_every_alphabet_reach_json_and_the_table(index: Path) -> None:
    """Cyrillic, Azerbaijani and Turkish letters through build, store, similar and output."""
    titles = {
        "a-4002": "Lirovada ilk metro xətti açıldı",
        "a-4003": "В Лирове открылась первая линия метро",
        "a-4004": "Lirova'da ilk metro hattı açıldı",
    }
    code, out, _ = run("similar", "a-4001", "--index", str(index), "-k", "5", "--json")
    assert code == 0
    found = {item["id"]: item for item in json.loads(out)}
    for article_id, title in titles.items():
        assert found[article_id]["title"] == title
    assert found["a-4002"]["source"] == "Zərif Xəbər" and found["a-4002"]["lang"] == "az"
    assert "\\u" not in out  # written as UTF-8, not escaped
    code, out, _ = run("similar", "a-4001", "--index", str(index), "-k", "5")
    assert code == 0
    for title in titles.values():
        assert title in out
    code, out, _ = run("similar", "a-4002", "--index", str(index), "-k", "3")
    assert code == 0 and "В Лирове открылась первая линия метро" in out


def test_add_threads_from_option_or_environment(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({"id": "t-1", "title": "Harbour cranes stand still"}) + "\n")
    monkeypatch.setenv("RECOMMENDER_WRITER_THREADS", "2")
    code, _, err = run("add", str(new), "-i", str(index))
    assert code == 0, err
    assert os.environ["OMP_NUM_THREADS"] == "2"
    code, _, err = run("add", str(new), "-i", str(index), "--threads", "1")
    assert code == 0, err
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert run("add", str(new), "-i", str(index), "--threads", "0")[0] != 0


def test_pin_block_hide_and_overrides(index: Path) -> None:
    ix = ("--index", str(index))
    code, out, err = run("similar", "a-1001", "--json", "-k", "3", *ix)
    assert code == 0, err
    first = json.loads(out)[0]["id"]
    assert run("pin", "a-1001", "a-1010", "--position", "2", *ix)[1].startswith("a-1010 pinned")
    assert run("block", "a-1001", first, *ix)[0] == 0
    assert run("hide", "a-1012", *ix)[0] == 0
    code, out, _ = run("overrides", "--json", *ix)
    assert json.loads(out) == [
        {"kind": "pin", "article_id": "a-1001", "related_id": "a-1010", "position": 2},
        {"kind": "block", "article_id": "a-1001", "related_id": first, "position": None},
        {"kind": "hide", "article_id": "a-1012", "related_id": None, "position": None},
    ]
    ids = [r["id"] for r in json.loads(run("similar", "a-1001", "--json", "-k", "3", *ix)[1])]
    assert ids[1] == "a-1010" and first not in ids and "a-1012" not in ids
    code, out, _ = run("overrides", *ix)
    assert out.splitlines()[0].split() == ["pin", "a-1001", "a-1010", "2"]
    for undo in (("pin", "a-1001", "a-1010"), ("block", "a-1001", first), ("hide", "a-1012")):
        assert run(*undo, "--undo", *ix)[0] == 0
    code, out, err = run("overrides", *ix)
    assert code == 0 and out == "" and "no overrides" in err


def test_overrides_errors_are_one_line(index: Path) -> None:
    code, _, err = run("pin", "a-1001", "nope", "--index", str(index))
    assert code != 0 and "nope" in err and "Traceback" not in err
    code, _, err = run("block", "a-1001", "a-1001", "--index", str(index))
    assert code != 0 and "itself" in err
    assert run("pin", "a-1001", "a-1002", "--position", "0", "--index", str(index))[0] == 2


def test_explain_prints_the_evidence_behind_each_related_article(index: Path) -> None:
    code, out, _ = run("explain", "a-1001", "--index", str(index), "-k", "3")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("evidence combined: learned (topic ")
    assert lines[1].split()[:7] == ["#", "score", "topic", "words", "names", "recency", "section"]
    places = [line for line in lines[2:] if not line.startswith(" " * 45)]
    assert [line.split()[0] for line in places] == ["1", "2", "3"]
    shared = [line.split("shares ", 1)[1] for line in lines[2:] if line.startswith(" " * 45)]
    assert shared and all(name for line in shared for name in line.split(", "))
    code, out, _ = run(
        "explain", "a-1001", "--index", str(index), "-k", "3", "--json", "--combination", "hand"
    )
    assert code == 0, out
    found = json.loads(out)
    assert len(found) == 3 and {item["combination"] for item in found} == {"hand"}
    for item in found:
        assert sum(item["evidence"].values()) == pytest.approx(item["similarity"])
    code, _, err = run("explain", "no-such-id", "--index", str(index))
    assert code == 1 and "no-such-id" in err
