"""The HTTP service against hostile requests: what a client sends never becomes a metric label
or a raw log line, ids with encoded slashes are one id, deep JSON is a 400, conditional
requests never hide an error, and messages that had the index's folder in them still read.

Through FastAPI's TestClient over the sample indexed with the fake encoder; what only a raw
socket can send goes to uvicorn on loopback (tests/live_server.py).
"""

from __future__ import annotations

import errno
import json
import logging
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import FakeEncoder, SampleBuilds, copy_index
from fastapi.testclient import TestClient
from live_server import live_server

from recommender.http.app import create_app
from recommender.http.metrics import Metrics
from recommender.http.middleware import Edge
from recommender.http.options import ServeOptions

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOGGER = "recommender.http.middleware"


@pytest.fixture(scope="module")
def shared_index(sample_builds: SampleBuilds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the sample for the module's tests that do not write."""
    return sample_builds.copy(tmp_path_factory.mktemp("serve-hostile") / "ix")


@pytest.fixture
def client(shared_index: Path) -> Any:
    """A fresh app for each test (its metrics start empty)."""
    app = create_app(shared_index, encoder=FakeEncoder())
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def writer(sample_index: Path) -> Any:
    """A client of a writable copy of the sample, with the token configured."""
    app = create_app(sample_index, encoder=FakeEncoder(), options=ServeOptions(token=TOKEN))
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


@pytest.mark.parametrize(
    "sent",
    [
        b"a\r\n127.0.0.1 GET /forged 200 1.0 ms",
        b"x" * 10240,
        b"x" * 129,
        b"\x1b[2J\x1b]0;owned\x07",
        b"id with spaces",
        b"",
        "caf\u00e9".encode(),
        b'"},{"level":"error"',
    ],
)
def test_a_hostile_request_id_is_replaced_not_logged(
    caplog: pytest.LogCaptureFixture, sent: bytes
) -> None:
    """X-Request-ID is logged and echoed: one that could forge a line, drive a terminal or
    swell the log is replaced by a new id, and appears nowhere."""
    import anyio

    from recommender.http.logs import JsonFormatter

    edge = Edge(_answer_404, max_body_bytes=1000, metrics=Metrics(False))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/a",
        "raw_path": b"/a",
        "query_string": b"",
        "headers": [(b"x-request-id", sent)],
        "client": ("127.0.0.1", 5000),
    }
    started: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            started.append(message)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        anyio.run(edge, scope, receive, send)
    [echoed] = [value for name, value in started[0]["headers"] if name == b"x-request-id"]
    assert re.fullmatch(rb"[0-9a-f]{32}", echoed)
    [record] = [r for r in caplog.records if r.name == LOGGER]
    line, as_json = record.getMessage(), JsonFormatter().format(record)
    assert echoed.decode() in line and json.loads(as_json)["request_id"] == echoed.decode()
    if sent:
        assert sent.decode("latin-1") not in line and sent.decode("latin-1") not in as_json
    assert re.fullmatch(r"[\x20-\x7e]+", line) and len(line) < 200


def test_a_safe_request_id_is_kept_up_to_128_characters() -> None:
    from recommender.http.logs import request_id

    longest = b"A-z0.9_:" * 16
    assert request_id(longest) == longest.decode()
    assert request_id(longest + b"x") != longest.decode() + "x"


# -- ids with encoded slashes ------------------------------------------------------------------

SLASHED = ["a-1001/similar", "a/../b", "a/b", "/similar", "x/similar/similar", "a-1001/", "%2F"]


