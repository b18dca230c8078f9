"""The editorial overrides (``Recommender.overrides``): ``GET /overrides`` lists them; pins,
blocks and hidden articles are set with ``PUT`` and taken back with ``DELETE`` (the token
needed), their ids as query parameters (any id, slashes included, without path encoding)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from ...engine import Recommender
from ..dependencies import Index, Options, Reply, WorkThreads, authorize, write_wait
from ..schemas import OverrideList, OverrideWrite
from ..threads import on_read_threads
from .articles import WaitQuery

router = APIRouter()

ArticleQuery = Annotated[str, Query(min_length=1, description="Id of the article whose list it is")]
RelatedQuery = Annotated[str, Query(min_length=1, description="Id of the related article")]
HiddenQuery = Annotated[str, Query(min_length=1, description="Id of the article to hide")]
WRITTEN: dict[int | str, dict[str, Any]] = {200: {"model": OverrideWrite}}


@router.get(
    "/overrides",
    summary="The editorial overrides",
    operation_id="listOverrides",
    responses={200: {"model": OverrideList}},
)
@on_read_threads
def list_overrides(request: Request, index: Index, reply: Reply) -> Response:
    """As `recommend overrides`: pins (with their position), blocks and hidden articles."""
    rec = index.open()
    return reply(
        lambda: {"overrides": [dataclasses.asdict(o) for o in rec.snapshot.overrides.listed()]}
    )


async def _write(
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    wait: float | None,
    change: Callable[[Recommender, float | bool], None],
    done: Done,
) -> Response:
    authorize(request, options)
    seconds = write_wait(wait, options)
    rec = index.open()
    await threads.write(lambda: change(rec, seconds or False))
    return JSONResponse(done.answer(), headers={"Cache-Control": "no-store"})


@dataclasses.dataclass(frozen=True)
class Done:
    """What a write answers (``OverrideWrite``): the override, and whether it was taken back."""

    kind: str
    article_id: str
    related_id: str | None = None
    position: int | None = None
    undone: bool = False

    def answer(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@router.put(
    "/overrides/pins",
    summary="Pin an article in another's list (needs the token)",
    operation_id="putPin",
    responses=WRITTEN,
)
async def put_pin(
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    article: ArticleQuery,
    related: RelatedQuery,
    position: Annotated[int, Query(ge=1, description="Its place, 1 for the first")] = 1,
    wait: WaitQuery = None,
) -> Response:
    """As `recommend pin`: `related` shown in `article`'s list at `position`."""
    return await _write(
        request,
        index,
        options,
        threads,
        wait,
        lambda rec, w: rec.overrides.pin(article, related, position, wait=w),
        Done("pin", article, related, position),
    )


@router.delete(
    "/overrides/pins",
    summary="Take a pin back (needs the token)",
    operation_id="deletePin",
    responses=WRITTEN,
)
async def delete_pin(
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    article: ArticleQuery,
    related: RelatedQuery,
    wait: WaitQuery = None,
) -> Response:
    """As `recommend pin --undo`."""
    return await _write(
        request,
        index,
        options,
        threads,
        wait,
        lambda rec, w: rec.overrides.unpin(article, related, wait=w),
        Done("pin", article, related, undone=True),
    )


@router.put(
    "/overrides/blocks",
    summary="Block an article from another's list (needs the token)",
    operation_id="putBlock",
    responses=WRITTEN,
)
async def put_block(
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    article: ArticleQuery,
    related: RelatedQuery,
    wait: WaitQuery = None,
) -> Response:
    """As `recommend block`: `related` never shown in `article`'s list."""
    return await _write(
        request,
        index,
        options,
        threads,
        wait,
        lambda rec, w: rec.overrides.block(article, related, wait=w),
        Done("block", article, related),
    )


@router.delete(
    "/overrides/blocks",
    summary="Take a block back (needs the token)",
    operation_id="deleteBlock",
    responses=WRITTEN,
)
async def delete_block(
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    article: ArticleQuery,
    related: RelatedQuery,
    wait: WaitQuery = None,
) -> Response:
    """As `recommend block --undo`."""
    return await _write(
        request,
        index,
        options,
        threads,
        wait,
        lambda rec, w: rec.overrides.unblock(article, related, wait=w),
        Done("block", article, related, undone=True),
    )


@router.put(
    "/overrides/hidden",
    summary="Hide an article from every list (needs the token)",
    operation_id="putHidden",
    responses=WRITTEN,
)
async def put_hidden(
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    article: HiddenQuery,
    wait: WaitQuery = None,
) -> Response:
    """As `recommend hide`: `article` in no list; still indexed, its own list works."""
    return await _write(
        request,
        index,
        options,
        threads,
        wait,
        lambda rec, w: rec.overrides.hide(article, wait=w),
        Done("hide", article),
    )


@router.delete(
    "/overrides/hidden",
    summary="Show a hidden article again (needs the token)",
    operation_id="deleteHidden",
    responses=WRITTEN,
)
async def delete_hidden(
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    article: HiddenQuery,
    wait: WaitQuery = None,
) -> Response:
    """As `recommend hide --undo`."""
    return await _write(
        request,
        index,
        options,
        threads,
        wait,
        lambda rec, w: rec.overrides.unhide(article, wait=w),
        Done("hide", article, undone=True),
    )
