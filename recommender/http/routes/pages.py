"""The editor's page (``/``) and the embeddable box (``/box.js``), from ``recommender/static``
(mounted at ``/static`` by ``create_app``); the API reference (``/docs``, ``/redoc``) from
the files of the ``fastapi-offline`` package (mounted at ``/docs/assets``), never a CDN."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import Response

from ...settings import ranking_options
from ..dependencies import Options

STATIC = resources.files("recommender") / "static"
#: Swagger UI (5, for OpenAPI 3.1) and ReDoc, as files in a package: the reference works on a
#: server that cannot reach a CDN, and shows no third party who reads it.
DOCS_ASSETS = resources.files("fastapi_offline") / "static"
DOCS_ASSETS_URL = "/docs/assets"

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


@router.get("/docs")
def swagger_ui(request: Request) -> Response:
    root = request.scope.get("root_path", "").rstrip("/")
    assets = root + DOCS_ASSETS_URL
    return get_swagger_ui_html(
        openapi_url=root + str(request.app.openapi_url),
        title="recommender API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
    )


@router.get("/redoc")
def redoc(request: Request) -> Response:
    root = request.scope.get("root_path", "").rstrip("/")
    return get_redoc_html(
        openapi_url=root + str(request.app.openapi_url),
        title="recommender API",
        redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
