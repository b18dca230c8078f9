"""recommend serve --workers 2 as a real process on loopback: the workers share the load
(each listens with SO_REUSEPORT), a killed worker is replaced, a taken port is a clear error,
SIGTERM stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(index: Path, port: int, log: Path, *more: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "recommender", "serve", "--index", str(index)]
    command += ["--workers", "2", "--port", str(port), "--log-level", "info", *more]
    env = {k: v for k, v in os.environ.items() if k != "RECOMMENDER_TOKEN"}
    return subprocess.Popen(command, stderr=log.open("wb"), env=env)


def _wait_ready(base: str, server: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server stopped"
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become ready")


def _workers(server: subprocess.Popen[bytes]) -> set[int]:
    """The server's worker processes (its children running uvicorn, not multiprocessing's
    resource tracker)."""
    found = set()
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    for pid in map(int, children):
        try:
            with_args = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:  # it ended since it was listed (the worker killed)
            continue
        if b"resource_tracker" not in with_args:
            found.add(pid)
    return found


def _each_on_its_own_connection(base: str, count: int) -> list[int]:
    def one(_: int) -> int:
        with httpx.Client(base_url=base, timeout=30) as client:
            return client.get("/articles/a-1001/similar?k=3").status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_two_workers_share_connections_and_survive_a_kill(
    tmp_path: Path, sample_index: Path
) -> None:
    index = sample_index
    port, log = _free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = _serve(index, port, log)
    try:
        _wait_ready(base, server)
        assert _each_on_its_own_connection(base, 16) == [200] * 16
        workers = _workers(server)
        assert len(workers) == 2
        access = r"\[(\d+)\] recommender\.http\.middleware: .* GET "
        answered = {int(p) for p in re.findall(access, log.read_text())}
        assert answered == workers  # both took connections (16 of them: 2 in 65,536 would not)

        second = ["serve", "--index", str(index), "--workers", "2", "--port", str(port)]
        taken = subprocess.run(
            [sys.executable, "-m", "recommender", *second],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert taken.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr
        assert "Traceback" not in taken.stderr

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            victim in _workers(server) or len(_workers(server)) < 2
        ):
            time.sleep(0.2)
        assert victim not in _workers(server) and len(_workers(server)) == 2
        _wait_ready(base, server)
        assert _each_on_its_own_connection(base, 8) == [200] * 8
        remaining = _workers(server)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    assert code == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in remaining):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in remaining)  # no worker left behind


def test_two_workers_report_the_index_and_log_json(tmp_path: Path, sample_index: Path) -> None:
    """With workers, /metrics shows each index gauge once (the answering worker's, set as it
    renders) and the answers counted by every worker, whichever answers /metrics; with
    --log-format json every line on standard error is a JSON object."""
    port, log = _free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = _serve(sample_index, port, log, "--log-format", "json")
    try:
        _wait_ready(base, server)
        assert _each_on_its_own_connection(base, 12) == [200] * 12
        articles = httpx.get(f"{base}/info", timeout=30).json()["articles"]
        for _ in range(4):  # from either worker
            with httpx.Client(base_url=base, timeout=30) as client:
                text = client.get("/metrics").text
            gauge = re.findall(r"^recommender_index_articles(\S*) (\S+)$", text, re.MULTILINE)
            assert gauge == [("", f"{float(articles)}")]
            for name in ("generation", "seconds_since_write", "seconds_since_refresh"):
                assert len(re.findall(rf"^recommender_index_{name} ", text, re.MULTILINE)) == 1
            assert 'recommender_related_answers_total{source="precomputed"} 12.0' in text
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    assert code == 0
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line, the first and uvicorn's too
    requests = [r for r in records if r["logger"] == "recommender.http.middleware"]
    assert len(requests) >= 12 and len({r["process"] for r in requests}) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["request_id"]) for r in requests)
    assert {"GET"} == {r["method"] for r in requests}