@pytest.fixture(scope="module")
def slashed(sample_builds: SampleBuilds, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A client with the token over a copy of the sample holding the ids of ``SLASHED`` and
    a few more, each titled after its id."""
    path = sample_builds.copy(tmp_path_factory.mktemp("serve-slashed") / "ix")
    options = ServeOptions(token=TOKEN)
    with TestClient(create_app(path, encoder=FakeEncoder(), options=options)) as test_client:
        ids = [*SLASHED, 'it\'s "quoted" 📰', "a b", "100%", "a-1001%2Fsimilar"]
        batch = [{"id": i, "title": f"Valdoria quake {i}", "category": "world"} for i in ids]
        assert test_client.put("/articles", json=batch, headers=AUTH).status_code == 200
        yield test_client


@pytest.mark.parametrize("article_id", [*SLASHED, 'it\'s "quoted" 📰', "a b", "100%"])
def test_an_encoded_slash_is_part_of_the_id(slashed: TestClient, article_id: str) -> None:
    encoded = quote(article_id, safe="")
    article = slashed.get(f"/articles/{encoded}")
    assert article.status_code == 200, article.text
    assert article.json()["id"] == article_id
    related = slashed.get(f"/articles/{encoded}/similar?k=3")
    assert related.status_code == 200, related.text
    assert article_id not in [item["id"] for item in related.json()["related"]]  # the query article


def test_the_percent_escapes_are_decoded_once(slashed: TestClient) -> None:
    assert slashed.get("/articles/a-1001%2Fsimilar").json()["id"] == "a-1001/similar"
    assert slashed.get("/articles/a-1001%2fsimilar").json()["id"] == "a-1001/similar"
    assert slashed.get("/articles/a-1001%252Fsimilar").json()["id"] == "a-1001%2Fsimilar"
    assert slashed.get("/articles/%252F").json()["id"] == "%2F"
    assert slashed.get("/articles/100%25").json()["id"] == "100%"
    assert slashed.get("/articles/a%2F..%2Fb").json()["id"] == "a/../b"
    assert slashed.get("/articles/a%2F..%2Fc").status_code == 404
    missing = slashed.get("/articles/a-1001%2Fsimilar%0A")
    assert missing.status_code == 404  # not a-1001's list with the newline dropped
    assert missing.json()["error"] == "article 'a-1001/similar\\n' is not in the index"


def test_unencoded_slashes_keep_their_meaning(slashed: TestClient) -> None:
    """A slash as sent separates the path's parts: ``/similar`` at the end is the related list
    (of an id holding slashes, too); percent-encoded letters are the letters."""
    expected = slashed.get("/articles/a-1001/similar?k=3").json()["related"]
    assert len(expected) == 3
    for path in ("/articles/a-1001/%73imilar", "/articles/%61-1001/similar"):
        assert slashed.get(path + "?k=3").json()["related"] == expected, path
    assert slashed.get("/articles/a/b").json()["id"] == "a/b"
    related = slashed.get("/articles/a/b/similar?k=3")
    assert related.json()["article"] == "a/b"
    assert "a/b" not in [i["id"] for i in related.json()["related"]]
    deeper = slashed.get("/articles/x/similar/similar/similar?k=3")
    assert deeper.status_code == 200 and deeper.json()["article"] == "x/similar/similar"
    missing = slashed.get("/articles/x/similar/similar")  # the list of x/similar: not there
    assert missing.json()["error"] == "article 'x/similar' is not in the index"
    wrong = slashed.get("/articles%2Fa-1001")  # not the articles route
    assert wrong.status_code == 404 and wrong.json()["error"].startswith("no such endpoint")


def test_delete_takes_the_exact_id(sample_index: Path) -> None:
    app = create_app(sample_index, encoder=FakeEncoder(), options=ServeOptions(token=TOKEN))
    with TestClient(app) as test_client:
        batch = [{"id": i, "title": f"Valdoria {i}"} for i in ("a-1001/similar", "a/../b")]
        assert test_client.put("/articles", json=batch, headers=AUTH).status_code == 200
        gone = test_client.delete("/articles/a-1001%2Fsimilar", headers=AUTH)
        assert gone.status_code == 200 and gone.json()["removed"] == 1
        assert test_client.get("/articles/a-1001").status_code == 200  # still there
        assert test_client.get("/articles/a-1001%2Fsimilar").status_code == 404
        assert test_client.delete("/articles/a%2F..%2Fb", headers=AUTH).status_code == 200
        assert test_client.get("/articles/a%2F..%2Fb").status_code == 404


def test_an_encoded_slash_over_a_real_socket(shared_index: Path) -> None:
    with live_server(create_app(shared_index, encoder=FakeEncoder())) as url:
        port = int(url.rsplit(":", 1)[1])
        answer = _raw_request(port, b"GET /articles/a-1001%2Fsimilar")
        assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
        assert b"article 'a-1001/similar' is not in the index" in answer
        answer = _raw_request(port, b"GET /articles/a-1001/similar?k=2")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_head_over_a_real_socket_sends_headers_only(shared_index: Path) -> None:
    with live_server(create_app(shared_index, encoder=FakeEncoder())) as url:
        port = int(url.rsplit(":", 1)[1])
        got = _raw_request(port, b"GET /articles/a-1001/similar?k=2")
        head = _raw_request(port, b"HEAD /articles/a-1001/similar?k=2")
        metrics = _raw_request(port, b"GET /metrics").decode()
    head_lines, _, body = head.partition(b"\r\n\r\n")
    assert head_lines.startswith(b"HTTP/1.1 200") and body == b""
    length = re.search(rb"(?im)^content-length: (\d+)", got)
    assert length and re.search(rb"(?im)^content-length: " + length[1], head_lines)
    etag = re.search(rb"(?im)^etag: (.+?)\r$", got)
    assert etag and etag[0] in head_lines
    route = 'route="/articles/{article_id:path}/similar"'
    assert f'method="HEAD",{route},status="200"}} 1.0' in metrics


def test_head_takes_an_encoded_slash_as_part_of_the_id(slashed: TestClient) -> None:
    head = slashed.head("/articles/a-1001%2Fsimilar")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == slashed.get("/articles/a-1001%2Fsimilar").headers["etag"]
    assert slashed.head("/articles/a-1001%2Fsimilar%0A").status_code == 404


# -- deep JSON ---------------------------------------------------------------------------------

DEPTH = 100_000
DEEP = {
    "arrays": b"[" * DEPTH + b"]" * DEPTH,
    "objects": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "in metadata": b'[{"id": "x", "title": "t", "metadata": {"m": '
    + b"[" * DEPTH
    + b"]" * DEPTH
    + b"}}]",
}
NESTED_TOO_DEEPLY = "the request body is not valid JSON: nested too deeply"


@pytest.mark.parametrize("body", DEEP.values(), ids=DEEP.keys())
def test_deep_json_is_400_on_every_route_that_reads_json(
    writer: TestClient, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    json_type = {"content-type": "application/json"}
    with caplog.at_level(logging.INFO, logger="recommender.http"):
        put = writer.put("/articles", content=body, headers={**AUTH, **json_type})
        draft = body.replace(b'"id": "x", "title": "t", ', b'"text": "Valdoria quake", ')
        posted = writer.post("/similar", content=draft, headers=json_type)
        exclude = b'{"text": "Valdoria quake", "exclude": ' + b"[" * DEPTH + b"]" * DEPTH + b"}"
        excluded = writer.post("/similar", content=exclude, headers=json_type)
    for response in (put, posted, excluded):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == NESTED_TOO_DEEPLY
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert writer.get("/articles/x").status_code == 404


def test_json_deep_enough_to_read_is_checked_as_usual(writer: TestClient) -> None:
    deep = b"[" * 500 + b"]" * 500
    record = b'[{"id": "x", "title": "t", "metadata": {"m": ' + deep + b"}}]"
    put = writer.put("/articles", content=record, headers=AUTH)
    assert put.status_code == 422
    assert "is nested too deeply (more than 100 levels)" in put.json()["error"]
    posted = writer.post("/similar", json={"text": "Valdoria", "exclude": [[[["x"]]]]})
    assert posted.status_code == 422 and "exclude" in posted.json()["error"]


def test_a_number_too_long_to_read_is_400(writer: TestClient) -> None:
    digits = b"9" * 5000
    put = writer.put("/articles", content=b'[{"id": ' + digits + b', "title": "t"}]', headers=AUTH)
    posted = writer.post(
        "/similar",
        content=b'{"text": "Valdoria", "k": ' + digits + b"}",
        headers={"content-type": "application/json"},
    )
    for response in (put, posted):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == (
            "the request body is not valid JSON: a number has more than 4,300 digits"
        )


# -- conditional requests ------------------------------------------------------------------------

ANY = {"If-None-Match": "*"}


@pytest.mark.parametrize(
    ("path", "status", "named"),
    [
        ("/articles/no-such-id", 404, "no-such-id"),
        ("/articles/no-such-id/similar", 404, "no-such-id"),
        ("/articles/a-1001%2Fsimilar", 404, "a-1001/similar"),
        ("/articles/a-1001/similar?category=nosuchdesk", 422, "nosuchdesk"),
        ("/articles/a-1001/similar?since=2026-10-01&until=2026-09-01", 422, "since"),
        ("/articles/a-1001/similar?k=1000", 422, "k must be at most 100"),
    ],
)
def test_if_none_match_any_never_hides_an_error(
    client: TestClient, path: str, status: int, named: str
) -> None:
    response = client.get(path, headers=ANY)
    assert response.status_code == status, response.text
    assert named in response.json()["error"]
    assert "etag" not in response.headers and response.headers["cache-control"] == "no-store"


def test_if_none_match_any_is_304_where_the_answer_exists(client: TestClient) -> None:
    for path in ("/articles/a-1001", "/articles/a-1001/similar?k=3", "/articles?q=quake", "/info"):
        response = client.get(path, headers=ANY)
        assert response.status_code == 304 and response.content == b"", path
        assert response.headers["etag"] == client.get(path).headers["etag"]


def test_post_similar_is_never_304(client: TestClient) -> None:
    draft = {"text": "Strong earthquake jolts northern Valdoria", "k": 3}
    first = client.post("/similar", json=draft)
    assert first.status_code == 200 and "etag" not in first.headers
    assert first.headers["cache-control"] == "no-store"
    for held in ("*", 'W/"0123456789abcdef01234567"', first.headers.get("etag", "*")):
        again = client.post("/similar", json=draft, headers={"If-None-Match": held})
        assert again.status_code == 200 and again.json() == first.json(), held
    unknown = client.post("/similar", json={**draft, "categories": ["nosuchdesk"]}, headers=ANY)
    assert unknown.status_code == 422


def test_if_none_match_compares_tags_weakly_in_lists(client: TestClient) -> None:
    path = "/articles/a-1001/similar?k=3"
    etag = client.get(path).headers["etag"]
    assert etag.startswith('W/"')
    strong = etag.removeprefix("W/")
    for held in (etag, strong, f'"other", {etag}', f'W/"other",{strong}', f" {etag} "):
        assert client.get(path, headers={"If-None-Match": held}).status_code == 304, held
    for held in ('W/"other"', etag[:-2] + '"', "", ",", 'W/""', etag.strip('W/"')):
        assert client.get(path, headers={"If-None-Match": held}).status_code == 200, held
    two_lines = [("If-None-Match", 'W/"other"'), ("If-None-Match", etag)]
    assert client.get(path, headers=two_lines).status_code == 304


# -- messages without the index's folder ----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device"),
            500,
            "disk full while writing the index; nothing was changed",
        ),
        (
            OSError(errno.EROFS, "Read-only file system"),
            500,
            "cannot write to the index (read-only file system); nothing was changed",
        ),
        (
            OSError(errno.EACCES, "Permission denied"),
            500,
            "cannot write to the index (permission denied)",
        ),
    ],
    ids=["disk full", "read-only", "permission denied"],
)
def test_write_errors_read_well_over_http(
    writer: TestClient,
    sample_index: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: OSError,
    status: int,
    message: str,
) -> None:
    from recommender.write import writer as writer_module

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(writer_module, "write_segment", fail)
    batch = [{"id": "n-1", "title": "Valdoria quake"}]
    response = writer.put("/articles", json=batch, headers=AUTH)
    assert response.status_code == status
    assert response.json()["error"] == message
    assert str(sample_index) not in response.text


def _library_messages(index: Path, tmp_path: Path) -> dict[str, tuple[str, Path]]:
    """Messages the library writes with an index's folder in them, made as the library makes
    them (the messages of every kind are swept by the next test), and that folder."""
    import sqlite3

    from recommender import Recommender, RecommenderError
    from recommender.write.transaction import _write_error, writer_lock

    def message_of(call: Any) -> str:
        try:
            call()
        except RecommenderError as exc:
            return str(exc)
        raise AssertionError("no error")

    full = OSError(errno.ENOSPC, "No space left on device")
    corrupt = sqlite3.DatabaseError("database disk image is malformed")
    corrupt.sqlite_errorcode = 11  # type: ignore[attr-defined]
    locked = copy_index(index, tmp_path / "locked")
    (locked / "LOCK").unlink(missing_ok=True)
    (locked / "LOCK").symlink_to(tmp_path / "elsewhere")
    none = tmp_path / "none"
    with Recommender.open(index) as rec:
        return {
            "disk full": (str(_write_error(index, full, False)), index),
            "disk full after the commit": (str(_write_error(index, full, True)), index),
            "damaged table": (str(_write_error(index, corrupt, False)), index),
            "no index": (message_of(lambda: Recommender.open(none)), none),
            "unknown article": (message_of(lambda: rec.similar("nope")), index),
            "unknown category": (
                message_of(lambda: rec.similar("a-1001", categories=["nosuch"])),
                index,
            ),
            "lock": (message_of(lambda: writer_lock(locked).__enter__()), locked),
        }


def test_library_messages_name_the_index_in_words(shared_index: Path, tmp_path: Path) -> None:
    from recommender.http.errors import public_message

    messages = _library_messages(shared_index, tmp_path)
    shown = {name: public_message(text, path) for name, (text, path) in messages.items()}
    assert shown["disk full"] == "disk full while writing the index; nothing was changed"
    assert shown["disk full after the commit"] == (
        "disk full while writing the index; the update was saved, compacting the index was "
        "not (tried again at the next write)"
    )
    assert shown["damaged table"] == (
        "the index is damaged: articles.sqlite: database disk image is malformed; build it again"
    )
    assert shown["no index"] == "no index; build one with: recommend build-index FILE --index DIR"
    assert shown["unknown article"] == "article 'nope' is not in the index"
    assert shown["unknown category"].startswith("category 'nosuch' is not in the index (known: ")
    assert shown["lock"] == (
        "cannot write to the index: LOCK is not a plain file (a symbolic link?); the index uses "
        "it as its writer lock: remove it; nothing was changed"
    )


def _formatted_strings() -> Any:
    """(where, text) for each placeholder of every f-string of the library (not the command
    line's or the service's own) that stands as a word of its own (not glued to a name, as
    in ``shard-{n}.parquet``): the text with NUL there, the other placeholders X, and whether
    that one is written with ``!r``. A placeholder glued to a name by a slash (a model's
    repository, ``sentence-transformers/{name}``) is not a folder either."""
    import ast

    package = Path(__file__).resolve().parent.parent / "recommender"
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package).as_posix()
        if where.startswith(("http/", "cli.py", "__main__.py")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.JoinedStr):
                continue
            slots = [n for n, part in enumerate(node.values) if not isinstance(part, ast.Constant)]
            for slot in slots:
                before, after = node.values[slot - 1 : slot], node.values[slot + 1 : slot + 2]
                glued = [
                    part
                    for part, at in ((before, -1), (after, 0))
                    if part
                    and (
                        not isinstance(part[0], ast.Constant)  # another placeholder
                        or re.match(r"[\w.~-]", str(part[0].value)[at])
                        # a name after a word and a slash (``sentence-transformers/{name}``)
                        or (at == -1 and re.search(r"\w/$", str(part[0].value)))
                    )
                ]
                if glued:
                    continue
                text = ""
                for n, part in enumerate(node.values):
                    if isinstance(part, ast.Constant):
                        text += str(part.value)
                    elif n == slot:
                        text += "\0"
                    else:
                        text += "X"
                quoted = getattr(node.values[slot], "conversion", -1) == ord("r")
                yield f"{where}:{node.lineno}", text, quoted


#: What a message must never read like once the folder is replaced.
UNGRAMMATICAL = re.compile(
    r"\b(the|an?|no) (the|an?|no)\b|\bindex the index\b|\bthe index/|--index the index"
)


@pytest.mark.parametrize("folder", ["/srv/news/indexes/news", "indexes/news", "."])
def test_no_message_reads_badly_with_the_folder_replaced(folder: str) -> None:
    """Every f-string of the library, with the index's folder in each of its places (as the
    folder, a file in it, or quoted): the folder is gone and no words come out doubled."""
    from recommender.http.errors import public_message

    path = Path(folder)
    checked = 0
    for where, text, quoted in _formatted_strings():
        for value in (str(path), str(path / "LOCK"), str(path.absolute())):
            message = text.replace("\0", repr(value) if quoted else value)
            shown = public_message(message, path)
            assert str(path.absolute()) not in shown, (where, shown)
            if folder != ".":
                assert folder not in shown, (where, shown)
            elif not re.search(r"[\w.~-]\.|\.[\w.~-]", message):
                assert " . " not in f" {shown} ", (where, shown)
            assert not UNGRAMMATICAL.search(shown), (where, message, shown)
            checked += 1
    assert checked > 300
