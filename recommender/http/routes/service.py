"""The service itself: what the index holds (``/info``), liveness and readiness probes, and
Prometheus metrics."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ...results import IndexInfo
from ..dependencies import Index, Reply, RequestMetrics
from ..errors import error_response
from ..schemas import Health, Ready

router = APIRouter()


@router.get(
    "/info",
    summary="What the index holds",
    operation_id="info",
    responses={200: {"model": IndexInfo}},
)
def info(index: Index, reply: Reply) -> Response:
    """As `recommend info --json`; `index` is the folder's name only."""
    rec = index.open()

    def details() -> dict[str, Any]:
        data = dataclasses.asdict(rec.info())
        data["index"] = Path(data["index"]).name
        return data

    return reply(details)


@router.get(
    "/healthz",
    summary="The process is alive",
    operation_id="healthz",
    responses={200: {"model": Health}},
)
def healthz() -> Response:
    return JSONResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})


@router.get(
    "/readyz",
    summary="The index is open",
    operation_id="readyz",
    responses={200: {"model": Ready}},
)
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
