"""What one stranger's request costs `recommend serve`: server CPU of one 10 MB `POST /similar`
(no token needed) of several kinds, and the longest wait of `GET /articles/ID/similar` requests
sent one after another meanwhile from another thread.

The service runs on loopback (`python -m recommender serve`, one worker) over the sample index
built with the real model; CPU is the worker's (user + system, /proc/PID/stat) across the
request. Each kind runs once with nothing else, for its CPU, and once with the GETs running.
Bounded: 7 drafts of 10 MB and the GETs during them, on loopback only.

Usage: python benchmarks/stranger.py [--index DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import httpx
from common import INDEXES, header, table, write_section
from serve import build_index, free_port, start_server

SIZE = 10_000_000
SENTENCE = "The minister said on Tuesday that the budget would grow by three percent next year"


def drafts() -> dict[str, str]:
    """Each kind of 10 MB draft: its first line the title, as the service reads it."""
    words = (SENTENCE + " ") * (SIZE // len(SENTENCE))
    html = "<p>The <b>minister</b> said on <a href='x'>Tuesday</a> that</p>" * (SIZE // 60)
    bodies = {
        "plain words": words,
        "HTML": html,
        "tags only": "<div class='x'>" * (SIZE // 15),
        "one word repeated": "budget " * (SIZE // 7),
        "no spaces": "a" * SIZE,
    }
    title = "Budget talks in parliament\n"
    made = {kind: title + body[: SIZE - 100] for kind, body in bodies.items()}
    made["all on its first line"] = words[: SIZE - 100]
    return made


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def longest_get_wait(base: str, path: str, stop: threading.Event, out: list[float]) -> None:
    """GET ``path`` one after another until ``stop``; the wall time of each goes to ``out``."""
    with httpx.Client(base_url=base, timeout=120) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get(path)
            out.append(time.perf_counter() - started)
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=INDEXES / "bench-sample-serve")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    begun = time.perf_counter()
    build_index("sample", args.index)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rows = []
    server = start_server(args.index, 1, port)
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            found = client.get("/articles", params={"q": "the", "limit": 1}).json()["articles"]
            some_id = found[0]["id"]
            path = f"/articles/{some_id}/similar?k=10"
            client.post("/similar", json={"text": "Warm up\nthe model loads now", "k": 5})
            idle = []
            for _ in range(20):
                started = time.perf_counter()
                client.get(path)
                idle.append(time.perf_counter() - started)
            for kind, text in drafts().items():
                body = json.dumps({"text": text, "k": 10}).encode()
                headers = {"Content-Type": "application/json"}
                before = cpu_seconds(server.pid)
                answer = client.post("/similar", content=body, headers=headers)
                spent = cpu_seconds(server.pid) - before
                waits: list[float] = []
                stop = threading.Event()
                getter = threading.Thread(target=longest_get_wait, args=(base, path, stop, waits))
                getter.start()
                time.sleep(0.5)
                during_from = len(waits)
                client.post("/similar", content=body, headers=headers)
                stop.set()
                getter.join()
                during = waits[during_from:] or [float("nan")]
                rows.append(
                    [
                        kind,
                        str(answer.status_code),
                        f"{spent:.2f}",
                        f"{max(during) * 1000:.0f}",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
    finally:
        server.terminate()
        server.wait()
    idle_ms = sorted(idle)[len(idle) // 2] * 1000
    text = header("A stranger's 10 MB draft (POST /similar)", time.perf_counter() - begun)
    text += (
        f"\nOne worker, sample index, real model; a GET alone takes {idle_ms:.0f} ms (median of "
        "20). A draft is read up to its first 100,000 characters (docs/bad-input.md).\n\n"
    )
    text += table(["10 MB draft", "status", "server CPU s", "longest GET meanwhile ms"], rows)
    print(text)
    if not args.no_write:
        write_section("stranger", text)


if __name__ == "__main__":
    main()
