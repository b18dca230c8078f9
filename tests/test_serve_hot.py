"""``HotReads`` (routes/related.py), the shortcut of ``GET /articles/{id}/similar`` with no
options but ``k``: every request it takes is answered byte for byte as the route answers it,
and every request it may not answer exactly is left to the route.

Two apps over the same index, one without the shortcut, are sent the same requests; status,
headers, body, the request metrics and the log lines must be the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEncoder, SampleBuilds
from fastapi import FastAPI
from fastapi.testclient import TestClient

from recommender.http.app import create_app
from recommender.http.options import ServeOptions
from recommender.http.routes.related import HotReads

SITE = "https://news.example"


@pytest.fixture(scope="module")
def shared_index(sample_builds: SampleBuilds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_builds.copy(tmp_path_factory.mktemp("hot") / "ix")


def app_of(index: Path, hot: bool) -> FastAPI:
    options = ServeOptions(max_age=120, max_k=50, cors_origins=(SITE,))
    app = create_app(index, encoder=FakeEncoder(), options=options)
    if not hot:  # before the first request builds the middleware stack
        app.user_middleware = [m for m in app.user_middleware if m.cls is not HotReads]
    return app


@pytest.fixture(scope="module")
def clients(shared_index: Path) -> Iterator[tuple[TestClient, TestClient]]:
    with (
        TestClient(app_of(shared_index, hot=True)) as hot,
        TestClient(app_of(shared_index, hot=False)) as route,
    ):
        yield hot, route


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether HotReads answered each request it saw (False: left to the route)."""
    seen: list[bool] = []
    real = HotReads._answered

    async def spied(self: HotReads, scope: Any, send: Any) -> bool:
        taken = await real(self, scope, send)
        if scope["path"] != "/metrics":
            seen.append(taken)
        return taken

    monkeypatch.setattr(HotReads, "_answered", spied)
    return seen


def exchange(client: TestClient, method: str, url: str, headers: dict[str, str]) -> Any:
    response = client.request(method, url, headers={"X-Request-ID": "req-1", **headers})
    return response.status_code, sorted(response.headers.multi_items()), response.content


# (method, url, headers, taken by HotReads)
REQUESTS = [
    ("GET", "/articles/a-1001/similar", {}, True),
    ("GET", "/articles/a-1001/similar?k=3", {}, True),
    ("GET", "/articles/a-1002/similar?k=0", {}, True),
    ("GET", "/articles/a-1001/similar?k=50", {}, True),
    ("GET", "/articles/a-1001/similar?k=10", {"Accept-Encoding": "gzip"}, True),
    ("GET", "/articles/a-1001/similar?k=10", {"Origin": SITE}, True),
    ("GET", "/articles/a-1001/similar?k=10", {"Origin": "https://x.example"}, True),
    ("HEAD", "/articles/a-1001/similar?k=10", {"Accept-Encoding": "gzip"}, True),
    ("GET", "/articles/a-10%30%31/similar?k=2", {}, True),  # a-1001, encoded
    ("GET", "/articles/a-1001/similar?k=10", {"Accept-Encoding": "identity"}, True),
    ("GET", "/articles/a-1001/similar?k=10", {"Host": "evil/x?y#z"}, True),
    ("HEAD", "/articles/a-1002/similar?k=0", {"Origin": SITE}, True),
    # left to the route:
    ("GET", "/articles/a-1001/similar?k=51", {}, False),  # over --max-k: 422
    ("GET", "/articles/a-1001/similar?k=010", {}, False),
    ("GET", "/articles/a-1001/similar?k=10&utm_source=x", {}, False),
    ("GET", "/articles/a-1001/similar?K=10", {}, False),
    ("GET", "/articles/a-1001/similar?k=-1", {}, False),
    ("GET", "/articles/no-such-id/similar", {}, False),  # 404
    ("HEAD", "/articles/no-such-id/similar", {}, False),
    ("GET", "/articles/a-1001%2Fsimilar/similar", {}, False),  # an id with a slash: 404
    ("GET", "/articles/a-1001/similar", {"If-None-Match": "*"}, False),
    ("GET", "/articles/a-1001/similar?k=10&same_category=true", {}, False),
    ("GET", "/articles/a-1001/similar?k=10", {"Content-Length": "0"}, False),  # a body: Edge
]


