"""What both benchmarks share: data sets, machine description, writing RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
INDEXES = ROOT / "indexes"


def dataset(name: str, data: Path = DATA) -> Path:
    path = data / name / "articles.jsonl.gz"
    if not path.is_file():
        sys.exit(f"{path} is not here: the benchmarks need ../shared/data (see its README.md)")
    return path


def machine() -> str:
    cores = os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory_text = f"{memory:.0f} GiB"
    except (ValueError, OSError):
        memory_text = "unknown memory"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cores} cores ({cpu}), {memory_text}, Python {platform.python_version()}"


def versions() -> str:
    names = ["recommender", "sentence-transformers", "torch", "faiss-cpu", "numpy"]
    names += ["scikit-learn", "bm25s", "onnxruntime"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def command_line() -> str:
    return " ".join(shlex.quote(arg) for arg in ["python", *sys.argv])


def header(title: str, seconds: float) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"## {title}\n\n"
        f"- command: `{command_line()}`\n"
        f"- date: {now}; whole run {seconds / 60:.1f} min\n"
        f"- machine: {machine()}\n"
        f"- versions: {versions()}\n"
    )


def write_section(name: str, text: str) -> None:
    """Replace (or add) this benchmark's section of RESULTS.md, leaving the others."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    current = (
        RESULTS.read_text()
        if RESULTS.exists()
        else (
            "# Benchmark results\n\nWritten by the scripts in this folder; each section says the "
            "command that reproduces it.\n"
        )
    )
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current)
    else:
        updated = current.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(updated)
    print(f"written to {RESULTS.relative_to(ROOT)}")


def table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
