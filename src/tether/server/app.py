"""The HTTP application: routes, auth on every route, the API's error shapes, start-up and shutdown.
WebSocket mode's route is dispatched before it (`asgi.TetherApp`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..api.errors import APIError, server_error
from ..tracing import start_tracing, stop_tracing
from . import http_routes as routes
from .metrics_exposition import exposition
from .responses import JSON, error_response
from .state import AppState

log = logging.getLogger("tether.server")
Handler = Callable[[AppState, Request, str], Awaitable[Response]]


def create_app(state: AppState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tracing = start_tracing(state.config.otel_traces, state.config.otel_endpoint)
        await state.store.open()
        await state.backend.start()
        try:
            yield
        finally:
            await state.backend.aclose()
            await state.store.close()
            stop_tracing(tracing)

    app = FastAPI(title="tether", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tether = state

    async def guarded(request: Request, handler: Callable[[str], Awaitable[Response]]) -> Response:
        try:
            owner = state.auth.owner(request.headers)
            return await handler(owner)
        except APIError as exc:
            return error_response(exc)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return error_response(server_error())

    @app.post("/v1/responses")
    async def create(request: Request) -> Response:
        return await guarded(request, lambda owner: routes.create_response(state, request, owner))

    @app.post("/v1/responses/input_tokens")
    async def input_tokens(request: Request) -> Response:
        return await guarded(request, lambda owner: routes.count_input_tokens(state, request, owner))

    @app.post("/v1/responses/compact")
    async def compact(request: Request) -> Response:
        return await guarded(request, lambda owner: routes.compact_conversation(state, request, owner))

    @app.get("/v1/responses/{response_id}")
    async def retrieve(request: Request, response_id: str) -> Response:
        return await guarded(request, lambda owner: routes.retrieve_response(state, request, owner, response_id))

    @app.delete("/v1/responses/{response_id}")
    async def delete(request: Request, response_id: str) -> Response:
        return await guarded(request, lambda owner: routes.delete_response(state, owner, response_id))

    @app.get("/v1/responses/{response_id}/input_items")
    async def input_items(request: Request, response_id: str) -> Response:
        return await guarded(request, lambda owner: routes.list_input_items(state, request, owner, response_id))

    @app.post("/v1/responses/{response_id}/cancel")
    async def cancel(request: Request, response_id: str) -> Response:
        return await guarded(request, lambda owner: routes.cancel_response(state, owner, response_id))

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        async def handler(owner: str) -> Response:
            return routes.list_models(state)

        return await guarded(request, handler)

    @app.get("/v1/responses")
    async def responses_get(request: Request) -> Response:
        return error_response(
            APIError("GET /v1/responses is the WebSocket mode endpoint: upgrade the connection.", status=426)
        )

    # Probes for load balancers and orchestrators: no key needed, so they say nothing but a status.
    @app.get("/livez")
    async def livez() -> Response:
        return JSON({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        if state.shutting_down:  # draining: take this process out of rotation
            return JSON({"status": "unavailable"}, status_code=503)
        return JSON({"status": "ok"})

    @app.get("/health")
    async def health(request: Request) -> Response:
        async def handler(owner: str) -> Response:
            return JSON({"status": "ok", "backend": state.backend.name, "engine": state.backend.stats()})

        return await guarded(request, handler)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        async def handler(owner: str) -> Response:
            return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

        return await guarded(request, handler)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "Not found." if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        return error_response(APIError(message, status=exc.status_code))

    return app
