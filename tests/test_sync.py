"""recommend sync: a site's database (SQLite here; PostgreSQL and MariaDB servers started by
the tests, from Debian's packages) and its feeds (served on 127.0.0.1) into an index."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import db_servers
import pytest
import sqlalchemy as sa
from conftest import SAMPLE, FakeEncoder
from typer.testing import CliRunner

from recommender import Recommender
from recommender.cli import app
from recommender.errors import IndexBusyError, SourceError
from recommender.sources import database
from recommender.sources.sync import sync
from recommender.write.writer import IndexWriter

T0 = datetime(2026, 10, 1, 8, 0, 0)
FIELDS = {"title": "headline", "body": "content", "category": "section"}


@pytest.fixture(scope="module")
def postgresql_server() -> Iterator[db_servers.Server]:
    if db_servers.postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup installs it as root)")
    with db_servers.postgres() as server:
        yield server


@pytest.fixture(scope="module")
def mariadb_server() -> Iterator[db_servers.Server]:
    if db_servers.mariadb_binaries() is None:
        pytest.skip("MariaDB is not installed (scripts/setup installs it as root)")
    with db_servers.mariadb() as server:
        yield server


@dataclass
class Site:
    """A site's table of articles in one database, written through SQLAlchemy."""

    url: str
    table: str
    engine: sa.Engine

    def __post_init__(self) -> None:
        self.posts = sa.Table(
            self.table,
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("headline", sa.String(300)),
            sa.Column("content", sa.Text),
            sa.Column("section", sa.String(50)),
            sa.Column("updated_at", sa.DateTime),
            sa.Column("status", sa.String(20)),
            sa.Column("deleted_at", sa.DateTime),
        )
        self.posts.create(self.engine)

    def put(self, key: int, headline: str | None, at: datetime, **values: Any) -> None:
        row = {
            "id": key,
            "headline": headline,
            "content": values.get("content", f"Body of story {key} about the harbour"),
            "section": values.get("section", "local"),
            "updated_at": at,
            "status": values.get("status", "publish"),
            "deleted_at": values.get("deleted_at"),
        }
        with self.engine.begin() as connection:
            found = connection.execute(
                sa.select(self.posts.c.id).where(self.posts.c.id == key)
            ).first()
            if found:
                connection.execute(self.posts.update().where(self.posts.c.id == key).values(**row))
            else:
                connection.execute(self.posts.insert().values(**row))

    def live_titles(self) -> dict[str, str]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(self.posts.c.id, self.posts.c.headline).where(
                    self.posts.c.deleted_at.is_(None), self.posts.c.status == "publish"
                )
            )
            return {str(key): title for key, title in rows}


def _site(url: str) -> Iterator[Site]:
    writable = url if url.startswith("sqlite") else database.url_of(url)  # sync reads only
    engine = sa.create_engine(writable, poolclass=sa.pool.NullPool)
    site = Site(url, f"posts_{uuid.uuid4().hex[:8]}", engine)
    yield site
    site.posts.drop(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'site.db'}"
    else:
        url = request.getfixturevalue(f"{request.param}_server").url
    yield from _site(url)


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(f"sqlite:///{tmp_path / 'site.db'}")


def run_sync(site: Site, index: Path, **options: Any) -> Any:
    given: dict[str, Any] = {
        "table": site.table,
        "field_map": FIELDS,
        "updated_column": "updated_at",
        "deleted_column": "status!=publish",
        "encoder": FakeEncoder(),
    }
    return sync(site.url, index, **(given | options))


def synced(site: Site, tmp_path: Path, stories: int) -> Path:
    """The index of one sync of ``site`` holding "Story 1" .. "Story <stories>", all at T0."""
    index = tmp_path / "index"
    for key in range(1, stories + 1):
        site.put(key, f"Story {key}", T0)
    run_sync(site, index)
    return index


def titles(index: Path) -> dict[str, str]:
    with Recommender.open(index) as rec:
        return {i: rec.get(i).title for i in rec.ids()}


def valid(site: Site) -> dict[str, str]:
    """The titles of the rows a sync keeps (not taken down, with a title)."""
    return {key: title for key, title in site.live_titles().items() if title.strip()}


def generation(index: Path) -> int:
    with Recommender.open(index) as rec:
        return rec.status().generation


