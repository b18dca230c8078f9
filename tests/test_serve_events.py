"""POST /events and GET /report: the box's events kept by the service (bounds, bad events,
rate limit, sendBeacon's text/plain, CORS, a folder that cannot be written, reads never
held up by the writer) and the report of them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEncoder
from fastapi.testclient import TestClient

from recommender.errors import IndexWriteError
from recommender.events import Click, View
from recommender.http import events as http_events
from recommender.http.app import create_app
from recommender.http.options import ServeOptions
from recommender.storage.events import EventsReadOnlyError, read_events

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VIEW = {"type": "view", "view": "v1", "article": "a-1001", "shown": ["a-1002", "a-1003"]}
CLICK = {"type": "click", "view": "v1", "article": "a-1003", "position": 1}


@pytest.fixture
def served(sample_index: Path) -> Iterator[TestClient]:
    options = ServeOptions(token=TOKEN, cors_origins=("https://news.example",))
    app = create_app(sample_index, encoder=FakeEncoder(), options=options)
    with TestClient(app) as client:
        yield client


def post(client: TestClient, *events: object, **kwargs: Any) -> Any:
    return client.post("/events", json={"events": list(events)}, **kwargs)


def test_a_view_and_a_click_are_kept(served: TestClient, sample_index: Path) -> None:
    answer = post(served, VIEW, CLICK)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 2, "rejected": []}
    assert answer.headers["cache-control"] == "no-store"
    view, click = list(read_events(sample_index))
    assert isinstance(view, View) and isinstance(click, Click)
    assert (view.view, view.article, view.shown, view.ranking) == (
        "v1",
        "a-1001",
        ("a-1002", "a-1003"),
        "default",
    )
    # what the box did not say, the service filled in from the index
    from recommender import Recommender

    with Recommender.open(sample_index) as rec:
        assert view.section == rec.get("a-1001").category and view.section
        assert view.language == rec.language("a-1001")
    assert (click.view, click.article, click.position) == ("v1", "a-1003", 1)


def test_a_beacon_sends_text_plain(served: TestClient, sample_index: Path) -> None:
    answer = served.post(
        "/events",
        content=json.dumps({"events": [CLICK]}),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://news.example"},
    )
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    assert answer.headers["access-control-allow-origin"] == "https://news.example"
    assert [e.view for e in read_events(sample_index)] == ["v1"]


def test_each_bad_event_is_refused_with_its_place_and_reason(
    served: TestClient, sample_index: Path
) -> None:
    answer = post(
        served,
        VIEW,
        {**CLICK, "position": -1},
        "nope",
        {**VIEW, "shown": []},
        {"type": "scroll", "view": "v1"},
        CLICK,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4]
    assert "'position' must be a whole number" in body["rejected"][0]["error"]
    assert body["rejected"][1]["error"] == "an event must be a JSON object"
    assert "'type' must be 'view' or 'click'" in body["rejected"][3]["error"]
    assert len(list(read_events(sample_index))) == 2


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        (b"{", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 413, "at most 65536 bytes"),
        (b"[]", 422, '{"events": [...]}'),
        (b'{"events": {}}', 422, '{"events": [...]}'),
        (json.dumps({"events": [CLICK] * 101}).encode(), 422, "at most 100 events, got 101"),
        (b'{"events": [' + b"1," * 40_000 + b"1]}", 413, "at most 65536 bytes"),
    ],
    ids=["torn", "not utf-8", "deep", "array", "not a list", "too many", "too long"],
)
def test_malformed_batches_are_problems(
    served: TestClient, sample_index: Path, body: bytes, status: int, said: str
) -> None:
    answer = served.post("/events", content=body, headers={"Content-Type": "text/plain"})
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert said in answer.json()["detail"]
    assert list(read_events(sample_index)) == []


def test_a_body_without_length_is_cut_at_the_bound(served: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": ['
        for _ in range(5000):
            yield json.dumps(CLICK).encode() + b","

    answer = served.post("/events", content=chunks())
    assert answer.status_code == 413


def test_a_client_over_its_rate_gets_429(sample_index: Path) -> None:
    app = create_app(sample_index, encoder=FakeEncoder())
    # half an event a second, a burst of 100, and a clock that stands still: no refill
    app.state.event_rate = http_events.RateLimit(0.5, 100, clock=lambda: 0.0)
    with TestClient(app) as client:
        assert post(client, *[CLICK] * 60).status_code == 200
        assert post(client, *[CLICK] * 40).status_code == 200
        refused = post(client, CLICK)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "2"  # one event at half an event a second
        assert "at most 0.5 a second" in refused.json()["detail"]
        metrics = client.get("/metrics").text
    assert 'recommender_events_total{outcome="accepted"} 100.0' in metrics
    assert 'recommender_events_total{outcome="rate_limited"} 1.0' in metrics
    assert 'recommender_events_total{outcome="rejected"} 0.0' in metrics
    assert len(list(read_events(sample_index))) == 100


def test_the_bucket_fills_again_and_clients_are_apart() -> None:
    now = [0.0]
    limit = http_events.RateLimit(2.0, 10, clock=lambda: now[0])
    assert limit.take("a", 10) == 0
    assert limit.take("a", 1) == 0.5
    assert limit.take("b", 10) == 0  # another address, its own bucket
    now[0] = 1.0
    assert limit.take("a", 2) == 0 and limit.take("a", 1) == 0.5


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            EventsReadOnlyError("cannot keep events in the index at X: Read-only file system"),
            "events-unavailable",
        ),
        (IndexWriteError("cannot keep events in the index at X: I/O error"), "events-unavailable"),
    ],
    ids=["read-only", "other"],
)
def test_a_folder_that_cannot_be_written_refuses_events_not_reads(
    served: TestClient, monkeypatch: pytest.MonkeyPatch, error: Exception, kind: str
) -> None:
    def refuse(index: Path, events: object) -> None:
        raise error

    monkeypatch.setattr(http_events, "append_events", refuse)
    answer = post(served, VIEW)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/" + kind)
    assert "cannot keep events" in answer.json()["detail"]
    assert served.get("/articles/a-1001/similar").status_code == 200
    assert 'recommender_events_total{outcome="refused"} 1.0' in served.get("/metrics").text


def test_no_index_no_events(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path / "later")) as client:
        answer = post(client, VIEW)
    assert answer.status_code == 503
    assert answer.json()["type"].endswith("/index-unavailable")
    assert not (tmp_path / "later").exists()


def test_reads_answer_while_the_writer_is_held_and_writes_are_grouped(
    served: TestClient, sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = http_events.append_events
    release = threading.Event()
    calls: list[int] = []

    def slow(index: Path, events: Any) -> None:
        calls.append(len(events))
        release.wait(30)  # a disk that stalls
        real(index, events)

    monkeypatch.setattr(http_events, "append_events", slow)
    answers: list[Any] = []
    posts = [
        threading.Thread(
            target=lambda n=n: answers.append(post(served, {**CLICK, "view": f"v{n}"}))
        )
        for n in range(6)
    ]
    posts[0].start()
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    for thread in posts[1:]:
        thread.start()
    time.sleep(0.3)  # the other five wait for the held writer
    started = time.monotonic()
    read = served.get("/articles/a-1001/similar?k=3")
    assert read.status_code == 200 and time.monotonic() - started < 5
    assert not answers  # nothing acknowledged before it is on disk
    release.set()
    for thread in posts:
        thread.join(30)
    assert [a.status_code for a in answers] == [200] * 6
    assert calls[0] == 1 and sum(calls) == 6 and len(calls) <= 3  # five in one or two appends
    assert sorted(e.view for e in read_events(sample_index)) == [f"v{n}" for n in range(6)]


# -- GET /report -----------------------------------------------------------------------------


def test_the_report_counts_what_was_posted(served: TestClient) -> None:
    second = {**VIEW, "view": "v2", "swapped": 0, "time": "2026-01-01T00:00:00Z"}
    assert post(served, VIEW, CLICK, second).json()["accepted"] == 3
    assert served.get("/report").status_code == 401
    assert served.get("/report", headers={"Authorization": "Bearer nope"}).status_code == 403
    report = served.get("/report", headers=AUTH)
    assert report.status_code == 200 and report.headers["cache-control"] == "no-store"
    body = report.json()
    assert (body["views"], body["clicks"], body["explored"], body["interleaved"]) == (2, 1, 1, 0)
    assert body["by_position"] == [
        {"position": 0, "views": 2, "clicks": 0, "click_through": 0.0},
        {"position": 1, "views": 2, "clicks": 1, "click_through": 0.5},
    ]
    bad = served.get("/report?since=yesterday", headers=AUTH)
    assert bad.status_code == 422 and "since 'yesterday' is not a date" in bad.json()["detail"]


def test_the_report_is_open_without_a_token(sample_index: Path) -> None:
    with TestClient(create_app(sample_index, encoder=FakeEncoder())) as client:
        post(client, VIEW, CLICK)
        body = client.get("/report?since=2000-01-01").json()
    assert (body["views"], body["clicks"], body["since"]) == (1, 1, "2000-01-01T00:00:00+00:00")


SERVER = """
import sys
import uvicorn
from recommender.http.app import create_app
from recommender.http.options import ServeOptions
app = create_app(sys.argv[1], options=ServeOptions(events_rate=1e6))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def test_acknowledged_events_survive_kill_9_of_the_server(sample_index: Path) -> None:
    """Four clients post batches while the server is killed with SIGKILL: every batch it
    answered 200 is read back whole."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(sample_index), str(port)],
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    url = f"http://127.0.0.1:{port}/events"
    acknowledged: list[str] = []
    stop = threading.Event()

    def client(number: int) -> None:
        n = 0
        while not stop.is_set():
            batch = [{**CLICK, "view": f"c{number}-{n}-{i}"} for i in range(5)]
            request = urllib.request.Request(
                url, data=json.dumps({"events": batch}).encode(), method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    if answer.status == 200:
                        acknowledged.extend(event["view"] for event in batch)
            except (OSError, urllib.error.URLError):
                if stop.is_set():
                    return
                time.sleep(0.05)  # not up yet
            n += 1

    try:
        clients = [threading.Thread(target=client, args=(c,)) for c in range(4)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 1000 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        stop.set()
        for thread in clients:
            thread.join(30)
    finally:
        stop.set()
        if server.poll() is None:
            server.kill()
    assert len(acknowledged) >= 1000
    stored = read_events(sample_index)
    kept = {event.view for event in stored}
    assert not set(acknowledged) - kept
    assert stored.damaged <= 1  # at most the record being written when it was killed


def test_a_read_only_replica_refuses_events_and_answers_reads(sample_index: Path) -> None:
    """A service over a replica its user cannot write (root's files, served as nobody; or a
    folder made read-only): POST /events is 503 events-unavailable, reads are answered."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    import urllib.error
    import urllib.request

    from recommender.write.replicate import replicate

    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        pytest.skip("root needs setpriv to serve as another user")
    shared = Path(tempfile.mkdtemp(prefix="recommender-events-ro-"))
    try:
        shared.chmod(0o755)
        replica = shared / "replica"
        replicate(sample_index, replica)
        if not as_root:
            replica.chmod(0o555)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-c", SERVER, str(replica), str(port)]
        if as_root:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        root = Path(__file__).resolve().parent.parent
        server = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/readyz", timeout=5):
                        break
                except OSError:
                    assert time.monotonic() < deadline and server.poll() is None
                    time.sleep(0.2)
            body = json.dumps({"events": [VIEW, CLICK]}).encode()
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(f"{base}/events", data=body))
            problem = json.loads(refused.value.read())
            with urllib.request.urlopen(f"{base}/articles/a-1001/similar?k=3") as read:
                related = json.loads(read.read())["related"]
        finally:
            server.terminate()
            server.wait(30)
    finally:
        (shared / "replica").chmod(0o755)
        shutil.rmtree(shared)
    assert refused.value.code == 503
    assert problem["type"].endswith("/events-unavailable")
    assert problem["detail"].startswith("cannot keep events in the index: ")
    assert len(related) == 3


