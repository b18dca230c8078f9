"""How endpoints reach what the app shares (``app.state``, filled by ``create_app``): each
is a FastAPI dependency, named by a type alias to annotate an endpoint's argument with.

The providers are ``async``: FastAPI calls them in the event loop, with no trip to a thread.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from pydantic import BaseModel

from ..results import RelatedList, to_json
from .errors import ApiError
from .metrics import Metrics
from .options import MAX_WRITE_WAIT, TOKEN_ENV, ServeOptions
from .state import IndexState, Titles
from .threads import Threads


async def _index(request: Request) -> IndexState:
    state: IndexState = request.app.state.index
    return state


async def _titles(request: Request) -> Titles:
    titles: Titles = request.app.state.titles
    return titles


async def _options(request: Request) -> ServeOptions:
    options: ServeOptions = request.app.state.options
    return options


async def _threads(request: Request) -> Threads:
    threads: Threads = request.app.state.threads
    return threads


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


@dataclass(frozen=True)
class Cached:
    """How one request's read is answered: the answer as JSON with its ETag and
    ``Cache-Control``, or 304 when the client holds it (``If-None-Match``).

    The ETag is a digest of the package version, the index state's tag, the path and the query
    parameters the route declares (``known_query``, in any order): it changes whenever the
    answer may; a HEAD (answered as its GET, ``middleware.Head``) has its GET's. Only answers
    that would be a 200 are ever 304: a tag the client holds was given with a 200 to this very
    request at this state of the index, so a match is answered without building the answer
    again; ``*`` (any answer) is answered 304 only once the answer is built, so that an unknown
    id or category still gets its error. A POST (a draft's list) is a query, not something a
    client keeps: no ETag, ``no-store``, ``If-None-Match`` ignored.
    """

    request: Request
    index: IndexState
    max_age: int
    version: str

    def __call__(self, build: Callable[[], object]) -> Response:
        request = self.request
        if request.method == "POST":
            return _json(build(), {"Cache-Control": "no-store"})
        query = known_query(request)
        etag = etag_of(self.version, self.index.tag(), request.url.path, query)
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={self.max_age}"}
        held = _held_tags(request.headers.getlist("if-none-match"))
        if _opaque(etag) in held:
            return Response(status_code=304, headers=headers)
        answer = build()  # raises for an answer that is an error: no condition applies then
        if "*" in held:
            return Response(status_code=304, headers=headers)
        return _json(answer, headers)


def etag_of(version: str, tag: str, path: str, query: list[tuple[str, str]]) -> str:
    """The ETag of a read's answer (``Cached``): a digest of the package ``version``, the
    index state's ``tag``, the ``path`` and the declared query parameters (``known_query``)."""
    digest = hashlib.blake2b(digest_size=12)
    for part in (version, tag, path, repr(query)):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return f'W/"{digest.hexdigest()}"'


def known_query(request: Request) -> list[tuple[str, str]]:
    """The query parameters the route declares, sorted: what its answer depends on. Others
    (``utm_source``, ``fbclid``, jQuery's ``_``) change neither the answer nor its ETag.

    ApiError 422 for a name that is a declared one in other letters (``K`` for ``k``): names
    are case-sensitive, and a ``K=5`` ignored would silently answer 10."""
    names, folded = _declared(getattr(request.scope.get("route"), "dependant", None))
    query = []
    for name, value in request.query_params.multi_items():
        if name in names:
            query.append((name, value))
        elif name.casefold() in folded:
            raise ApiError(
                "validation",
                f"unknown query parameter {name!r}: names are case-sensitive; "
                f"did you mean {folded[name.casefold()]!r}?",
            )
    return sorted(query)


#: Each route's declared query names (``_declared``), by the id of its dependant, kept with
#: it (so that the id is never another's): found once rather than on every request.
_DECLARED: dict[int, tuple[Dependant, set[str], dict[str, str]]] = {}


def _declared(dependant: Dependant | None) -> tuple[set[str], dict[str, str]]:
    """The names of a route's query parameters (``_declared_query``), and each by its
    casefolded form."""
    if dependant is None:
        return set(), {}
    found = _DECLARED.get(id(dependant))
    if found is None:
        names = _declared_query(dependant)
        found = (dependant, names, {name.casefold(): name for name in names})
        _DECLARED[id(dependant)] = found
    return found[1], found[2]


def _declared_query(dependant: Dependant | None) -> set[str]:
    """The names of the query parameters of a route's ``dependant``, the fields of a model
    taken as query parameters (``SimilarParams``) included."""
    names: set[str] = set()
    todo = [dependant] if dependant is not None else []
    while todo:
        current = todo.pop()
        for field in current.query_params:
            model = field.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):
                names.update(info.alias or name for name, info in model.model_fields.items())
            else:
                names.add(field.alias)
        todo.extend(current.dependencies)
    return names


