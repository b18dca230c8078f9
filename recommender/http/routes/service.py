"""The service itself: what the index holds (``/info``), liveness and readiness probes, and
Prometheus metrics."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..dependencies import Index, Reply, RequestMetrics
from ..errors import error_response

router = APIRouter()


@router.get("/info", summary="What the index holds")
def info(index: Index, reply: Reply) -> Response:
    """As `recommend info --json`; `index` is the folder's name only."""
    rec = index.open()

    def details() -> dict[str, Any]:
        data = dataclasses.asdict(rec.info())
        data["index"] = Path(data["index"]).name
        return data

    return reply(details)


@router.get("/healthz", summary="The process is alive")
def healthz() -> Response:
    return JSONResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})


@router.get("/readyz", summary="The index is open")
def readyz(index: Index) -> Response:
    if not index.is_open:
        return error_response("index-unavailable", "the index is not open yet; see the server log")
    return JSONResponse(
        {"status": "ready", "articles": len(index.open())},
        headers={"Cache-Control": "no-store"},
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def prometheus(metrics: RequestMetrics) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