# -- a hostile stranger ----------------------------------------------------------------------


def test_bytes_cost_the_rate_as_events_do(sample_index: Path) -> None:
    """Four views of 50 ids of 256 characters are 52 KB: counted as four events, a client
    held to 10 events a second could write 130 KB a second (11 GB a day) to the store. A
    batch now costs one event per KiB when that is more."""
    app = create_app(sample_index, encoder=FakeEncoder())
    app.state.event_rate = http_events.RateLimit(0.5, 100, clock=lambda: 0.0)
    long = [{**VIEW, "view": f"v{n}", "shown": [f"{n}" * 256] * 50} for n in range(4)]
    with TestClient(app) as client:
        first = post(client, *long)
        assert first.status_code == 200 and first.json()["accepted"] == 4
        refused = post(client, *long)
        assert refused.status_code == 429
        assert "at most 0.5 a second (or 0.5 KiB)" in refused.json()["detail"]
        assert post(client, CLICK).status_code == 200  # what is left of the burst
    assert len(list(read_events(sample_index))) == 5


def test_x_forwarded_for_is_not_a_new_client(sample_index: Path) -> None:
    """The app never reads X-Forwarded-For itself (uvicorn does, from the proxies it trusts:
    127.0.0.1 and ::1 unless FORWARDED_ALLOW_IPS says more), so a stranger cannot take a new bucket
    by naming another address in it."""
    app = create_app(sample_index, encoder=FakeEncoder())
    app.state.event_rate = http_events.RateLimit(0.5, 100, clock=lambda: 0.0)
    with TestClient(app) as client:
        for n in range(10):
            spoofed = {"X-Forwarded-For": f"198.51.100.{n}", "X-Real-IP": f"198.51.100.{n}"}
            assert post(client, *[CLICK] * 10, headers=spoofed).status_code == 200
        assert post(client, CLICK, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 429


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:ffff:ffff:ffff", "2001:db8::/64"),
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        ("testclient", "testclient"),
    ],
)
def test_an_ipv6_client_is_its_64(host: str, key: str) -> None:
    """One subscriber has a /64 (2**64 addresses): keyed by its address, a client could take a
    fresh bucket for every batch and never be limited."""
    assert http_events.client_key(host) == key


