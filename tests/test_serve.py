"""The HTTP service: endpoints, caching, CORS, errors, writes and hostile requests.

Through FastAPI's TestClient over the sample indexed with the fake encoder; the tests that
need real sockets (unread bodies, slow clients) run uvicorn on loopback (tests/live_server.py).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE, FakeEncoder, SampleBuilds
from fastapi.testclient import TestClient
from live_server import live_server
from typer.testing import CliRunner

from recommender import Recommender
from recommender.articles import Article, parse_article
from recommender.http.app import create_app
from recommender.http.options import ServeOptions
from recommender.results import to_json
from recommender.settings import Ranking, Settings, ranking_options
from recommender.write.transaction import writer_lock

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def shared_index(sample_builds: SampleBuilds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the sample for the module's tests that do not write."""
    return sample_builds.copy(tmp_path_factory.mktemp("serve") / "ix")


@pytest.fixture(scope="module")
def client(shared_index: Path) -> Any:
    app = create_app(shared_index, encoder=FakeEncoder(), options=ServeOptions(max_age=120))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def writer(sample_index: Path) -> Any:
    """A client of a writable copy of the sample, with the token configured."""
    app = create_app(sample_index, encoder=FakeEncoder(), options=ServeOptions(token=TOKEN))
    with TestClient(app) as test_client:
        yield test_client


def as_json(value: object) -> Any:
    return json.loads(to_json(value))


# -- reads --------------------------------------------------------------------------------------


def test_similar_is_shaped_like_similar_json(client: TestClient, shared_index: Path) -> None:
    response = client.get("/articles/a-1001/similar?k=4")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with Recommender.open(shared_index) as rec:
        expected = [asdict(item) for item in rec.similar("a-1001", k=4)]
        info = rec.info()
    assert response.json() == {
        "article": "a-1001",
        "k": 4,
        "version": info.version,
        "generation": info.generation,
        "related": as_json(expected),
    }
    first = response.json()["related"][0]
    assert first["published_at"].endswith("Z")
    assert isinstance(first["tags"], list) and isinstance(first["copy_ids"], list)
    assert set(first) >= {"id", "score", "similarity", "recency_factor", "category_factor"}


@pytest.mark.parametrize("name", Ranking.names())
def test_every_ranking_option_is_a_query_parameter(
    client: TestClient, shared_index: Path, name: str
) -> None:
    whole = isinstance(getattr(Ranking(), name), int)
    # The choice that is not the default.
    literal = {"recency_from": "now", "calibration": "none", "combination": "hand"}
    value: Any = literal.get(name, 3 if whole else 0.5)
    response = client.get(f"/articles/a-2016/similar?k=5&{name}={value}")
    assert response.status_code == 200, response.text
    with Recommender.open(shared_index) as rec:
        expected = rec.similar("a-2016", k=5, **{name: value})
    if name != "recency_from":  # "now" moves with the clock between the two calls
        assert response.json()["related"] == as_json([asdict(item) for item in expected])


def test_filters_and_no_recency(client: TestClient, shared_index: Path) -> None:
    with Recommender.open(shared_index) as rec:
        plain = rec.similar("a-1001", k=5, half_life_days=None, exclude=["a-1079"])
        sports = rec.similar("a-1001", k=3, categories=["sport"], since="2026-09-01")
    got = client.get("/articles/a-1001/similar?k=5&no_recency=true&exclude=a-1079").json()[
        "related"
    ]
    assert got == as_json([asdict(item) for item in plain])
    assert all(item["recency_factor"] == 1.0 for item in got)
    got = client.get("/articles/a-1001/similar?k=3&category=sport&since=2026-09-01").json()[
        "related"
    ]
    assert got == as_json([asdict(item) for item in sports])
    same = client.get("/articles/a-1001/similar?k=5&same_category=true").json()["related"]
    assert same and all(item["category"] == "world" for item in same)


def test_draft_similar(client: TestClient) -> None:
    body = {
        "text": "Strong earthquake jolts northern Valdoria\nThe quake struck Corvena.",
        "category": "world",
        "published_at": "2026-09-02T05:00:00Z",
        "k": 3,
        "lexical_weight": 0.4,
        "exclude": ["a-1002"],
    }
    response = client.post("/similar", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"k", "version", "generation", "related"} and data["k"] == 3
    items = data["related"]
    assert len(items) == 3 and items[0]["id"] == "a-1001"
    assert all(item["id"] != "a-1002" for item in items)
    assert response.headers["cache-control"] == "no-store"


