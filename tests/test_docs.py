"""The docs against the code: every CLI command and option and every HTTP route is documented,
the code map of docs/contributing.md is the package's tree, the README stays a front page, and
relative links lead to files that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.routing import APIRoute

from recommender.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "recommender"

#: Routes FastAPI adds by itself; documented in http.md, but not required to be.
FASTAPI_OWN = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _docs_text() -> str:
    return "\n".join(path.read_text() for path in sorted(DOCS.glob("*.md")))


def _commands() -> dict[str, Any]:
    """The app's commands by name (a group of Typer's own click: not ``click.Group``)."""
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_has_a_section_in_cli_md() -> None:
    cli_doc = (DOCS / "cli.md").read_text()
    headings = set(re.findall(r"^#+\s+(.+?)\s*$", cli_doc, re.MULTILINE))
    missing = [
        name
        for name in _commands()
        if not ({name, f"recommend {name}", f"`recommend {name}`"} & headings)
        and f"recommend {name}" not in cli_doc
    ]
    assert not missing, f"commands not in docs/cli.md: {missing}"


def test_every_option_is_documented() -> None:
    docs = _docs_text()
    missing = [
        f"{name} {option}"
        for name, command in _commands().items()
        for param in command.params
        for option in (*param.opts, *param.secondary_opts)
        if option.startswith("--") and not re.search(re.escape(option) + r"(?![\w-])", docs)
    ]
    assert not missing, f"options not in docs/: {missing}"


def _create_app() -> object:
    from recommender.http.app import create_app

    return create_app


def _routes(tmp_path: Path) -> list[tuple[str, str]]:
    """(method, path) of every route; the index folder is opened only when the app starts."""
    service = _create_app()(tmp_path / "no-index")  # type: ignore[operator]
    found = []
    for route, prefix in _flat(service.routes, ""):
        if not isinstance(route, APIRoute) or prefix + route.path in FASTAPI_OWN:
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            found.append((method, prefix + route.path))
    return found


def _flat(routes: list[Any], prefix: str) -> list[tuple[Any, str]]:
    """Every route with its prefix: FastAPI (0.165 on) keeps an included router as one entry
    holding the router's own routes."""
    out = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            out += _flat(included.routes, prefix + (getattr(context, "prefix", "") or ""))
        else:
            out.append((route, prefix))
    return out


def _documented(method: str, path: str, text: str) -> bool:
    """``METHOD /path`` in the text, a path parameter written under any name (`{id}`)."""
    pattern = re.escape(f"{method} ")
    for part in re.split(r"(\{[^}]*\})", path):
        pattern += r"\{[^}]*\}" if part.startswith("{") else re.escape(part)
    return re.search(pattern + r"(?![\w/{-])", text) is not None


def test_every_route_is_in_http_md(tmp_path: Path) -> None:
    http_doc = (DOCS / "http.md").read_text()
    routes = _routes(tmp_path)
    assert ("GET", "/articles/{article_id:path}/similar") in routes  # the listing works
    missing = [
        f"{method} {path}" for method, path in routes if not _documented(method, path, http_doc)
    ]
    assert not missing, f"routes not in docs/http.md: {missing}"


def _modules() -> set[str]:
    return {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }


def _code_map() -> set[str]:
    text = (DOCS / "contributing.md").read_text()
    section = text.split("## Code map", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    return {
        entry
        for entry in re.findall(r"^([\w/]+\.py)\s", block, re.MULTILINE)
        if Path(entry).name not in ("__init__.py", "__main__.py")
    }


def test_the_code_map_is_the_package() -> None:
    modules, mapped = _modules(), _code_map()
    assert not modules - mapped, f"modules missing from the code map: {sorted(modules - mapped)}"
    assert not mapped - modules, f"code map entries with no module: {sorted(mapped - modules)}"


def test_the_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; the manual belongs in docs/"


@pytest.mark.parametrize(
    "doc", ["README.md", *sorted(f"docs/{p.name}" for p in DOCS.glob("*.md"))], ids=str
)
def test_relative_links_lead_to_files(doc: str) -> None:
    path = ROOT / doc
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)  # code is not links
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor of this page
        file = target.split("#", 1)[0]
        if not (path.parent / file).exists():
            broken.append(target)
    assert not broken, f"{doc}: links to missing files: {broken}"
