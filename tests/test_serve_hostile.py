"""The HTTP service against hostile requests: what a client sends never becomes a metric label
or a raw log line, ids with encoded slashes are one id, deep JSON is a 400, conditional
requests never hide an error, and messages that had the index's folder in them still read.

Through FastAPI's TestClient over the sample indexed with the fake encoder; what only a raw
socket can send goes to uvicorn on loopback (tests/live_server.py).
"""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEncoder, SampleBuilds
from fastapi.testclient import TestClient
from live_server import live_server

from recommender.http.app import create_app
from recommender.http.metrics import Metrics
from recommender.http.middleware import Edge

LOGGER = "recommender.http.middleware"


@pytest.fixture(scope="module")
def shared_index(sample_builds: SampleBuilds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the sample for the module's tests that do not write."""
    return sample_builds.copy(tmp_path_factory.mktemp("serve-hostile") / "ix")


@pytest.fixture
def client(shared_index: Path) -> Any:
    """A fresh app a test (its metrics start empty)."""
    app = create_app(shared_index, encoder=FakeEncoder())
    with TestClient(app) as test_client:
        yield test_client


def _raw_request(port: int, line: bytes) -> bytes:
    """Send the request ``line`` (method and target) as given, and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(line + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


# -- metrics and log lines -------------------------------------------------------------------


def _label_values(metrics: str, label: str) -> set[str]:
    return set(re.findall(rf'^recommender_http_\w+\{{.*?{label}="([^"]*)"', metrics, re.M))


def test_made_up_methods_and_paths_do_not_grow_metrics(client: TestClient) -> None:
    client.get("/articles/a-1001")
    before = len(client.get("/metrics").content)
    for n in range(40):
        client.request(f"M{n:02d}" + "X" * 2000, f"/articles/a-1001?n={n}")
        client.request("GET", f"/no/such/path/{n}" + "y" * 1000)
        client.request(f"Q{n:02d}", f"/{n}" + "z" * 1000)
    text = client.get("/metrics").text
    assert len(text) < before + 20_000, len(text)  # a few new series, not one per request
    assert _label_values(text, "method") <= {"GET", "other"}
    assert _label_values(text, "route") <= {"/articles/{article_id:path}", "/metrics", "unmatched"}
    assert 'method="other",route="/articles/{article_id:path}",status="405"} 40.0' in text
    assert 'method="GET",route="unmatched",status="404"} 40.0' in text


def test_lowercase_and_odd_methods_are_other(shared_index: Path) -> None:
    app = create_app(shared_index, encoder=FakeEncoder())
    with live_server(app) as url:
        port = int(url.rsplit(":", 1)[1])
        for method in (b"get", b"GeT", b"PROPFIND", b"G~E!T"):
            answer = _raw_request(port, method + b" /articles/a-1001")
            assert answer.startswith(b"HTTP/1.1 405"), answer[:100]
        metrics = _raw_request(port, b"GET /metrics")
    text = metrics.decode()
    assert 'method="other",route="/articles/{article_id:path}",status="405"} 4.0' in text
    assert _label_values(text, "method") <= {"GET", "other"}


async def _answer_404(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize(
    ("method", "raw_path", "query", "peer"),
    [
        ("GET", b"/articles/\x1b[2J\x1b]0;owned\x07", b"", "127.0.0.1"),
        ("GET", b"/articles/a\r\n127.0.0.1 GET /forged 200 1.0 ms", b"x=\n\x9b", "127.0.0.1"),
        ("GET\r\nforged", b"/a", b"", "127.0.0.1"),
        ("X" * 5000, b"/" + b"\xff" * 5000, b"q=" + b"\x00" * 5000, "1.2.3.4\x1b[31m" * 100),
        ("GET", "/caf\u00e9/\u202eevil".encode(), b"", "::1"),
    ],
)
def test_the_log_line_is_escaped_and_bounded(
    caplog: pytest.LogCaptureFixture, method: str, raw_path: bytes, query: bytes, peer: str
) -> None:
    """Whatever the server hands over (a proxy's X-Forwarded-For becomes the client, other
    servers than uvicorn's h11 pass more bytes), the line is printable ASCII and short."""
    import anyio

    edge = Edge(_answer_404, max_body_bytes=1000, metrics=Metrics(False))
    scope = {
        "type": "http",
        "method": method,
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": query,
        "headers": [],
        "client": (peer, 5000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    with caplog.at_level(logging.INFO, logger=LOGGER):
        anyio.run(edge, scope, receive, send)
    [line] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert re.fullmatch(r"[\x20-\x7e]+", line), line
    assert len(line) < 400, len(line)
    assert line.endswith(" ms") and " 404 " in line