def test_a_10_mb_draft_is_cleaned_and_weighed_only_up_to_query_chars(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender import lexical
    from recommender.read import pipeline
    from recommender.text import query_chars

    read: list[int] = []

    def spying(real: Any) -> Any:
        def spy(text: str, *args: Any) -> Any:
            read.append(len(text))
            return real(text, *args)

        return spy

    monkeypatch.setattr(pipeline, "clean_html", spying(pipeline.clean_html))
    monkeypatch.setattr(lexical, "kept_words", spying(lexical.kept_words))
    line = "The quake struck Corvena before dawn; rescuers searched the rubble. "
    text = "Strong earthquake jolts northern Valdoria\n" + line * (10_000_000 // len(line))
    body = json.dumps({"text": text, "k": 3}).encode()
    assert len(body) < ServeOptions().max_body_bytes
    response = client.post("/similar", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["related"][0]["id"] == "a-1001"
    assert len(read) == 2 and max(read) <= query_chars(Settings().max_body_chars) < len(text)


def test_article_search_info_health(client: TestClient) -> None:
    article = client.get("/articles/a-1001").json()
    assert article["title"] == "Strong earthquake jolts northern Valdoria before dawn"
    assert article["published_at"] == "2026-09-02T03:40:00Z"
    assert article["metadata"] == {"story": "valdoria-earthquake"}
    found = client.get("/articles?q=EARTHQUAKE valdoria").json()["articles"]
    assert "a-1001" in [item["id"] for item in found]
    assert all("valdoria" in item["title"].casefold() for item in found)
    assert client.get("/articles?q=a-1001").json()["articles"][0]["id"] == "a-1001"
    assert client.get("/articles?q=zzzzqqq").json() == {"articles": []}
    info = client.get("/info").json()
    assert info["articles"] == 338 and info["generation"] >= 1 and info["index"] == "ix"
    assert info["languages"] == {"en": 323, "az": 5, "ru": 5, "tr": 5}
    assert info["unrecognised_languages"] == []
    assert len(info["category_counts"]) == info["categories"] == 9
    assert sum(info["category_counts"].values()) == 329  # 9 articles have no category
    assert info["overrides"] == {"pins": 0, "blocks": 0, "hidden": 0}
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert client.get("/openapi.json").json()["paths"]["/articles/{article_id}/similar"]
    assert client.get("/docs").status_code == 200


def test_title_search_folds_accents_dotless_i_and_schwa(client: TestClient) -> None:
    def ids(q: str) -> list[str]:
        response = client.get("/articles", params={"q": q})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["articles"]]

    assert set(ids("acildi")) == {"a-4002", "a-4004"}  # dotless i, c cedilla
    assert {"a-4002", "a-4004"} <= set(ids("LİROVA"))
    assert {"a-4014", "a-4016"} <= set(ids("bereket"))  # "Bərəkət", Turkish "Bereket"
    assert set(ids("ŞAHİNLƏRİ")) == {"a-4010", "a-4012"}  # "Şahinləri", "Şahinleri"
    for odd in ("🎉", "\u0301", "\u0301 \u0308", "lirova 🎉"):
        assert ids(odd) == []
    assert ids("ｌｉｒｏｖａ") == ids("lirova")  # full-width letters, as NFKD has them


def test_title_search_folds_titles_and_queries_alike() -> None:
    from conftest import article

    from recommender.http.state import Titles

    class Index:
        def __init__(self, *found: Article) -> None:
            self.found = {a.id: a for a in found}

        def ids(self) -> list[str]:
            return list(self.found)

        def get(self, article_id: str) -> Article:
            return self.found[article_id]

    rec: Any = Index(
        article("up", "LİROVA METRO AÇILDI", published_at="2026-01-02T00:00:00Z"),
        article("ru", "Ёлка на площади", published_at="2026-01-01T00:00:00Z"),
    )
    titles = Titles()
    assert [a.id for a in titles.search(rec, "v:1", ["lirova"], 10)] == ["up"]
    assert [a.id for a in titles.search(rec, "v:1", ["acildi", "metro"], 10)] == ["up"]
    assert [a.id for a in titles.search(rec, "v:1", ["елка"], 10)] == ["ru"]
    assert titles.search(rec, "v:1", ["\u0301"], 10) == []


def test_info_right_after_a_rebuild_over_the_served_index(sample_index: Path) -> None:
    # No refresh of its own between the build and /info: the worker still holds the version
    # the build deleted when /info asks for the counts.
    options = ServeOptions(refresh_seconds=3600)
    app = create_app(sample_index, encoder=FakeEncoder(), options=options)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        before = test_client.get("/info").json()
        Recommender.build_from_files([SAMPLE], sample_index, encoder=FakeEncoder())
        after = test_client.get("/info")
        assert after.status_code == 200, after.text
        assert after.json()["version"] != before["version"]
        assert after.json()["articles"] == before["articles"]


def test_readyz_waits_for_the_index(tmp_path: Path) -> None:
    path = tmp_path / "later"
    with TestClient(create_app(path, encoder=FakeEncoder())) as test_client:
        assert test_client.get("/healthz").status_code == 200
        response = test_client.get("/readyz")
        assert response.status_code == 503 and "error" in response.json()
        assert test_client.get("/articles/a-1001/similar").status_code == 503
        assert str(tmp_path) not in test_client.get("/articles/a-1001/similar").text


def test_ranking_options_come_from_ranking_fields() -> None:
    assert [option.name for option in ranking_options()] == list(Ranking.names())
    choice = {o.name: o for o in ranking_options()}["recency_from"]
    assert choice.kind == "choice" and choice.choices == ("query", "now")


# -- caching and CORS -----------------------------------------------------------------------------


def test_etag_and_cache_control(writer: TestClient) -> None:
    first = writer.get("/articles/a-1001/similar?k=3&mmr_lambda=0.9")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=60"
    again = writer.get(
        "/articles/a-1001/similar?mmr_lambda=0.9&k=3", headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = writer.get("/articles/a-1001/similar?k=4&mmr_lambda=0.9")
    assert other.headers["etag"] != etag
    assert writer.get("/articles/a-1001", headers={"If-None-Match": etag}).status_code == 200
    added = writer.put("/articles", json=[{"id": "n-1", "title": "Valdoria quake"}], headers=AUTH)
    assert added.status_code == 200
    after = writer.get(
        "/articles/a-1001/similar?k=3&mmr_lambda=0.9", headers={"If-None-Match": etag}
    )
    assert after.status_code == 200 and after.headers["etag"] != etag  # new generation


def test_etag_follows_other_writers_without_the_info_report(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_info(self: Recommender) -> None:
        raise AssertionError("info() counts rows and stats files: too slow for an ETag")

    monkeypatch.setattr(Recommender, "info", no_info)
    options = ServeOptions(refresh_seconds=0.05)
    with TestClient(create_app(sample_index, encoder=FakeEncoder(), options=options)) as client:
        etag = client.get("/articles/a-1001/similar?k=3").headers["etag"]
        held = {"If-None-Match": etag}
        assert client.get("/articles/a-1001/similar?k=3", headers=held).status_code == 304
        with Recommender.open(sample_index, encoder=FakeEncoder()) as other:
            other.add([parse_article({"id": "n-1", "title": "Valdoria quake"})])
        time.sleep(0.1)
        # Only revalidations: no query runs, yet the worker sees the new generation.
        after = client.get("/articles/a-1001/similar?k=3", headers=held)
        assert after.status_code == 200 and after.headers["etag"] != etag


GET_ROUTES = [
    "/articles/a-1001/similar?k=3",
    "/articles/a-1001",
    "/articles?q=valdoria",
    "/info",
    "/healthz",
    "/readyz",
    "/metrics",
    "/",
    "/box.js",
    "/static/page.css",
    "/openapi.json",
]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_is_answered_as_get_without_a_body(client: TestClient, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == 200 and head.content == b""
    same = ["etag", "cache-control", "content-type", "last-modified"]
    if path != "/metrics":  # its counts grow between the two
        same.append("content-length")
    assert {n: head.headers.get(n) for n in same} == {n: got.headers.get(n) for n in same}
    if "etag" in got.headers:
        held = {"If-None-Match": got.headers["etag"]}
        again = client.head(path, headers=held)
        assert again.status_code == 304 and again.content == b""


def test_head_of_an_error_is_the_error_without_a_body(client: TestClient) -> None:
    for path in ("/articles/nope", "/articles/a-1001/similar?k=abc", "/no/such/endpoint"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code and head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"]
    assert client.head("/similar").status_code == 405  # POST only


def test_larger_answers_are_gzipped_for_clients_that_take_it(client: TestClient) -> None:
    path = "/articles/a-1001/similar?k=10"
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert len(plain.content) > 1000 and "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 3
    assert zipped.json() == plain.json()
    for answer in (plain, zipped):  # a cache keeps one copy per encoding
        assert "accept-encoding" in answer.headers["vary"].lower()
    # One weak tag for both: the same answer in another content-coding (RFC 9110 8.8.1).
    etag = zipped.headers["etag"]
    assert etag == plain.headers["etag"] and etag.startswith("W/")
    for encoding in ("gzip", "identity"):
        held = {"Accept-Encoding": encoding, "If-None-Match": etag}
        again = client.get(path, headers=held)
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and "content-encoding" not in again.headers
    head = client.head(path, headers={"Accept-Encoding": "gzip"})
    assert head.headers["content-encoding"] == "gzip" and head.content == b""
    assert head.headers["content-length"] == zipped.headers["content-length"]
    small = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under a kilobyte: not worth it
    scraped = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert scraped.headers["content-encoding"] == "gzip"  # as Prometheus asks for it
    assert "recommender_http_requests_total" in scraped.text


def test_a_gzipped_static_file_has_a_weak_etag(client: TestClient) -> None:
    # StaticFiles' tag is strong: byte for byte this file, which the gzipped bytes are not.
    plain = client.get("/static/page.js", headers={"Accept-Encoding": "identity"})
    zipped = client.get("/static/page.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.text == plain.text
    strong = plain.headers["etag"]
    assert strong.startswith('"') and zipped.headers["etag"] == f"W/{strong}"
    held = {"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]}
    assert client.get("/static/page.js", headers=held).status_code == 304


def test_max_age_is_configurable(client: TestClient) -> None:
    assert client.get("/articles/a-1001").headers["cache-control"] == "public, max-age=120"
    assert client.get("/articles/nope").headers["cache-control"] == "no-store"


def test_cors(shared_index: Path) -> None:
    site = "https://news.example"
    app = create_app(shared_index, options=ServeOptions(cors_origins=(site,)))
    with TestClient(app) as test_client:
        allowed = test_client.get("/articles/a-1001/similar", headers={"Origin": site})
        assert allowed.headers["access-control-allow-origin"] == site
        assert "etag" in allowed.headers["access-control-expose-headers"].lower()
        other = test_client.get("/articles/a-1001/similar", headers={"Origin": "https://x.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = test_client.options(
            "/articles",
            headers={
                "Origin": site,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
    with TestClient(create_app(shared_index)) as test_client:  # no origin configured
        plain = test_client.get("/articles/a-1001/similar", headers={"Origin": site})
        assert "access-control-allow-origin" not in plain.headers


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ("k=-1", 422, "'k'"),
        ("k=abc", 422, "'k'"),
        ("k=1000000000000", 422, "k must be at most 100"),
        ("lexical_weight=2", 422, "lexical_weight"),
        ("half_life_days=-3", 422, "half_life_days"),
        ("mmr_lambda=nan", 422, "'mmr_lambda'"),
        ("recency_from=tomorrow", 422, "'recency_from'"),
        ("since=yesterday", 422, "not an ISO-8601 date"),
        ("since=2026-10-01&until=2026-09-01", 422, "since"),
        ("category=nosuchdesk", 422, "nosuchdesk"),
        ("K=5", 422, "'K'"),
        ("k=3&Same_Category=true", 422, "'Same_Category'"),
    ],
)
def test_bad_parameters_are_422_naming_them(
    client: TestClient, query: str, status: int, named: str
) -> None:
    response = client.get(f"/articles/a-1001/similar?{query}")
    assert response.status_code == status
    assert named in response.json()["error"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "path", ["/articles/a-1001/similar?k=3", "/articles/a-1001", "/articles?q=valdoria", "/info"]
)
def test_unknown_query_parameters_are_ignored(client: TestClient, path: str) -> None:
    # A link shared with tracking parameters, or jQuery's cache-buster, must still read, and
    # share the ETag (and so a CDN's copy) of the plain URL.
    plain = client.get(path)
    for extra in ("utm_source=newsletter&utm_medium=email", "_=1712345678901", "fbclid=IwAR0x"):
        response = client.get(f"{path}&{extra}" if "?" in path else f"{path}?{extra}")
        assert response.status_code == 200, response.text
        assert response.json() == plain.json()
        assert response.headers["etag"] == plain.headers["etag"]


def test_unknown_id_and_unknown_endpoint(client: TestClient, shared_index: Path) -> None:
    response = client.get("/articles/no-such-id/similar")
    assert response.status_code == 404
    assert response.json()["error"] == "article 'no-such-id' is not in the index"
    assert str(shared_index) not in response.text
    assert client.get("/articles/no-such-id").status_code == 404
    missing = client.get("/no/such/endpoint")
    assert missing.status_code == 404 and "/docs" in missing.json()["error"]
    assert client.patch("/info").status_code == 405


@pytest.mark.parametrize(
    "article_id",
    [
        "a/b",
        "../../etc/passwd",
        "%2e%2e",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..",
        'it\'s "quoted"',
        "📰🔥",
        "x" * 10_000,
        "a-1001\r\nX-Injected: 1",
        "a-1001%00",
    ],
)
def test_hostile_ids_are_404_json(client: TestClient, article_id: str) -> None:
    from urllib.parse import quote

    for path in (f"/articles/{quote(article_id, safe='')}", f"/articles/{article_id}"):
        for suffix in ("", "/similar"):
            try:
                response = client.get(path + suffix)
            except Exception:  # the client refused to send it: fine
                continue
            if not response.request.url.raw_path.startswith(b"/articles/"):
                continue  # the client resolved the dots itself: another URL
            assert response.status_code in (404, 422), (path, response.text)
            assert "error" in response.json()
            assert "x-injected" not in response.headers
            assert "root:" not in response.text
    assert client.get("/healthz").status_code == 200


def test_malformed_json_and_wrong_shapes(client: TestClient) -> None:
    bad = client.post(
        "/similar", content=b'{"text": ', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    wrong = client.post("/similar", json={"text": "x", "k": "many"})
    assert wrong.status_code == 422 and "'k'" in wrong.json()["error"]
    extra = client.post("/similar", json={"text": "x", "colour": "red"})
    assert extra.status_code == 422 and "colour" in extra.json()["error"]
    empty = client.post("/similar", json={"text": ""})
    assert empty.status_code == 422 and "text" in empty.json()["error"]
    array = client.post("/similar", json=[1, 2])
    assert array.status_code == 422


def test_body_over_the_limit_is_413(shared_index: Path) -> None:
    app = create_app(shared_index, options=ServeOptions(max_body_bytes=1000, token=TOKEN))
    with TestClient(app) as test_client:
        response = test_client.post("/similar", json={"text": "x" * 2000})
        assert response.status_code == 413 and "1000 bytes" in response.json()["error"]
        chunks = (b"[" + b" " * 500 for _ in range(4))  # streamed: no Content-Length
        streamed = test_client.put("/articles", content=chunks, headers=AUTH)
        assert streamed.status_code == 413


def test_the_api_reference_works_offline(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert not re.search(r"(?:https?:)?//[\w.-]", html), f"{page} names another host"
        assets = re.findall(r"(?:src|href)=[\"']([^\"']+)", html)
        assert assets and all(client.get(url).status_code == 200 for url in assets), assets
    assert "/openapi.json" in client.get("/docs").text


# -- errors as problem details (RFC 9457) -------------------------------------------------------


def assert_problem(response: Any, name: str, status: int) -> dict[str, Any]:
    """The answer is the problem details of kind ``name``, from ``errors.PROBLEMS``."""
    from recommender.http.errors import PROBLEMS

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    problem = PROBLEMS[name]
    assert body["type"] == f"https://recommender.invalid/problems/{name}"
    assert (body["title"], body["status"]) == (problem.title, status)
    assert body["detail"] == body["error"] and body["detail"]
    return body


def test_every_kind_of_error_is_problem_json(
    writer: TestClient, sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_problem(writer.get("/articles/nope/similar"), "unknown-article", 404)
    assert_problem(writer.delete("/articles/nope", headers=AUTH), "unknown-article", 404)
    assert_problem(writer.get("/no/such/endpoint"), "not-found", 404)
    assert_problem(writer.patch("/info"), "method-not-allowed", 405)
    too_many = writer.get("/articles/a-1001/similar?k=100000")
    assert "--max-k" in assert_problem(too_many, "invalid-query", 422)["detail"]
    assert_problem(writer.get("/articles/a-1001/similar?lexical_weight=2"), "invalid-query", 422)
    assert_problem(writer.get("/articles/a-1001/similar?K=5"), "validation", 422)
    wrong = assert_problem(writer.post("/similar", json={"text": 1}), "validation", 422)
    assert wrong["problems"][0]["parameter"] == "text"  # kept where it was sent before
    for path, method in (("/similar", "POST"), ("/articles", "PUT")):
        sent = {**AUTH, "Content-Type": "application/json"}
        bad = writer.request(method, path, content=b"{", headers=sent)
        assert_problem(bad, "invalid-json", 400)
    assert_problem(writer.put("/articles", json=[]), "unauthorized", 401)
    assert_problem(
        writer.put("/articles", json=[], headers={"Authorization": "Bearer x"}), "forbidden", 403
    )
    invalid = writer.put("/articles", json=[{"title": "no id"}], headers=AUTH)
    assert assert_problem(invalid, "invalid-articles", 422)["invalid"][0]["position"] == 0
    with writer_lock(sample_index):
        busy = writer.put("/articles", json=[{"id": "n", "title": "t"}], headers=AUTH)
        assert_problem(busy, "index-busy", 409)


def test_errors_outside_the_routes_are_problem_json(
    shared_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(shared_index, options=ServeOptions(max_body_bytes=100, token=TOKEN))
    with TestClient(app) as test_client:
        told = test_client.post("/similar", json={"text": "x" * 200})
        assert_problem(told, "payload-too-large", 413)
        streamed = test_client.put("/articles", content=(b"[" * 60 for _ in range(3)), headers=AUTH)
        assert_problem(streamed, "payload-too-large", 413)
    with TestClient(create_app(tmp_path / "later")) as test_client:
        assert_problem(test_client.get("/readyz"), "index-unavailable", 503)
        assert_problem(test_client.get("/info"), "index-unavailable", 503)

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Recommender, "info", broken)
    with TestClient(create_app(shared_index), raise_server_exceptions=False) as test_client:
        failed = assert_problem(test_client.get("/info"), "internal-error", 500)
        assert "a bug" not in failed["detail"]


def test_the_problem_table_is_in_http_md() -> None:
    from recommender.http.errors import PROBLEMS

    doc = (Path(__file__).resolve().parent.parent / "docs" / "http.md").read_text()
    for problem in PROBLEMS.values():
        assert f"| `{problem.name}` | {problem.status} |" in doc, problem.name


# -- writes --------------------------------------------------------------------------------------


def test_writes_need_the_token(writer: TestClient, sample_index: Path) -> None:
    batch = [{"id": "n-1", "title": "Valdoria rebuilds after the quake"}]
    missing = writer.put("/articles", json=batch)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = writer.put("/articles", json=batch, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    basic = writer.put("/articles", json=batch, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert writer.delete("/articles/a-1001").status_code == 401
    assert (
        writer.delete("/articles/a-1001", headers={"Authorization": "Bearer x"}).status_code == 403
    )
    assert writer.get("/articles/n-1").status_code == 404
    assert writer.get("/articles/a-1001").status_code == 200
    with Recommender.open(sample_index) as rec:
        assert "n-1" not in rec and "a-1001" in rec


def test_no_token_configured_refuses_writes(sample_index: Path) -> None:
    with TestClient(create_app(sample_index, encoder=FakeEncoder())) as test_client:
        batch = [{"id": "n-1", "title": "Valdoria rebuilds"}]
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            response = test_client.put("/articles", json=batch, headers=headers)
            assert response.status_code == 403 and "RECOMMENDER_TOKEN" in response.json()["error"]
        assert test_client.delete("/articles/a-1001", headers=AUTH).status_code == 403
    with Recommender.open(sample_index) as rec:
        assert "n-1" not in rec and "a-1001" in rec


def test_put_adds_and_replaces_then_delete_removes(writer: TestClient) -> None:
    batch = [
        {"id": "n-1", "title": "Valdoria quake: aftershock rattles Corvena", "category": "world"},
        {"id": 77, "title": "Numeric id kept as a string", "published_at": "2026-09-03"},
        {"id": "a/b 📰", "title": "An id with a slash and an emoji"},
    ]
    response = writer.put("/articles", json=batch, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["added"] == 3 and response.json()["index"] == "sample-index"
    assert writer.get("/articles/77").json()["published_at"] == "2026-09-03T00:00:00Z"
    assert writer.get("/articles/a%2Fb%20%F0%9F%93%B0").json()["title"].startswith("An id")
    assert writer.get("/articles/a/b 📰/similar?k=2").status_code == 200
    replaced = writer.put(
        "/articles", json=[{"id": "n-1", "title": "Corvena aftershock, revised"}], headers=AUTH
    )
    assert replaced.json()["replaced"] == 1
    gone = writer.delete("/articles/n-1", headers=AUTH)
    assert gone.status_code == 200 and gone.json()["removed"] == 1
    assert writer.get("/articles/n-1").status_code == 404
    ids = [item["id"] for item in writer.get("/articles/a-1001/similar?k=100").json()["related"]]
    assert "n-1" not in ids
    assert writer.delete("/articles/n-1", headers=AUTH).status_code == 404


def test_invalid_records_are_named_by_position(writer: TestClient) -> None:
    batch: list[Any] = [
        {"id": "ok-1", "title": "A fine article"},
        {"id": "bad-1", "title": ["a", "list"]},
        "not an object",
        {"id": "bad-2", "title": "dated", "published_at": "last tuesday"},
        {"title": "no id"},
    ]
    response = writer.put("/articles", json=batch, headers=AUTH)
    assert response.status_code == 422
    data = response.json()
    assert [item["position"] for item in data["invalid"]] == [1, 2, 3, 4]
    assert "title must be a string" in data["invalid"][0]["error"]
    assert "not an ISO-8601 date" in data["invalid"][2]["error"]
    assert data["error"].startswith("article at position 1:")
    assert writer.get("/articles/ok-1").status_code == 404  # nothing written
    skipped = writer.put("/articles?skip_invalid=true", json=batch, headers=AUTH)
    assert skipped.status_code == 200 and skipped.json()["skipped"] == 4
    assert writer.get("/articles/ok-1").status_code == 200
    for body in (b"[{", b'{"id": "x", "title": "an object, not a list"}'):
        bad = writer.put("/articles", content=body, headers=AUTH)
        assert bad.status_code in (400, 422) and "error" in bad.json()


def test_a_second_writer_gets_409(writer: TestClient, sample_index: Path) -> None:
    batch = [{"id": "n-1", "title": "Valdoria quake"}]
    with writer_lock(sample_index):
        busy = writer.put("/articles", json=batch, headers=AUTH)
        assert busy.status_code == 409 and "wait" in busy.json()["error"]
        assert writer.delete("/articles/a-1001?wait=0", headers=AUTH).status_code == 409
        assert writer.get("/articles/a-1001/similar").status_code == 200  # reads go on
    assert writer.put("/articles?wait=100000", json=batch, headers=AUTH).status_code == 422
    assert writer.put("/articles?wait=5", json=batch, headers=AUTH).status_code == 200


# -- logs and metrics ----------------------------------------------------------------------------


def test_a_log_line_per_request_and_metrics(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="recommender.http.middleware"):
        client.get("/articles/a-1001/similar?k=2")
        client.get("/articles/nope/similar")
    lines = [r.getMessage() for r in caplog.records if r.name == "recommender.http.middleware"]
    assert len(lines) == 2
    assert " GET /articles/a-1001/similar?k=2 200 " in lines[0] and lines[0].endswith(" ms")
    assert " 404 " in lines[1]
    text = client.get("/metrics").text
    route = 'route="/articles/{article_id:path}/similar"'
    assert f'recommender_http_requests_total{{method="GET",{route},status="200"}}' in text
    assert "recommender_http_request_duration_seconds_bucket" in text


# -- real sockets ------------------------------------------------------------------------------


def _response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_huge_body_is_refused_unread(shared_index: Path) -> None:
    """A request claiming 100 MB gets 413 after its headers: the server does not wait for
    (or read) the body, so 64 KiB of it is all this test ever sends."""
    app = create_app(shared_index, options=ServeOptions(token=TOKEN))
    with live_server(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                b"PUT /articles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                b"Content-Length: 104857600\r\n\r\n" + b" " * 65536
            )
            reply = _response(sock)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            # Chunked (no length given): cut off once past the limit.
            sock.sendall(b"POST /similar HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            sent = 0
            chunk = b"x" * 65536
            try:
                while sent < 64 * 1024 * 1024:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                    sock.setblocking(False)
                    try:
                        if sock.recv(1, socket.MSG_PEEK):
                            break
                    except BlockingIOError:
                        pass
                    finally:
                        sock.setblocking(True)
            except (BrokenPipeError, ConnectionResetError):
                pass
            reply = _response(sock)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert sent < 64 * 1024 * 1024  # answered long before the client ran out of body
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(sock).startswith(b"HTTP/1.1 200")


def test_slow_clients_do_not_block_others(shared_index: Path) -> None:
    """A few sockets that send half a request and stall; others are still served."""
    import httpx

    with live_server(create_app(shared_index)) as url:
        port = int(url.rsplit(":", 1)[1])
        stalled = []
        for n in range(5):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(
                b"GET /articles/a-1001/similar HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"%d" % n
            )
            stalled.append(sock)
        body = [b"PUT /articles HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[{"]
        slow_body = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow_body.sendall(body[0])
        stalled.append(slow_body)
        try:
            for _ in range(3):
                response = httpx.get(f"{url}/articles/a-1001/similar?k=2", timeout=30)
                assert response.status_code == 200 and len(response.json()["related"]) == 2
            raw = httpx.get(f"{url}/articles/%2e%2e/similar", timeout=30)
            assert raw.status_code == 404
            for target in (b"/articles/../similar", b"/articles/../../etc/passwd/similar"):
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert _response(sock).startswith(b"HTTP/1.1 404")
        finally:
            for sock in stalled:
                sock.close()
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200


def _metric(text: str, name: str) -> float:
    [found] = re.findall(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found)


def test_index_metrics(writer: TestClient) -> None:
    text = writer.get("/metrics").text
    info = writer.get("/info").json()
    assert _metric(text, "recommender_index_articles") == info["articles"]
    assert _metric(text, "recommender_index_generation") == info["generation"]
    assert 0 <= _metric(text, "recommender_index_seconds_since_refresh") < 60
    assert _metric(text, "recommender_index_seconds_since_write") >= 0
    precomputed = 'recommender_related_answers_total{source="precomputed"}'
    searched = 'recommender_related_answers_total{source="searched"}'
    assert _metric(text, precomputed) == _metric(text, searched) == 0

    assert writer.get("/articles/a-1001/similar?k=3").status_code == 200  # the lists hold it
    assert writer.get("/articles/a-2016/similar?k=3").status_code == 200
    assert writer.get("/articles/a-1001/similar?k=3&same_category=true").status_code == 200
    text = writer.get("/metrics").text
    assert (_metric(text, precomputed), _metric(text, searched)) == (2, 1)

    time.sleep(1.1)  # the copy of the sample keeps its build's file times
    assert _metric(writer.get("/metrics").text, "recommender_index_seconds_since_write") > 1
    article = {"id": "m-1", "title": "Metrics test", "body": "A new article about the metro."}
    assert writer.put("/articles", json=[article], headers=AUTH).status_code == 200
    text = writer.get("/metrics").text
    assert _metric(text, "recommender_index_articles") == info["articles"] + 1
    assert _metric(text, "recommender_index_generation") == info["generation"] + 1
    assert _metric(text, "recommender_index_seconds_since_write") < 1.0
    assert _metric(text, "recommender_index_seconds_since_refresh") < 1.0


def test_request_id_taken_echoed_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="recommender.http.middleware"):
        given = client.get("/info", headers={"X-Request-ID": "edge-7f3a:1.2_b"})
        made = [client.get("/articles/nope/similar") for _ in range(2)]
    assert given.headers["x-request-id"] == "edge-7f3a:1.2_b"
    ids = [response.headers["x-request-id"] for response in made]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids) and ids[0] != ids[1]
    records = [r for r in caplog.records if r.name == "recommender.http.middleware"]
    assert [getattr(r, "request_id", None) for r in records] == ["edge-7f3a:1.2_b", *ids]
    assert " edge-7f3a:1.2_b GET /info 200 " in records[0].getMessage()


def test_json_log_lines(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    from recommender.http.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="recommender.http.middleware"):
        client.get("/articles/a-1001/similar?k=2", headers={"X-Request-ID": "r-1"})
    [record] = [r for r in caplog.records if r.name == "recommender.http.middleware"]
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert {
        key: data[key] for key in ("level", "logger", "method", "path", "status", "request_id")
    } == {
        "level": "info",
        "logger": "recommender.http.middleware",
        "method": "GET",
        "path": "/articles/a-1001/similar?k=2",
        "status": 200,
        "request_id": "r-1",
    }
    assert data["ms"] >= 0 and data["time"].endswith("+00:00") and "r-1" in data["message"]
    try:
        raise ValueError("boom\nforged line")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(failed)
    assert "\n" not in line and "boom" in json.loads(line)["exception"]


def test_json_log_config_builds_the_json_formatter() -> None:
    import logging.config

    from recommender.http.logs import JsonFormatter
    from recommender.http.workers import log_config

    for log_format, kind in (("json", JsonFormatter), ("plain", logging.Formatter)):
        config = log_config("info", log_format)
        made = logging.config.DictConfigurator(config).configure_formatter(
            config["formatters"]["chosen"]
        )
        assert type(made) is kind


# -- running it -----------------------------------------------------------------------------


def test_serve_command_passes_its_options(
    shared_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.cli import app

    seen: dict[str, Any] = {}
    monkeypatch.setattr("recommender.http.workers.run", lambda index, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("RECOMMENDER_TOKEN", TOKEN)
    result = CliRunner().invoke(
        app,
        [
            "serve",
            "--index",
            str(shared_index),
            "--port",
            "9001",
            "--workers",
            "2",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "https://b.example",
            "--max-age",
            "30",
            "--write-wait",
            "2.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 9001 and seen["workers"] == 2
    options = seen["options"]
    assert options.token == TOKEN and options.max_age == 30 and options.write_wait == 2.5
    assert options.cors_origins == ("https://a.example", "https://b.example")
    missing = CliRunner().invoke(app, ["serve", "--index", str(shared_index.parent / "none")])
    assert missing.exit_code == 1 and "error:" in missing.stderr


def _serve_params() -> list[Any]:
    import typer

    from recommender.cli import app

    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return [param for param in command.params if param.name != "help"]


def test_every_serve_option_has_its_environment_variable() -> None:
    """A container or unit file configures the server without a command line: an option
    added later must not forget its variable."""
    params = _serve_params()
    assert len(params) >= 10
    for param in params:
        assert param.envvar == f"RECOMMENDER_{param.name.upper()}", param.name
        assert param.show_envvar, param.name


def test_serve_options_from_the_environment(
    shared_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.cli import app

    seen: dict[str, Any] = {}
    monkeypatch.setattr("recommender.http.workers.run", lambda index, **kwargs: seen.update(kwargs))
    environment = {
        "RECOMMENDER_INDEX": str(shared_index),
        "RECOMMENDER_HOST": "0.0.0.0",
        "RECOMMENDER_PORT": "9002",
        "RECOMMENDER_WORKERS": "3",
        "RECOMMENDER_MAX_AGE": "5",
        "RECOMMENDER_CORS_ORIGIN": "https://a.example https://b.example",
        "RECOMMENDER_MAX_BODY_BYTES": "1000",
        "RECOMMENDER_WRITE_WAIT": "1.5",
        "RECOMMENDER_MAX_K": "20",
        "RECOMMENDER_LOG_LEVEL": "WARNING",
        "RECOMMENDER_LOG_FORMAT": "json",
    }
    result = CliRunner().invoke(app, ["serve"], env=environment)
    assert result.exit_code == 0, result.output
    assert (seen["host"], seen["port"], seen["workers"]) == ("0.0.0.0", 9002, 3)
    assert (seen["log_level"], seen["log_format"]) == ("warning", "json")
    said = json.loads(result.stderr.strip())  # with JSON logs, the first line is one too
    assert said["level"] == "info" and said["message"].startswith("serving ")
    options = seen["options"]
    assert options.cors_origins == ("https://a.example", "https://b.example")
    assert (options.max_age, options.max_body_bytes, options.write_wait, options.max_k) == (
        5,
        1000,
        1.5,
        20,
    )
    # The command line wins over the environment.
    seen.clear()
    given = ["serve", "--port", "9003", "--max-age", "0", "--cors-origin", "https://c.example"]
    result = CliRunner().invoke(app, given, env=environment)
    assert result.exit_code == 0, result.output
    assert seen["port"] == 9003 and seen["workers"] == 3
    assert seen["options"].max_age == 0
    assert seen["options"].cors_origins == ("https://c.example",)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECOMMENDER_PORT", "eighty"),
        ("RECOMMENDER_WORKERS", "0"),
        ("RECOMMENDER_MAX_AGE", "-1"),
        ("RECOMMENDER_WRITE_WAIT", "soon"),
        ("RECOMMENDER_LOG_LEVEL", "loud"),
        ("RECOMMENDER_LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_environment_value_names_its_variable(
    shared_index: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from recommender.cli import app

    monkeypatch.setattr("recommender.http.workers.run", lambda index, **kwargs: None)
    result = CliRunner().invoke(app, ["serve", "--index", str(shared_index)], env={name: value})
    assert result.exit_code == 2
    assert name in result.stderr and repr(value).strip("'") in result.stderr
    assert "Traceback" not in result.output


def test_worker_app_from_environment(shared_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender.http.app import app_from_environment
    from recommender.http.options import INDEX_ENV, OPTIONS_ENV, TOKEN_ENV

    options = ServeOptions(token="ignored", max_age=7, cors_origins=("https://a.example",))
    monkeypatch.setenv(OPTIONS_ENV, json.dumps(options.public()))
    monkeypatch.setenv(INDEX_ENV, str(shared_index))
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert "token" not in options.public()
    with TestClient(app_from_environment()) as test_client:
        assert test_client.get("/info").headers["cache-control"] == "public, max-age=7"
        wrong = {"Authorization": "Bearer ignored"}
        assert test_client.delete("/articles/no-such-id", headers=wrong).status_code == 403
        assert test_client.delete("/articles/no-such-id", headers=AUTH).status_code == 404


# -- languages ----------------------------------------------------------------------------------


def test_similar_same_language(client: TestClient) -> None:
    everything = client.get("/articles/a-4004/similar?k=10").json()["related"]
    assert len({item["language"] for item in everything}) > 1
    response = client.get("/articles/a-4004/similar?k=10&same_language=true")
    assert response.status_code == 200
    items = response.json()["related"]
    assert items and {item["language"] for item in items} == {"tr"}
    assert all(item["lang"] == "tr" for item in items)  # the sample's field, kept as given


def test_draft_same_language_and_lang(client: TestClient) -> None:
    draft = {"text": "В Лирове открылась первая линия метро", "k": 10, "same_language": True}
    response = client.post("/similar", json=draft)
    assert response.status_code == 200, response.text
    items = response.json()["related"]
    assert items and {item["language"] for item in items} == {"ru"}
    assert items[0]["id"] == "a-4003" and items[0]["title"] == draft["text"]
    response = client.post("/similar", json={**draft, "lang": "az"})
    assert {item["language"] for item in response.json()["related"]} == {"az"}
    ids = [item["id"] for item in response.json()["related"]]
    for given in ("aze", "az-Latn-AZ", "Azerbaijani"):  # any form: one language
        again = client.post("/similar", json={**draft, "lang": given}).json()["related"]
        assert [item["id"] for item in again] == ids
    huge = client.post("/similar", json={**draft, "lang": "x" * 1_000_000})  # no language
    assert huge.status_code == 200 and {item["language"] for item in huge.json()["related"]} == {
        "ru"
    }
    response = client.post("/similar", json={**draft, "same_language": False})
    assert len({item["language"] for item in response.json()["related"]}) > 1


# -- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("read_threads", [1, 2])
def test_reads_run_on_the_read_threads_only(
    shared_index: Path, monkeypatch: pytest.MonkeyPatch, read_threads: int
) -> None:
    """Requests beyond read_threads wait their turn instead of sharing the GIL on 40 threads."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from recommender.read.held import Lists

    running, most = 0, 0
    lock = threading.Lock()

    def counting(real: Any) -> Any:
        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            try:
                return real(self, *args, **kwargs)
            finally:
                with lock:
                    running -= 1

        return counted

    # A read with no option but k is answered from the lists as JSON, else by similar.
    monkeypatch.setattr(Recommender, "similar", counting(Recommender.similar))
    monkeypatch.setattr(Lists, "json", counting(Lists.json))
    options = ServeOptions(read_threads=read_threads)
    with TestClient(create_app(shared_index, encoder=FakeEncoder(), options=options)) as client:
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda i: client.get(f"/articles/a-10{i:02d}/similar?k=3"), range(1, 9))
            )
        assert client.get("/healthz").status_code == 200
    assert [a.status_code for a in answers] == [200] * 8
    assert most == read_threads


def test_writes_run_on_one_thread_of_lower_priority(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import threading

    from recommender.http.threads import WRITER_NICENESS

    seen: list[tuple[str, int]] = []
    real = Recommender.add

    def noted(self: Recommender, *args: Any, **kwargs: Any) -> Any:
        me = threading.get_native_id()
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, me)))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Recommender, "add", noted)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    app = create_app(sample_index, encoder=FakeEncoder(), options=ServeOptions(token=TOKEN))
    with TestClient(app) as client:
        for n in range(2):
            body = [{"id": f"w-{n}", "title": "Quake in the north"}]
            assert client.put("/articles", json=body, headers=AUTH).status_code == 200
        assert client.delete("/articles/w-0", headers=AUTH).status_code == 200
    assert len(seen) == 2 and len({name for name, _ in seen}) == 1
    assert seen[0][0].startswith("recommender-writer")
    assert all(priority == min(base + WRITER_NICENESS, 19) for _, priority in seen)


def test_overrides_over_http_need_the_token_and_apply(writer: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    pin = "/overrides/pins?article=a-1001&related=a-1010&position=2"
    assert writer.put(pin).status_code == 401
    assert writer.put(pin, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert writer.delete("/overrides/hidden?article=a-1012").status_code == 401
    assert writer.get("/overrides").json() == {"overrides": []}
    answer = writer.put(pin, headers=auth)
    assert answer.status_code == 200 and answer.json() == {
        "kind": "pin",
        "article_id": "a-1001",
        "related_id": "a-1010",
        "position": 2,
        "undone": False,
    }
    assert writer.put("/overrides/hidden?article=a-1012", headers=auth).status_code == 200
    first = writer.get("/articles/a-1001/similar?k=3").json()["related"][0]["id"]
    blocked = writer.put(f"/overrides/blocks?article=a-1001&related={first}", headers=auth)
    assert blocked.status_code == 200
    ids = [r["id"] for r in writer.get("/articles/a-1001/similar?k=3").json()["related"]]
    assert ids[1] == "a-1010" and first not in ids and "a-1012" not in ids
    listed = writer.get("/overrides").json()["overrides"]
    assert [o["kind"] for o in listed] == ["pin", "block", "hide"]
    assert writer.get("/info").json()["overrides"] == {"pins": 1, "blocks": 1, "hidden": 1}
    unknown = writer.put("/overrides/pins?article=a-1001&related=nope", headers=auth)
    assert unknown.status_code == 404
    itself = writer.put("/overrides/blocks?article=a-1001&related=a-1001", headers=auth)
    assert itself.status_code == 422
    assert writer.delete(pin, headers=auth).json()["undone"] is True
    assert writer.delete("/overrides/hidden?article=a-1012", headers=auth).status_code == 200
    unblock = writer.delete(f"/overrides/blocks?article=a-1001&related={first}", headers=auth)
    assert unblock.status_code == 200
    assert writer.get("/overrides").json() == {"overrides": []}
