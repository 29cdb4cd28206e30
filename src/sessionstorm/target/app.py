"""The reference target's ASGI app (Starlette): the gateway, observe and conversation APIs.

Starlette, not FastAPI: every route takes the raw request and answers JSON itself, so FastAPI's
models and validation bought nothing, and its import cost 0.14 s of every target's start (one per
scenario run). A missing route still answers a framework's generic ``{"detail": "Not Found"}``."""
from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from sessionstorm.target.conversations import Conversations
from sessionstorm.target.db import StickyPool, create_key, ensure_schema
from sessionstorm.target.errors import AppError
from sessionstorm.target.gateway import Gateway
from sessionstorm.target.observe import RedisSessions
from sessionstorm.target.settings import Settings

SERVER_ID = f"target-{socket.gethostname()}-{os.getpid()}".encode()


async def _models(http: httpx.AsyncClient) -> list[str]:
    async for attempt in AsyncRetrying(stop=stop_after_delay(20), wait=wait_fixed(0.2),
                                       retry=retry_if_exception_type(httpx.HTTPError), reraise=True):
        with attempt:
            r = await http.get("/v1/models")
            r.raise_for_status()
    return [m["id"] for m in r.json()["data"]]


def create_app(settings: Settings | None = None) -> Any:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool: Any = (StickyPool(settings.postgres_dsn, max_size=60) if settings.has("no-db-reconnect")
                     else await asyncpg.create_pool(settings.postgres_dsn, min_size=2, max_size=60))
        http = httpx.AsyncClient(base_url=settings.provider_url, timeout=httpx.Timeout(60.0, connect=5.0),
                                 limits=httpx.Limits(max_connections=200, max_keepalive_connections=100,
                                                     keepalive_expiry=2.0))  # below any provider's keep-alive
        try:
            await ensure_schema(pool, settings.bugs)
            app.state.pool = pool
            app.state.gateway = Gateway(settings, pool, http, await _models(http))
            app.state.sessions = RedisSessions(settings)
            app.state.conversations = Conversations(settings, pool)
            yield
        finally:
            if hasattr(app.state, "sessions"):
                await app.state.sessions.close()
            await http.aclose()
            await pool.close()

    async def app_error(request: Request, e: AppError) -> JSONResponse:
        return JSONResponse({"error": e.code, "message": e.message}, e.status)

    async def http_error(request: Request, e: HTTPException) -> Response:
        # A route this build lacks (stale-build) or a wrong method: the framework's generic body, as FastAPI's.
        return JSONResponse({"detail": e.detail}, e.status_code, e.headers)

    async def server_error(request: Request, e: Exception) -> JSONResponse:
        # Real failures under concurrency (unique violations, deadlocks) surface as 500s, as in the seeds.
        return JSONResponse({"error": "INTERNAL", "message": f"{type(e).__name__}: {e}"[:500]}, 500)

    async def healthz(request: Request) -> JSONResponse:
        await request.app.state.pool.fetchval("SELECT 1")
        return JSONResponse({"ok": True, "bugs": sorted(settings.bugs)})

    async def admin_keys(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {settings.admin_token}":
            raise AppError(401, "INVALID_ADMIN_TOKEN", "send 'Authorization: Bearer <SESSIONSTORM_ADMIN_TOKEN>'")
        body = await json_body(request)
        user = body.get("user")
        if not isinstance(user, str) or not user or len(user) > 200:
            raise AppError(400, "INVALID_USER", "'user' must be a name of 1 to 200 characters")
        async with request.app.state.pool.acquire() as conn:
            return JSONResponse(await create_key(conn, user))

    async def chat(request: Request) -> Response:
        return await request.app.state.gateway.chat(request)

    async def create_session(request: Request) -> JSONResponse:
        return JSONResponse(await request.app.state.sessions.create())

    async def observe(request: Request) -> JSONResponse:
        body = await json_body(request)
        if "observation" not in body:
            raise AppError(400, "INVALID_REQUEST", "body must be {\"observation\": ...}")
        return JSONResponse(await request.app.state.sessions.observe(request.path_params["session_id"],
                                                                     body["observation"]))

    async def read_session(request: Request) -> JSONResponse:
        return JSONResponse(await request.app.state.sessions.read(request.path_params["session_id"]))

    async def delete_session(request: Request) -> JSONResponse:
        return JSONResponse(await request.app.state.sessions.delete(request.path_params["session_id"]))

    async def message(request: Request) -> JSONResponse:
        body = await json_body(request)
        return JSONResponse(await request.app.state.conversations.message(request.path_params["user_id"],
                                                                          body.get("content")))

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/admin/keys", admin_keys, methods=["POST"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/sessions", create_session, methods=["POST"]),
        Route("/sessions/{session_id}", read_session, methods=["GET"]),
        Route("/sessions/{session_id}", delete_session, methods=["DELETE"]),
        Route("/v1/conversations/{user_id}/messages", message, methods=["POST"]),
    ]
    if not settings.has("stale-build"):  # an older build had no observe route (seed 004's stale twin)
        routes.append(Route("/sessions/{session_id}/observe", observe, methods=["POST"]))
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={AppError: app_error, HTTPException: http_error, Exception: server_error})
    return ServerHeader(app)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as e:
        raise AppError(400, "INVALID_JSON", f"request body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise AppError(400, "INVALID_REQUEST", "request body must be a JSON object")
    return body


class ServerHeader:
    """Names the worker process on every reply (the history's server identity)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-sessionstorm-server", SERVER_ID)]
            await send(message)

        await self.app(scope, receive, tagged)
