"""The OpenAPI document against the answers: for each operation, real requests produce every
status it documents, each body valid against the documented schema (jsonschema), and no
request produces a status its operation does not document."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import FakeEncoder
from fastapi.testclient import TestClient

from recommender.http.app import create_app
from recommender.http.options import ServeOptions
from recommender.write.transaction import writer_lock

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON_BODY = {**AUTH, "Content-Type": "application/json"}
BATCH = [{"id": "n-1", "title": "Valdoria quake"}]


@pytest.fixture
def apps(sample_index: Path, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """A client of a writable sample with the token and a small body limit, and one of a
    server whose index is not there (503)."""
    options = ServeOptions(token=TOKEN, max_body_bytes=2000)
    served = create_app(sample_index, encoder=FakeEncoder(), options=options)
    missing = create_app(tmp_path / "later", options=ServeOptions(token=TOKEN))
    with (
        TestClient(served, raise_server_exceptions=False) as client,
        TestClient(missing) as down,
    ):
        yield client, down


def _etag_held(client: TestClient, path: str) -> Any:
    tag = client.get(path).headers["etag"]
    return client.get(path, headers={"If-None-Match": tag})


def _cases(client: TestClient, down: TestClient, index: Path) -> list[tuple[str, Any]]:
    """(operationId, the answer to a real request) for every status each one documents."""
    similar = "/articles/a-1001/similar?k=3"
    big = "x" * 3000
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("similar", lambda: client.get(similar)),
        ("similar", lambda: _etag_held(client, similar)),
        ("similar", lambda: client.get("/articles/nope/similar")),
        ("similar", lambda: client.get("/articles/a-1001/similar?k=abc")),
        ("similar", lambda: client.get("/articles/a-1001/similar?lexical_weight=2")),
        ("similar", lambda: down.get(similar)),
        ("similarToText", lambda: client.post("/similar", json={"text": "Quake\nin Valdoria"})),
        ("similarToText", lambda: client.post("/similar", content=b"{", headers=JSON_BODY)),
        ("similarToText", lambda: client.post("/similar", json={"text": big})),
        ("similarToText", lambda: client.post("/similar", json={"text": ""})),
        ("similarToText", lambda: down.post("/similar", json={"text": "x"})),
        ("getArticle", lambda: client.get("/articles/a-1001")),
        ("getArticle", lambda: _etag_held(client, "/articles/a-1001")),
        ("getArticle", lambda: client.get("/articles/nope")),
        ("getArticle", lambda: down.get("/articles/a-1001")),
        ("searchArticles", lambda: client.get("/articles?q=valdoria")),
        ("searchArticles", lambda: _etag_held(client, "/articles?q=valdoria")),
        ("searchArticles", lambda: client.get("/articles?q=")),
        ("searchArticles", lambda: down.get("/articles?q=valdoria")),
        ("putArticles", lambda: client.put("/articles", json=BATCH, headers=AUTH)),
        ("putArticles", lambda: client.put("/articles", content=b"[", headers=JSON_BODY)),
        ("putArticles", lambda: client.put("/articles", json=BATCH)),
        ("putArticles", lambda: client.put("/articles", json=BATCH, headers=_wrong())),
        ("putArticles", lambda: client.put("/articles", json=[{"id": big}], headers=AUTH)),
        ("putArticles", lambda: client.put("/articles", json=[{"id": 1}], headers=AUTH)),
        ("putArticles", lambda: down.put("/articles", json=BATCH, headers=AUTH)),
        ("deleteArticle", lambda: client.delete("/articles/a-1002", headers=AUTH)),
        ("deleteArticle", lambda: client.delete("/articles/a-1002")),
        ("deleteArticle", lambda: client.delete("/articles/a-1002", headers=_wrong())),
        ("deleteArticle", lambda: client.delete("/articles/nope", headers=AUTH)),
        ("deleteArticle", lambda: client.delete("/articles/a-1003?wait=1e9", headers=AUTH)),
        ("deleteArticle", lambda: down.delete("/articles/a-1002", headers=AUTH)),
        ("info", lambda: client.get("/info")),
        ("info", lambda: _etag_held(client, "/info")),
        ("info", lambda: down.get("/info")),
        ("healthz", lambda: client.get("/healthz")),
        ("readyz", lambda: client.get("/readyz")),
        ("readyz", lambda: down.get("/readyz")),
    ]
    cases += [
        ("listOverrides", lambda: client.get("/overrides")),
        ("listOverrides", lambda: _etag_held(client, "/overrides")),
        ("listOverrides", lambda: down.get("/overrides")),
    ]
    for name, method, path in OVERRIDE_WRITES:
        send = getattr(client, method)
        cases += [
            (name, lambda send=send, path=path: send(path, headers=AUTH)),
            (name, lambda send=send, path=path: send(path)),
            (name, lambda send=send, path=path: send(path, headers=_wrong())),
            (name, lambda send=send, path=path: send(f"{path}&wait=1e9", headers=AUTH)),
            (name, lambda method=method, path=path: getattr(down, method)(path, headers=AUTH)),
        ]
        if method == "put":
            unknown = path.replace("a-1010", "nope")
            cases.append((name, lambda send=send, path=unknown: send(path, headers=AUTH)))
    click = {"type": "click", "view": "v1", "article": "a-1002", "position": 0}
    cases += [
        ("postEvents", lambda: client.post("/events", json={"events": [click]})),
        ("postEvents", lambda: client.post("/events", content=b"{", headers=JSON_BODY)),
        ("postEvents", lambda: client.post("/events", content=big.encode())),
        ("postEvents", lambda: client.post("/events", json=[click])),
        ("postEvents", lambda: _rate_limited(client, click)),
        ("postEvents", lambda: down.post("/events", json={"events": [click]})),
        ("getReport", lambda: client.get("/report", headers=AUTH)),
        ("getReport", lambda: client.get("/report")),
        ("getReport", lambda: client.get("/report", headers=_wrong())),
        ("getReport", lambda: client.get("/report?since=soon", headers=AUTH)),
        ("getReport", lambda: down.get("/report", headers=AUTH)),
        ("getReport", lambda: _reports_limited(index)),
    ]
    answers = [(name, make()) for name, make in cases]
    with writer_lock(index):
        answers.append(("putArticles", client.put("/articles", json=BATCH, headers=AUTH)))
        answers.append(("deleteArticle", client.delete("/articles/a-1004", headers=AUTH)))
        for name, method, path in OVERRIDE_WRITES:
            answers.append((name, getattr(client, method)(path, headers=AUTH)))
    return answers


#: The overrides' writes: (operationId, method, a path that names live articles).
OVERRIDE_WRITES = [
    (name, method, f"/overrides/{kind}?article=a-1010{related}")
    for kind, related, put, delete in (
        ("pins", "&related=a-1011", "putPin", "deletePin"),
        ("blocks", "&related=a-1011", "putBlock", "deleteBlock"),
        ("hidden", "", "putHidden", "deleteHidden"),
    )
    for name, method in ((put, "put"), (delete, "delete"))
]


def _rate_limited(client: TestClient, click: dict[str, object]) -> Any:
    """The first answer of 429 to batches of 20 events (a burst is 200 at most)."""
    for _ in range(20):
        answer = client.post("/events", json={"events": [click] * 20})
        if answer.status_code == 429:
            return answer
    raise AssertionError("never limited")


def _reports_limited(index: Path) -> Any:
    """The first 429 to new reports asked of a server without a token by one client."""
    with TestClient(create_app(index, encoder=FakeEncoder())) as open_client:
        for day in range(1, 20):
            answer = open_client.get(f"/report?since=2000-01-{day:02d}")
            if answer.status_code == 429:
                return answer
    raise AssertionError("never limited")


def _wrong() -> dict[str, str]:
    return {"Authorization": "Bearer not-the-token"}


def _failing_writes(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Writes that fail on the disk: 500 with the message."""
    from recommender import Recommender
    from recommender.errors import IndexWriteError
    from recommender.write import writer

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def failed(*args: object, **kwargs: object) -> None:
        raise IndexWriteError("disk full while writing the index; nothing was changed")

    monkeypatch.setattr(writer, "write_segment", full)
    monkeypatch.setattr(Recommender, "remove", failed)
    monkeypatch.setattr(writer, "store_override", failed)
    put = client.put("/articles", json=[{"id": "n-2", "title": "Corvena"}], headers=AUTH)
    delete = client.delete("/articles/a-1005", headers=AUTH)
    overrides = [
        (name, getattr(client, method)(path, headers=AUTH))
        for name, method, path in OVERRIDE_WRITES
    ]
    return [("putArticles", put), ("deleteArticle", delete), *overrides]


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for operations in document["paths"].values()
        for operation in operations.values()
    }