def test_a_database_synced_incrementally(site: Site, tmp_path: Path) -> None:
    index = tmp_path / "index"
    for key in range(1, 6):
        site.put(key, f"Harbour story {key}", T0 + timedelta(minutes=key))
    site.put(6, "  ", T0)  # invalid: an empty title
    site.put(7, "A draft", T0, status="draft")
    first = run_sync(site, index)
    assert first.built and (first.added, first.updated, first.removed) == (5, 0, 0)
    assert first.invalid == (f"table {site.table}: article '6': title is empty",)
    assert titles(index) == valid(site)
    with Recommender.open(index) as rec:
        assert rec.get("3").category == "local" and rec.get("3").body.startswith("Body of")

    before = generation(index)  # nothing changed: nothing is written
    again = run_sync(site, index)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 1)
    assert generation(index) == before

    later = T0 + timedelta(hours=1)
    site.put(2, "Harbour story 2, updated", later)
    site.put(3, "Harbour story 3", later, status="trash")  # taken down
    site.put(8, "Ferry story 8", later)
    planned = run_sync(site, index, dry_run=True)
    assert (planned.would_add, planned.would_update, planned.would_remove) == (
        ("8",),
        ("2",),
        ("3",),
    )
    assert generation(index) == before
    done = run_sync(site, index)
    assert (done.added, done.updated, done.removed, done.built) == (1, 1, 1, False)
    assert titles(index) == valid(site)

    # A row committed later with the same update time as the cursor's (a tie) is not missed.
    site.put(9, "Ferry story 9", later)
    tie = run_sync(site, index)
    assert (tie.added, tie.unchanged) == (1, 2)  # 2 and 8 read again, as written
    # The invalid row, fixed, comes in; the draft, published, too.
    site.put(6, "Harbour story 6", later + timedelta(seconds=1))
    site.put(7, "A draft no more", later + timedelta(seconds=1))
    fixed = run_sync(site, index)
    assert (fixed.added, fixed.invalid) == (2, ())
    assert titles(index) == site.live_titles()
    assert Recommender.check(index).problems == []