@pytest.mark.parametrize(("method", "url", "headers", "taken"), REQUESTS)
def test_the_shortcut_answers_as_the_route(
    clients: tuple[TestClient, TestClient],
    answered: list[bool],
    method: str,
    url: str,
    headers: dict[str, str],
    taken: bool,
) -> None:
    hot, route = clients
    assert exchange(hot, method, url, headers) == exchange(route, method, url, headers)
    assert answered == [taken]


def test_a_304_and_its_etag_are_the_routes(clients: tuple[TestClient, TestClient]) -> None:
    hot, route = clients
    url = "/articles/a-1003/similar?k=4"
    tag = hot.get(url).headers["etag"]
    assert tag == route.get(url).headers["etag"]
    assert exchange(hot, "GET", url, {"If-None-Match": tag})[0] == 304
    assert exchange(hot, "GET", url, {"If-None-Match": tag}) == exchange(
        route, "GET", url, {"If-None-Match": tag}
    )


def test_metrics_and_log_lines_are_the_routes(
    shared_index: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same requests leave the same counts in /metrics and the same log lines."""
    counts, lines = [], []
    for hot in (True, False):
        caplog.clear()
        with (
            caplog.at_level(logging.INFO, logger="recommender.http.middleware"),
            TestClient(app_of(shared_index, hot)) as client,
        ):
            for method, url, headers, _ in REQUESTS:
                exchange(client, method, url, headers)
            metrics = client.get("/metrics", headers={"X-Request-ID": "req-1"}).text
        counts.append(
            [
                line
                for line in metrics.splitlines()
                if line.startswith(
                    ("recommender_http_requests_total", "recommender_related_answers_total")
                )
                or line.startswith("recommender_http_request_duration_seconds_count")
            ]
        )
        lines.append(
            [
                re.sub(r" [0-9.]+ ms$", " ms", record.getMessage())
                for record in caplog.records
                if record.name == "recommender.http.middleware"
            ]
        )
    assert counts[0] == counts[1]
    assert any('route="/articles/{article_id:path}/similar"' in line for line in counts[0])
    assert lines[0] == lines[1]
    assert len(lines[0]) == len(REQUESTS) + 1  # and /metrics


@pytest.mark.parametrize("origins", [(), ("*",)], ids=["no CORS", "any origin"])
def test_the_shortcut_answers_as_the_route_with_other_cors(
    shared_index: Path, answered: list[bool], origins: tuple[str, ...]
) -> None:
    """The headers CORS adds (or not) are the route's too, whatever the server's origins."""
    options = ServeOptions(max_age=5, cors_origins=origins)
    apps = []
    for hot in (True, False):
        app = create_app(shared_index, encoder=FakeEncoder(), options=options)
        if not hot:
            app.user_middleware = [m for m in app.user_middleware if m.cls is not HotReads]
        apps.append(app)
    with TestClient(apps[0]) as hot_client, TestClient(apps[1]) as route_client:
        for headers in (
            {},
            {"Origin": SITE},
            {"Accept-Encoding": "gzip", "Origin": "x"},
            {"Accept-Encoding": "identity"},
        ):
            for url in ("/articles/a-1001/similar", "/articles/a-1001/similar?k=1"):
                ours = exchange(hot_client, "GET", url, headers)
                assert ours == exchange(route_client, "GET", url, headers)
                assert ours[0] == 200
    assert answered == [True] * 8  # every one taken by the shortcut (the route's: not spied)
