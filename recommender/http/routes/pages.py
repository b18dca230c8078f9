"""The editor's page (``/``) and the embeddable box (``/box.js``), from ``recommender/static``
(mounted at ``/static`` by ``create_app``)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from ...settings import ranking_options
from ..dependencies import Options

STATIC = resources.files("recommender") / "static"

router = APIRouter(include_in_schema=False)


def page_ranking_options() -> list[dict[str, Any]]:
    """The ranking options as the editor's page builds its fields from them."""
    return [
        {
            "name": option.name,
            "type": option.kind,
            "choices": list(option.choices),
            "default": option.default,
            "help": option.help,
        }
        for option in ranking_options()
    ]


@router.get("/")
def page() -> Response:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    data = json.dumps(page_ranking_options()).replace("<", "\\u003c")
    html = html.replace("__RANKING_OPTIONS__", data)
    return Response(html, media_type="text/html; charset=utf-8")


@router.get("/box.js")
def box(options: Options) -> Response:
    script = (STATIC / "box.js").read_bytes()
    return Response(
        script,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": f"public, max-age={options.max_age}"},
    )