def test_reports_are_reused_and_strangers_limited(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report of a million events took 21 s of a core and 860 MB (2 cores, measured with
    `recommend report`; 18 s and 200 MB now), and GET /report needs no token on a server
    without one: a stranger asking again and again kept the writer thread busy for ever. An
    answer is now reused for a minute, the same report asked for at once is computed once,
    and a client without the token has a new one computed every 10 s (5 at once), 429
    beyond."""
    from recommender.http.routes import events as route

    computed: list[object] = []
    real = route.report_of

    def counted(*args: Any, **kwargs: Any) -> Any:
        computed.append(kwargs.get("since"))
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(route, "report_of", counted)
    now = [0.0]
    app = create_app(sample_index, encoder=FakeEncoder())
    app.state.report_cache = http_events.ReportCache(clock=lambda: now[0])
    app.state.report_rate = http_events.RateLimit(0.1, 5, clock=lambda: now[0])
    with TestClient(app) as client:
        post(client, VIEW)
        answers: list[Any] = []
        asking = [
            threading.Thread(target=lambda: answers.append(client.get("/report"))) for _ in range(4)
        ]
        for thread in asking:
            thread.start()
        for thread in asking:
            thread.join()
        assert [a.json()["views"] for a in answers] == [1, 1, 1, 1]
        assert len(computed) == 1
        post(client, {**VIEW, "view": "v2"})
        assert client.get("/report").json()["views"] == 1  # within the minute: reused
        for day in range(1, 5):
            assert client.get(f"/report?since=2000-01-0{day}").status_code == 200
        refused = client.get("/report?since=2000-01-09")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
        assert "one every 10 s" in refused.json()["detail"]
        assert client.get("/report?since=2000-01-01").status_code == 200  # reused: free
        now[0] = 61.0
        assert client.get("/report").json()["views"] == 2
    assert len(computed) == 6


def _request(receive: Any) -> Any:
    from starlette.requests import Request

    scope = {"type": "http", "method": "POST", "path": "/events", "headers": []}
    return Request(scope, receive)


def test_a_body_that_trickles_or_stops_is_refused_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seen on uvicorn over loopback: a Content-Length of 60,000 and then a byte a second held
    the connection for as long as the client liked, and a client that went away in the middle
    of its body left 'Exception in ASGI application' and a traceback (ClientDisconnect) in the
    log, one per try. Now 400 bad-request: the body must come within BODY_SECONDS."""
    import asyncio

    from recommender.http.errors import ApiError
    from recommender.http.routes import events as route

    monkeypatch.setattr(route, "BODY_SECONDS", 0.2)

    async def trickle() -> dict[str, object]:
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b" ", "more_body": True}

    async def gone() -> dict[str, object]:
        return {"type": "http.disconnect"}

    for receive, said in ((trickle, "did not come within 0.2 s"), (gone, "went away")):
        with pytest.raises(ApiError) as refused:
            asyncio.run(route._body(_request(receive)))
        assert refused.value.status == 400 and said in refused.value.message


def test_a_preflight_is_answered_for_the_sites_origin_only(served: TestClient) -> None:
    """sendBeacon needs no preflight; fetch with a JSON type does. The site's origin gets
    one, another origin no CORS header at all, so its page cannot read the answer."""
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ours = served.options("/events", headers={"Origin": "https://news.example", **ask})
    assert ours.status_code == 200
    assert ours.headers["access-control-allow-origin"] == "https://news.example"
    theirs = served.options("/events", headers={"Origin": "https://evil.example", **ask})
    assert "access-control-allow-origin" not in theirs.headers
    posted = served.post(
        "/events", json={"events": [CLICK]}, headers={"Origin": "https://evil.example"}
    )
    assert posted.status_code == 200 and "access-control-allow-origin" not in posted.headers