def _held_tags(values: list[str]) -> set[str]:
    """The entity tags of ``If-None-Match`` header lines, compared weakly (``W/"x"`` and
    ``"x"`` are the same tag): each as its quoted opaque part, and ``*`` for any."""
    held = set()
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if item == "*" or _opaque(item).startswith('"'):
                held.add(_opaque(item))
    return held


def _opaque(tag: str) -> str:
    return tag.removeprefix("W/")


def _json(answer: object, headers: dict[str, str]) -> Response:
    return Response(answer_json(answer).encode(), media_type="application/json", headers=headers)


def answer_json(answer: object) -> str:
    """``to_json(answer)``; a related list last in an answer's object (``"related"``) written
    from its pieces (``RelatedList.json``): the same bytes, in less than half the time."""
    if not isinstance(answer, dict):
        return to_json(answer)
    related = answer.get("related")
    if not isinstance(related, RelatedList) or next(reversed(answer)) != "related":
        return to_json(answer)
    head = to_json({name: value for name, value in answer.items() if name != "related"})
    return f'{head[:-1]}{", " if len(answer) > 1 else ""}"related": {related.json()}}}'


async def _cached(request: Request) -> Cached:
    state = request.app.state
    return Cached(request, state.index, state.options.max_age, state.version)


async def _article_id(
    article_id: Annotated[
        str, Path(description="The article's id, percent-encoded (slashes as %2F).")
    ],
) -> str:
    """The id of an article route: the path parameter holds it percent-encoded, as
    ``middleware.IdPaths`` leaves it, so that an encoded slash is no separator."""
    return unquote(article_id)


Index = Annotated[IndexState, Depends(_index)]
TitleSearch = Annotated[Titles, Depends(_titles)]
Options = Annotated[ServeOptions, Depends(_options)]
WorkThreads = Annotated[Threads, Depends(_threads)]
RequestMetrics = Annotated[Metrics, Depends(_metrics)]
Reply = Annotated[Cached, Depends(_cached)]
ArticleId = Annotated[str, Depends(_article_id)]


def check_k(k: int, options: ServeOptions) -> None:
    """ApiError 422 if ``k`` is over the server's ``max_k``."""
    if k > options.max_k:
        raise ApiError(
            "invalid-query", f"k must be at most {options.max_k} (the server's --max-k), got {k}"
        )


def authorize(request: Request, options: ServeOptions) -> None:
    """ApiError 401 or 403 unless the request holds the write token (403 for every write
    when the server has none)."""
    if not options.token:
        raise ApiError(
            "forbidden",
            f"writes are disabled: the server was started without {TOKEN_ENV} set",
        )
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            "unauthorized",
            "this write needs the header 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), options.token.encode()):
        raise ApiError("forbidden", "the bearer token is wrong")


def write_wait(wait: float | None, options: ServeOptions) -> float:
    """The seconds a write waits for another writer: ``?wait=``, else the server's."""
    chosen = options.write_wait if wait is None else wait
    if not 0 <= chosen <= MAX_WRITE_WAIT:
        raise ApiError("invalid-query", f"wait must be between 0 and {MAX_WRITE_WAIT:g} seconds")
    return chosen
