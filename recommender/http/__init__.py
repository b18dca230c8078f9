"""The HTTP service: ``recommend serve`` runs ``app.create_app`` on uvicorn, one Recommender a
worker.

Reads (related lists, articles, title search, info) are JSON shaped like ``similar --json``,
cached by ETag and ``Cache-Control``; writes (``PUT /articles``, ``DELETE /articles/{id}``)
need the bearer token. The editor's page (``/``) and the embeddable box (``/box.js``) are
static files in ``recommender/static`` that call the same endpoints. Errors are RFC 9457
problem details, one kind each (``errors.PROBLEMS``), never a stack trace.

options.py      ServeOptions and the environment worker processes read them from
app.py          create_app: the FastAPI app, its shared state, routers and middleware
routes/         the endpoints, on APIRouters: related lists, articles, service, pages
dependencies.py how endpoints reach the app's shared state (``app.state``), cached answers
schemas.py      request shapes (ranking options from ``settings.ranking_options``), filters,
                answer shapes
openapi.py      the OpenAPI document: every status, the token on writes, operationIds
state.py        the worker's index, opened once, its ETag tag, and the title search cache
errors.py       the kinds of error (problem types), ApiError, the problem+json answers
threads.py      where blocking work runs: read threads, one writer thread of lower priority
middleware.py   the outermost layer: body limit, a log line per request, metrics; article ids
                routed on the path as sent (an encoded slash stays in the id)
metrics.py      Prometheus counters and latency histogram
workers.py      run: one process, or worker processes on SO_REUSEPORT sockets, supervised

Nothing is imported here: ``recommend serve`` imports ``options`` and ``workers`` when it runs.
"""
