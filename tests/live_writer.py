"""A writer process for the live-index tests: adds, updates and removes articles in a loop.

Usage: python tests/live_writer.py INDEX LOG SECONDS SEED

Before each update it logs the change it is about to make ("begin") and after it returns
("done", with the time): a test can then tell which states the index may be in, and from
when a removal must be visible. It updates and removes only the articles it added ("w..."),
and never reuses an id after removing it.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FakeEncoder, article

from recommender import Recommender, language

WORDS = [
    "harbour",
    "storm",
    "ferry",
    "council",
    "budget",
    "vote",
    "bridge",
    "school",
    "river",
    "flood",
    "market",
    "bank",
]


def main() -> None:
    index, log_path, seconds, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    language.detect("warm up")  # an add detects languages: load the model outside the timed part
    deadline = time.monotonic() + seconds
    rec = Recommender.open(index, encoder=FakeEncoder())
    live = [i for i in rec.ids() if i.startswith("w")]  # it touches only articles it added
    counter = 0
    with open(log_path, "a") as log:

        def note(entry: dict[str, object]) -> None:
            log.write(json.dumps(entry) + "\n")
            log.flush()
            os.fsync(log.fileno())

        while time.monotonic() < deadline:
            kind = rng.choice(["add", "add", "update", "remove"])
            if kind == "remove" and live:
                ids = rng.sample(live, min(len(live), rng.randint(1, 3)))
                note({"event": "begin", "op": "remove", "ids": ids})
                rec.remove(ids, wait=True)
                live = [i for i in live if i not in ids]
            elif kind == "update" and live:
                ids = rng.sample(live, min(len(live), 2))
                batch = [
                    article(i, f"{i} {' '.join(rng.sample(WORDS, 4))} revised {counter}")
                    for i in ids
                ]
                counter += 1
                note({"event": "begin", "op": "update", "ids": ids})
                rec.add(batch, wait=True)
            else:
                ids = [f"w{seed}-{counter + n}" for n in range(rng.randint(1, 4))]
                counter += len(ids)
                batch = [article(i, f"{i} {' '.join(rng.sample(WORDS, 5))}") for i in ids]
                note({"event": "begin", "op": "add", "ids": ids})
                rec.add(batch, wait=True)
                live += ids
            note({"event": "done", "time": time.time()})
    rec.close()


if __name__ == "__main__":
    main()