def test_a_row_edited_while_a_run_reads_comes_with_the_next(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = synced(sqlite_site, tmp_path, 3)
    real_add = IndexWriter.add

    def edited_meanwhile(self: IndexWriter, *args: Any, **kwargs: Any) -> Any:
        sqlite_site.put(1, "Story 1, edited while the run wrote", T0 + timedelta(minutes=2))
        return real_add(self, *args, **kwargs)

    sqlite_site.put(2, "Story 2, edited", T0 + timedelta(minutes=1))
    monkeypatch.setattr(IndexWriter, "add", edited_meanwhile)
    run_sync(sqlite_site, index)
    monkeypatch.undo()
    assert titles(index)["1"] == "Story 1"
    assert run_sync(sqlite_site, index).updated == 1
    assert titles(index) == sqlite_site.live_titles()


def test_a_query_deleted_rows_and_a_deleted_query(sqlite_site: Site, tmp_path: Path) -> None:
    index = tmp_path / "index"
    with sqlite_site.engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE takedowns (post INTEGER, note TEXT)"))
    for key in range(1, 6):
        sqlite_site.put(key, f"Story {key}", T0)
    sqlite_site.put(4, "Story 4", T0, deleted_at=T0)
    query = (
        f"SELECT p.id AS post_id, p.headline, p.section AS kind, p.updated_at, p.deleted_at "
        f"FROM {sqlite_site.table} AS p WHERE p.headline <> 'x:y'"
    )
    options: dict[str, Any] = {
        "table": None,
        "query": query,
        "field_map": {"id": "post_id", "title": "headline", "category": "kind"},
        "deleted_column": "deleted_at",
        "deleted_query": "SELECT post FROM takedowns",
    }
    first = run_sync(sqlite_site, index, **options)
    assert sorted(titles(index)) == ["1", "2", "3", "5"] and first.added == 4
    with sqlite_site.engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO takedowns VALUES (2, 'legal')"))
    second = run_sync(sqlite_site, index, **options)
    assert second.removed == 1 and sorted(titles(index)) == ["1", "3", "5"]
    assert run_sync(sqlite_site, index, **options).removed == 0  # said once


def test_a_build_from_files_resets_the_cursor(sqlite_site: Site, tmp_path: Path) -> None:
    index = synced(sqlite_site, tmp_path, 1)
    Recommender.build_from_files([SAMPLE], index, encoder=FakeEncoder())
    again = run_sync(sqlite_site, index)
    assert again.added == 1 and "1" in titles(index)


def test_two_syncs_of_one_source_at_once_do_not_both_write(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = synced(sqlite_site, tmp_path, 1)
    sqlite_site.put(2, "Story 2", T0 + timedelta(minutes=1))
    real_add = IndexWriter.add

    def other_sync_first(self: IndexWriter, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(IndexWriter, "add", real_add)
        run_sync(sqlite_site, index)
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(IndexWriter, "add", other_sync_first)
    with pytest.raises(IndexBusyError, match=r"another sync of .* nothing was changed"):
        run_sync(sqlite_site, index)
    assert sorted(titles(index)) == ["1", "2"]


# -- errors ---------------------------------------------------------------------------------


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot reach database") as caught:
        sync(
            "postgresql://site:TopSecret1@127.0.0.1:1/news",
            tmp_path / "index",
            table="posts",
        )
    assert "TopSecret1" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_bad_credentials_are_named_never_echoed(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: db_servers.Server = request.getfixturevalue(f"{kind}_server")
    wrong = server.url.replace(db_servers.PASSWORD, "Wr0ngPass")
    with pytest.raises(SourceError, match="refused the user name or password") as caught:
        sync(wrong, tmp_path / "index", table="posts")
    assert "Wr0ngPass" not in str(caught.value) and db_servers.PASSWORD not in str(caught.value)


def test_a_missing_sqlite_file_is_not_made(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"cannot reach database sqlite:///.*\(no such file\)"):
        sync(f"sqlite:///{tmp_path / 'nope.db'}", tmp_path / "index", table="posts")
    assert not (tmp_path / "nope.db").exists()


def test_a_missing_column_is_named(sqlite_site: Site, tmp_path: Path) -> None:
    sqlite_site.put(1, "Story 1", T0)
    with pytest.raises(SourceError, match=r"column 'changed' \(--updated-column\) is not in"):
        run_sync(sqlite_site, tmp_path / "index", updated_column="changed")
    with pytest.raises(SourceError, match=r"column 'title' \(the title\) is not in table"):
        run_sync(sqlite_site, tmp_path / "index", field_map={})
    with pytest.raises(SourceError, match="give --table or --query"):
        sync(sqlite_site.url, tmp_path / "index")


# -- feeds ----------------------------------------------------------------------------------

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Harbour Times</title><language>en-gb</language>
<item><guid>h-1</guid><title>Ferry strike ends</title><link>https://example.org/h-1</link>
<description>&lt;p&gt;The ferry &lt;b&gt;strike&lt;/b&gt; ended.&lt;/p&gt;</description>
<pubDate>Tue, 06 Oct 2026 08:00:00 GMT</pubDate><category>local</category></item>
<item><link>https://example.org/h-2</link><title>Storm closes the bridge</title>
<description>Winds of 100 km/h.</description><category>weather</category></item>
<item><guid>h-3</guid><title></title></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="tr"><title>Liman</title>
<entry><id>tag:liman,2026:1</id><title>Feribot grevi bitti</title>
<link href="https://example.org/tr/1"/><updated>2026-10-06T09:00:00Z</updated>
<content type="html">&lt;p&gt;Grev sona erdi.&lt;/p&gt;</content></entry></feed>"""

SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
 xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>https://example.org/ru/5</loc><news:news><news:publication><news:name>Gavan</news:name>
<news:language>ru</news:language></news:publication>
<news:publication_date>2026-10-06T10:00:00+03:00</news:publication_date>
<news:title>Паром снова ходит</news:title><news:keywords>паром, забастовка</news:keywords>
</news:news></url></urlset>"""

BOMB = """<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><rss version="2.0"><channel><title>&b;</title>
</channel></rss>"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """Write a document and give its URL on a local HTTP server."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def put(name: str, text: str) -> str:
        (folder / name).write_text(text, encoding="utf-8")
        return f"http://127.0.0.1:{server.server_address[1]}/{name}"

    yield put
    server.shutdown()
    server.server_close()


def test_an_rss_feed_then_its_entries_again(
    served: Callable[[str, str], str], tmp_path: Path
) -> None:
    index = tmp_path / "index"
    url = served("feed.xml", RSS)
    first = sync(url, index, encoder=FakeEncoder())
    assert (first.kind, first.added) == ("rss", 2)
    assert first.invalid == (f"{url}: entry 3: article 'h-3': title is empty",)
    with Recommender.open(index) as rec:
        one = rec.get("h-1")
        assert one.body == "The ferry strike ended." and one.category == "local"
        assert one.lang == "en-gb" and one.url == "https://example.org/h-1"
        assert one.published_at is not None and one.published_at.day == 6
        assert rec.get("https://example.org/h-2").category == "weather"  # no guid: the link
    before = generation(index)
    again = sync(url, index, encoder=FakeEncoder())
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    assert generation(index) == before
    served("feed.xml", RSS.replace("Ferry strike ends", "Ferry strike is over"))
    assert sync(url, index, encoder=FakeEncoder()).updated == 1
    assert titles(index)["h-1"] == "Ferry strike is over"


def test_atom_and_a_news_sitemap(served: Callable[[str, str], str], tmp_path: Path) -> None:
    index = tmp_path / "index"
    atom = sync(served("atom.xml", ATOM), index, encoder=FakeEncoder())
    assert (atom.kind, atom.added) == ("atom", 1)
    news = sync(served("news.xml", SITEMAP), index, encoder=FakeEncoder())
    assert (news.kind, news.added) == ("news sitemap", 1)
    path = tmp_path / "news-file.xml"  # a file, not a URL
    path.write_text(SITEMAP.replace("ru/5", "ru/6"), encoding="utf-8")
    assert sync(str(path), index, encoder=FakeEncoder()).added == 1
    with Recommender.open(index) as rec:
        entry = rec.get("tag:liman,2026:1")
        assert entry.lang == "tr" and entry.body == "Grev sona erdi."
        story = rec.get("https://example.org/ru/5")
        assert story.title == "Паром снова ходит" and story.lang == "ru"
        assert story.tags == ("паром", "забастовка") and story.source == "Gavan"


def test_a_feed_that_is_not_xml_or_expands_entities(
    served: Callable[[str, str], str], tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match=r"page\.html is not XML"):
        sync(served("page.html", "<html><p>hello<br></html>"), tmp_path / "i")
    with pytest.raises(SourceError, match=r"is refused: .*Entit"):
        sync(served("bomb.xml", BOMB), tmp_path / "i")
    with pytest.raises(SourceError, match="HTTP 404"):
        sync(served("x.xml", RSS).replace("x.xml", "missing.xml"), tmp_path / "i")
    with pytest.raises(SourceError, match="--table, --updated-column are for a database"):
        sync(served("feed.xml", RSS), tmp_path / "i", table="t", updated_column="u")
    assert not (tmp_path / "i").exists()


# -- the command ----------------------------------------------------------------------------


@pytest.mark.usefixtures("fake_default_model")
def test_the_command(sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    index = str(tmp_path / "index")
    sqlite_site.put(1, "Story 1", T0)
    sqlite_site.put(2, "", T0)
    base = [
        "sync",
        sqlite_site.url,
        "--index",
        index,
        "--table",
        sqlite_site.table,
        "--field",
        "title=headline",
        "--updated-column",
        "updated_at",
        "--deleted-column",
        "status!=publish",
    ]
    result = runner.invoke(app, [*base, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would add 1, update 0, remove 0" in result.stdout and "  add: 1" in result.stdout
    assert "skipped table" in result.stderr and "title is empty" in result.stderr
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("synced sqlite:///") and "added 1, updated 0" in result.stdout
    assert "a new index" in result.stdout

    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", sleep)
    result = runner.invoke(app, [*base, "--every", "5"])
    assert result.exit_code == 130 and sleeps == [5, 5]
    assert result.stdout.count("synced ") == 2

    wrong = "postgresql://u:Secr3tW0rd@127.0.0.1:1/x"
    result = runner.invoke(app, ["sync", wrong, "--index", index, "--table", "t"])
    assert result.exit_code == 1 and "Secr3tW0rd" not in result.output
    assert result.stderr.startswith("error: cannot reach database postgresql://u:***@")
    assert result.stderr.count("\n") == 1


# -- kill -9 --------------------------------------------------------------------------------


def test_killed_at_any_point_no_gap_and_no_duplicate(
    postgresql_server: db_servers.Server, tmp_path: Path
) -> None:
    """A sync process killed with SIGKILL again and again while the site's rows change under
    it; a last sync to the end then leaves the index exactly as the table."""
    import random

    rng = random.Random(25)
    index = tmp_path / "index"
    site = next(_site(postgresql_server.url))
    try:
        clock = [T0]

        def tick() -> datetime:
            clock[0] += timedelta(milliseconds=rng.choice([0, 0, 1, 500]))  # ties too
            return clock[0]

        for key in range(300):
            site.put(key, f"Story {key} on the harbour", tick())
        stop = threading.Event()

        def edit() -> None:
            next_key = 300
            while not stop.is_set():
                choice = rng.random()
                if choice < 0.4:
                    site.put(next_key, f"Story {next_key} new", tick())
                    next_key += 1
                elif choice < 0.8:
                    key = rng.randrange(next_key)
                    site.put(key, f"Story {key} edited {rng.random():.6f}", tick())
                else:
                    key = rng.randrange(next_key)
                    site.put(key, f"Story {key} gone", tick(), deleted_at=T0)

        editor = threading.Thread(target=edit)
        editor.start()
        worker = Path(__file__).resolve().parent / "sync_worker.py"
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        try:
            for _ in range(6):
                process = subprocess.Popen(
                    [sys.executable, str(worker), site.url, site.table, str(index)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                try:
                    process.wait(timeout=rng.uniform(1.0, 3.0))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                else:
                    pytest.fail(f"the sync process ended: {process.stderr.read().decode()}")
                finally:
                    assert process.stderr is not None
                    process.stderr.close()
        finally:
            stop.set()
            editor.join()
        final = sync(
            site.url,
            index,
            table=site.table,
            field_map=FIELDS,
            updated_column="updated_at",
            deleted_column="deleted_at",
            encoder=FakeEncoder(),
        )
        assert final.read > 0
        with site.engine.connect() as connection:
            rows = connection.execute(
                sa.select(site.posts.c.id, site.posts.c.headline).where(
                    site.posts.c.deleted_at.is_(None)
                )
            )
            expected = {str(key): title for key, title in rows}
        with Recommender.open(index) as rec:
            ids = rec.ids()
            assert len(ids) == len(set(ids)) == len(rec)
            assert {i: rec.get(i).title for i in ids} == expected
        assert Recommender.check(index).problems == []
    finally:
        site.posts.drop(site.engine)
        site.engine.dispose()


def test_the_cursor_is_carried_by_compaction_and_replicas(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.storage import cursors
    from recommender.storage.layout import ARTICLES, current_version
    from recommender.storage.table import connect
    from recommender.write import compaction

    index = synced(sqlite_site, tmp_path, 4)
    monkeypatch.setattr(compaction, "COMPACT_MIN_ROWS", 1)
    monkeypatch.setattr(compaction, "COMPACT_SHARE", 0.0)
    sqlite_site.put(4, "Story 4", T0 + timedelta(minutes=1), status="trash")
    assert run_sync(sqlite_site, index).compacted
    again = run_sync(sqlite_site, index)  # the cursor came through: nothing is read as new
    assert (again.added, again.updated, again.unchanged) == (0, 0, 0)
    Recommender.replicate(index, tmp_path / "replica")
    for folder in (index, tmp_path / "replica"):
        connection = connect(current_version(folder) / ARTICLES, write=False)
        try:
            key = next(iter(dict(connection.execute("SELECT source, runs FROM sync_cursors"))))
            stored = cursors.read(connection, key)
        finally:
            connection.close()
        assert sorted(stored.seen) == ["1", "2", "3"] and stored.position is not None


def test_another_field_mapping_rewrites_the_rows(sqlite_site: Site, tmp_path: Path) -> None:
    index = tmp_path / "index"
    sqlite_site.put(1, "Story 1", T0, section="sport")
    run_sync(sqlite_site, index, field_map={"title": "headline"})
    assert titles(index) == {"1": "Story 1"}
    remapped = run_sync(sqlite_site, index, field_map={"title": "headline", "category": "section"})
    assert remapped.updated == 1
    with Recommender.open(index) as rec:
        assert rec.get("1").category == "sport"