def _check(document: dict[str, Any], operation: dict[str, Any], response: Any) -> None:
    name, status = operation["operationId"], str(response.status_code)
    assert status in operation["responses"], f"{name} answered {status}, not documented"
    content = operation["responses"][status].get("content")
    if content is None:
        assert response.content == b"", (name, status)
        return
    media = response.headers["content-type"].split(";")[0]
    assert media in content, (name, status, media, list(content))
    schema = {**content[media]["schema"], "components": document["components"]}
    jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)


def test_every_documented_status_is_answered_as_documented(
    apps: tuple[TestClient, TestClient], sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, down = apps
    document = client.get("/openapi.json").json()
    operations = _operations(document)
    answers = _cases(client, down, sample_index) + _failing_writes(client, monkeypatch)
    seen: dict[str, set[str]] = {name: set() for name in operations}
    for name, response in answers:
        _check(document, operations[name], response)
        seen[name].add(str(response.status_code))
    unseen = {
        name: sorted(set(operation["responses"]) - seen[name])
        for name, operation in operations.items()
    }
    assert not any(unseen.values()), f"documented, never answered here: {unseen}"


def test_the_document_names_operations_security_and_types(client_doc: dict[str, Any]) -> None:
    operations = _operations(client_doc)
    assert set(operations) == {
        "similar",
        "similarToText",
        "getArticle",
        "searchArticles",
        "putArticles",
        "deleteArticle",
        "listOverrides",
        *(name for name, _, _ in OVERRIDE_WRITES),
        "postEvents",
        "getReport",
        "info",
        "healthz",
        "readyz",
    }
    for name, operation in operations.items():
        writes = name in ("putArticles", "deleteArticle", "getReport") or name in {
            name for name, _, _ in OVERRIDE_WRITES
        }
        assert (operation.get("security") == [{"bearerAuth": []}]) == writes, name
        assert operation["responses"]["200"]["content"]["application/json"]["schema"], name
        for status, answer in operation["responses"].items():
            if status not in ("200", "304"):
                schema = answer["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
    scheme = client_doc["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"


@pytest.fixture
def client_doc(tmp_path: Path) -> dict[str, Any]:
    with TestClient(create_app(tmp_path / "none")) as client:
        document: dict[str, Any] = client.get("/openapi.json").json()
    return document
