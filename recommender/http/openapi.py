"""The OpenAPI document as the service answers: every status each operation can return (its
errors as problem details), the bearer token on the writes, a stable ``operationId`` each.

FastAPI writes the 200 answers from the routes' ``responses``; ``ANSWERS`` adds the others,
and leaves out FastAPI's own 422 (``HTTPValidationError``), which this service never sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .errors import PROBLEM_JSON, PROBLEMS
from .schemas import ProblemDetails

#: The statuses each operation answers besides 200, by operationId (304: to a GET whose
#: ``If-None-Match`` holds the current ETag).
ANSWERS: dict[str, tuple[int, ...]] = {
    "similar": (304, 404, 422, 503),
    "similarToText": (400, 413, 422, 503),
    "getArticle": (304, 404, 503),
    "searchArticles": (304, 422, 503),
    "putArticles": (400, 401, 403, 409, 413, 422, 500, 503),
    "deleteArticle": (401, 403, 404, 409, 422, 500, 503),
    "listOverrides": (304, 503),
    "putPin": (401, 403, 404, 409, 422, 500, 503),
    "deletePin": (401, 403, 409, 422, 500, 503),
    "putBlock": (401, 403, 404, 409, 422, 500, 503),
    "deleteBlock": (401, 403, 409, 422, 500, 503),
    "putHidden": (401, 403, 404, 409, 422, 500, 503),
    "deleteHidden": (401, 403, 409, 422, 500, 503),
    "postEvents": (400, 413, 422, 429, 503),
    "getReport": (401, 403, 422, 429, 503),
    "info": (304, 503),
    "healthz": (),
    "readyz": (503,),
}
#: The operations that need the token (``Authorization: Bearer``).
WRITES = (
    "putArticles",
    "deleteArticle",
    "putPin",
    "deletePin",
    "putBlock",
    "deleteBlock",
    "putHidden",
    "deleteHidden",
)
#: Reads that need the token when the server has one (the editor's figures).
GUARDED_READS = ("getReport",)
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _problem_answer(status: int) -> dict[str, Any]:
    kinds = [p for p in PROBLEMS.values() if p.status == status]
    said = "; ".join(f"`{p.name}`: {p.title}" for p in kinds)
    return {"description": said, "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}}}


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's ``schema`` made true to the answers (see the module's docstring)."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            name = operation["operationId"]
            answers = {"200": operation["responses"]["200"]}
            for status in ANSWERS[name]:
                if status == 304:
                    answers["304"] = {"description": "Not Modified: the ETag held is current"}
                else:
                    answers[str(status)] = _problem_answer(status)
            operation["responses"] = answers
            if name in WRITES or name in GUARDED_READS:
                operation["security"] = [{"bearerAuth": []}]
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    components["securitySchemes"] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "The server's RECOMMENDER_TOKEN: writes, and GET /report when the server has one."
            ),
        }
    }
    return schema


def install(app: FastAPI) -> None:
    """Have ``app`` serve ``document`` at ``/openapi.json``, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
