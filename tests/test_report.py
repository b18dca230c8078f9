"""recommend report (quality/report.py) and recommend export-events (quality/export.py): exact
figures on a known set of events, --since, the --json shape, the Parquet table."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recommender.cli import app
from recommender.errors import InvalidQueryError
from recommender.events import Click, Event, View
from recommender.quality.report import parse_since, report_of
from recommender.storage.events import append_events

NOW = datetime.now(UTC).replace(microsecond=0)
DAY1 = NOW - timedelta(days=3)
DAY2 = NOW - timedelta(days=1)

EVENTS: list[Event] = [
    View("v1", "a", ("b", "c", "d"), DAY1, section="world", language="az"),
    Click("v1", "c", 1, DAY1),
    View("v2", "a", ("b", "c", "d"), DAY1, section="world", language="ru", swapped=0),
    Click("v2", "b", 0, DAY1),
    Click("v2", "b", 0, DAY1 + timedelta(seconds=3)),  # sent twice: counted once
    Click("v2", "d", 2, DAY1),
    View("v3", "x", ("y", "z"), DAY2, ranking="fresh", teams=("a", "b")),
    View("v3", "x", ("y", "z"), DAY2),  # the same view again
    View("v4", "x", ("y", "z"), DAY2, section="sport", language="az"),
    Click("v4", "z", 1, DAY2),
    Click("v0", "q", 0, DAY2),  # its view is not among them
]


def test_the_figures_of_a_known_set() -> None:
    report = report_of(EVENTS, damaged=2)
    assert (report.views, report.clicks) == (4, 5)
    assert report.click_through == 1.25
    assert (report.explored, report.interleaved) == (1, 1)
    assert (report.clicks_without_view, report.duplicates, report.damaged) == (1, 2, 2)
    data = report.as_json()
    assert data["by_position"] == [
        {"position": 0, "views": 4, "clicks": 2, "click_through": 0.5},
        {"position": 1, "views": 4, "clicks": 2, "click_through": 0.5},
        {"position": 2, "views": 2, "clicks": 1, "click_through": 0.5},
    ]
    assert data["by_section"] == [
        {"section": "world", "views": 2, "clicks": 3, "click_through": 1.5},
        {"section": "sport", "views": 1, "clicks": 1, "click_through": 1.0},
        {"section": None, "views": 1, "clicks": 1, "click_through": 1.0},
    ]
    assert data["by_language"] == [
        {"language": "az", "views": 2, "clicks": 2, "click_through": 1.0},
        {"language": "ru", "views": 1, "clicks": 2, "click_through": 2.0},
        {"language": None, "views": 1, "clicks": 1, "click_through": 1.0},
    ]
    assert data["by_ranking"] == [
        {"ranking": "default", "views": 3, "clicks": 4, "click_through": 1.333333},
        {"ranking": "fresh", "views": 1, "clicks": 0, "click_through": 0.0},
        {"ranking": None, "views": 0, "clicks": 1, "click_through": 0.0},
    ]
    assert data["by_day"] == [
        {"day": f"{DAY1:%Y-%m-%d}", "views": 2, "clicks": 3, "click_through": 1.5},
        {"day": f"{DAY2:%Y-%m-%d}", "views": 2, "clicks": 2, "click_through": 1.0},
    ]


def _interleaved(wins_b: int, wins_a: int, ties: int, ranking: str) -> list[Event]:
    """Views of two places, "b" first and "a" second; a click on the team that wins."""
    found: list[Event] = []
    for n, team in enumerate(["b"] * wins_b + ["a"] * wins_a + [""] * ties):
        view = f"{ranking}-{n}"
        found.append(View(view, "q", ("x", "y"), DAY2, ranking=ranking, teams=("b", "a")))
        if team:
            position = 0 if team == "b" else 1
            found.append(Click(view, ("x", "y")[position], position, DAY2))
    return found


def test_the_report_says_which_interleaved_ranking_readers_prefer() -> None:
    events = _interleaved(30, 10, 5, "trial") + _interleaved(3, 2, 0, "later") + EVENTS
    compared = {c["ranking"]: c for c in report_of(events).as_json()["interleaving"]}
    assert set(compared) == {"trial", "later", "fresh"}
    trial = compared["trial"]
    assert (trial["views"], trial["wins_b"], trial["wins_a"], trial["ties"]) == (45, 30, 10, 5)
    assert trial["share_b"] == 0.75 and trial["low"] > 0.5 and trial["verdict"] == "b"
    assert "readers prefer b, the one compared" in trial["line"]
    later = compared["later"]  # 5 decided views: too few to say
    assert (later["verdict"], later["share_b"], later["low"]) == ("too few", None, None)
    assert "5 decided by clicks" in later["line"]
    assert compared["fresh"]["views"] == 1  # EVENTS' one interleaved view, no click


def test_the_report_table_ends_with_the_preference(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    append_events(index, _interleaved(4, 20, 0, "trial"))
    result = run("report", "--index", str(index))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("interleaving (trial): b won 4 and a 20 of")
    assert result.stdout.splitlines()[-1].endswith("readers prefer a, the ranking in force")


def test_no_events_no_division() -> None:
    report = report_of([])
    assert (report.views, report.clicks, report.click_through) == (0, 0, 0.0)
    assert report.as_json()["by_position"] == []


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T10:30", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
        ("2026-12-01T10:30:00+02:00", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_since_takes_a_day_or_a_time(given: str, expected: datetime) -> None:
    assert parse_since(given) == expected


@pytest.mark.parametrize("given", ["yesterday", "", "2026-13-01", "1e9", "1" * 10_000])
def test_since_refuses_what_is_no_date(given: str) -> None:
    """10,000 ones were read as 1111-11-11T11:11:11.111111 (fromisoformat takes YYYYMMDD and
    a fraction of any length), and a long refused value was quoted whole in the message."""
    with pytest.raises(InvalidQueryError, match="is not a date") as refused:
        parse_since(given)
    assert len(str(refused.value)) < 200


def make_index(folder: Path) -> Path:
    folder.mkdir()
    (folder / "v-20261207T000000-0123abcd").mkdir()
    (folder / "CURRENT").write_text("v-20261207T000000-0123abcd")
    return folder


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_recommend_report_json_and_since(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    append_events(index, EVENTS)
    result = run("report", "--index", str(index), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == [
        "since",
        "views",
        "clicks",
        "click_through",
        "explored",
        "interleaved",
        "clicks_without_view",
        "duplicates",
        "damaged",
        "by_position",
        "by_section",
        "by_language",
        "by_ranking",
        "by_day",
        "left_out",
        "interleaving",
    ]
    assert data == json.loads(json.dumps(report_of(EVENTS).as_json()))
    since = f"{DAY2:%Y-%m-%d}"
    later = json.loads(run("report", "--index", str(index), "--json", "--since", since).stdout)
    assert (later["views"], later["clicks"], later["clicks_without_view"]) == (2, 2, 1)
    assert later["since"] == f"{since}T00:00:00+00:00"


def test_recommend_report_table(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    append_events(index, EVENTS)
    result = run("report", "--index", str(index))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "4 views, 5 clicks, click-through 125.00%"
    assert lines[1] == "1 view explored (two places swapped), 1 view interleaving two rankings"
    assert "#1                              4        2         50.00%" in lines
    assert "world                           2        3        150.00%" in lines
    assert "note: 1 click whose view is not in the period" in result.stderr
    assert "note: 2 events sent twice, counted once" in result.stderr


def test_report_refuses_a_folder_without_an_index_and_a_bad_since(tmp_path: Path) -> None:
    result = run("report", "--index", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"error: no index at {tmp_path}; events are kept beside an index\n"
    index = make_index(tmp_path / "index")
    bad = run("report", "--index", str(index), "--since", "last week")
    assert bad.exit_code == 1
    assert "since 'last week' is not a date (2026-12-01) or an ISO-8601 time" in bad.stderr


def test_export_events_to_parquet(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    index = make_index(tmp_path / "index")
    append_events(index, EVENTS)
    out = tmp_path / "events.parquet"
    result = run("export-events", "--index", str(index), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {len(EVENTS)} events to {out}\n"
    rows = pq.read_table(out).to_pylist()
    assert [r["type"] for r in rows] == ["view" if isinstance(e, View) else "click" for e in EVENTS]
    assert rows[0] == {
        "type": "view",
        "view": "v1",
        "article": "a",
        "time": DAY1,
        "position": None,
        "shown": ["b", "c", "d"],
        "ranking": "default",
        "section": "world",
        "language": "az",
        "swapped": None,
        "teams": None,
    }
    assert rows[1]["position"] == 1 and rows[1]["shown"] is None
    assert rows[6]["teams"] == ["a", "b"] and rows[2]["swapped"] == 0
    later = run("export-events", "-i", str(index), "-o", str(out), "--since", f"{DAY2:%Y-%m-%d}")
    assert later.stdout == f"wrote 5 events to {out}\n"
    assert not list(tmp_path.glob(".events.parquet.*"))
    missing = run("export-events", "-i", str(index), "-o", str(tmp_path / "no" / "e.parquet"))
    assert missing.exit_code == 1 and missing.stderr.startswith("error: cannot write ")


@pytest.mark.parametrize("given", [".", "/", "folder"])
def test_export_events_to_a_folder_is_a_clear_error(tmp_path: Path, given: str) -> None:
    """`--out .` or `--out /` was a traceback (ValueError from Path.with_name); a folder's
    name was found out only after the whole export had been written beside it."""
    index = make_index(tmp_path / "index")
    append_events(index, EVENTS)
    (tmp_path / "folder").mkdir()
    out = tmp_path / given if given == "folder" else Path(given)
    result = run("export-events", "--index", str(index), "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot write {out}: it is a folder; name the file to write\n"


def test_export_events_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    """The temporary file was `.NAME.PID` beside `--out`: in a shared folder (/tmp) another
    user could plant a link at that name and have the export write over the file it names.
    It is now made new (mkstemp), with a new file's permissions; a file at `--out` is
    replaced whole."""
    pytest.importorskip("pyarrow.parquet")
    index = make_index(tmp_path / "index")
    append_events(index, EVENTS)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "events.parquet"
    out.write_bytes(b"an older export")
    (tmp_path / f".events.parquet.{os.getpid()}").symlink_to(victim)
    result = run("export-events", "--index", str(index), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert victim.read_bytes() == b"precious"
    assert out.read_bytes()[:4] == b"PAR1" and not out.is_symlink()
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_report_since_with_a_zone_is_said_in_utc(tmp_path: Path) -> None:
    """`--since 2026-12-01T00:00+05:00` was printed `since 2026-12-01 00:00 UTC`: five hours
    off; the year 1 came out as `1-01-01`."""
    index = make_index(tmp_path / "index")
    first = run("report", "--index", str(index), "--since", "2026-12-01T00:00+05:00")
    assert first.stdout.splitlines()[0].endswith("since 2026-11-30 19:00 UTC")
    early = run("report", "--index", str(index), "--since", "0001-01-01T00:00+05:00")
    assert early.exit_code == 0
    assert early.stdout.splitlines()[0].endswith("since 0001-01-01T00:00+05:00")


def test_the_table_shows_escapes_of_a_stored_section_as_text(tmp_path: Path) -> None:
    """The service refuses a section with an escape or a bidi override from the box, but fills
    in the article's own section from the index, which may hold one: the table shows it as
    text (``\\x1b``), never moving the cursor or reordering the line."""
    index = make_index(tmp_path / "index")
    hostile = "world\x1b[2J\x1b]0;pwned\x07\u202eevil"
    append_events(index, [View("v1", "a", ("b",), DAY1, section=hostile)])
    result = run("report", "--index", str(index))
    assert result.exit_code == 0, result.output
    assert not {"\x1b", "\x07", "\u202e"} & set(result.stdout)
    assert "world\\x1b[2J" in result.stdout


def test_a_stranger_cannot_make_the_report_a_row_per_view(tmp_path: Path) -> None:
    """The section and the ranking are the box's to name: a stranger sending a new one with
    each view made a row of each (10 views a second: 864,000 rows a day, in the table, the
    JSON and the editor's fetch). Past the 100 with the most views, rows are left out and
    counted; the totals keep them."""
    from recommender.quality.report import MAX_GROUPS

    index = make_index(tmp_path / "index")
    real = [View(f"r{n}", "a", ("b", "c"), DAY1, section="world") for n in range(5)]
    forged = [
        View(f"f{n}", "a", ("b",), DAY1, section=f"junk-{n}", ranking=f"r-{n}") for n in range(300)
    ]
    append_events(index, real + forged)
    data = json.loads(run("report", "--index", str(index), "--json").stdout)
    assert data["views"] == 305
    assert len(data["by_section"]) == len(data["by_ranking"]) == MAX_GROUPS
    assert data["by_section"][0] == {
        "section": "world",
        "views": 5,
        "clicks": 0,
        "click_through": 0.0,
    }
    assert data["left_out"] == {"by_section": 201, "by_language": 0, "by_ranking": 201}
    table = run("report", "--index", str(index))
    assert "note: 201 more section rows with fewer views left out" in table.stderr
    assert len(table.stdout.splitlines()) < 2 * MAX_GROUPS + 30


def test_the_report_counts_the_damaged_records_of_the_store(tmp_path: Path) -> None:
    """The store's count is known only once it has been read: the report takes it then."""
    index = make_index(tmp_path / "index")
    append_events(index, EVENTS)
    (day,) = (index / "events").glob("*.jsonl")
    with open(day, "ab") as handle:
        handle.write(b"\x00\xff garbage\n")
    append_events(index, [Click("v4", "z", 1, DAY2)])  # the garbage line is not the last
    data = json.loads(run("report", "--index", str(index), "--json").stdout)
    assert data["damaged"] == 1 and data["views"] == 4
    result = run("report", "--index", str(index))
    assert "note: 1 damaged record skipped" in result.stderr
