"""The reference target's FastAPI app: the gateway, observe and conversation APIs."""
from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
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
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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

    app = FastAPI(title="sessionstorm reference target", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(AppError)
    async def app_error(request: Request, e: AppError) -> JSONResponse:
        return JSONResponse({"error": e.code, "message": e.message}, e.status)

    @app.exception_handler(Exception)
    async def server_error(request: Request, e: Exception) -> JSONResponse:
        # Real failures under concurrency (unique violations, deadlocks) surface as 500s, as in the seeds.
        return JSONResponse({"error": "INTERNAL", "message": f"{type(e).__name__}: {e}"[:500]}, 500)

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        await request.app.state.pool.fetchval("SELECT 1")
        return {"ok": True, "bugs": sorted(settings.bugs)}

    @app.post("/admin/keys")
    async def admin_keys(request: Request) -> dict[str, Any]:
        if request.headers.get("authorization") != f"Bearer {settings.admin_token}":
            raise AppError(401, "INVALID_ADMIN_TOKEN", "send 'Authorization: Bearer <SESSIONSTORM_ADMIN_TOKEN>'")
        body = await json_body(request)
        user = body.get("user")
        if not isinstance(user, str) or not user or len(user) > 200:
            raise AppError(400, "INVALID_USER", "'user' must be a name of 1 to 200 characters")
        async with request.app.state.pool.acquire() as conn:
            return await create_key(conn, user)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await request.app.state.gateway.chat(request)

    @app.post("/sessions")
    async def create_session(request: Request) -> dict[str, Any]:
        return await request.app.state.sessions.create()

    async def observe(session_id: str, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        if "observation" not in body:
            raise AppError(400, "INVALID_REQUEST", "body must be {\"observation\": ...}")
        return await request.app.state.sessions.observe(session_id, body["observation"])

    if not settings.has("stale-build"):  # an older build had no observe route (seed 004's stale twin)
        app.post("/sessions/{session_id}/observe")(observe)

    @app.get("/sessions/{session_id}")
    async def read_session(session_id: str, request: Request) -> dict[str, Any]:
        return await request.app.state.sessions.read(session_id)

    @app.delete("/sessions/{session_id}")
    async def delete_session(session_id: str, request: Request) -> dict[str, Any]:
        return await request.app.state.sessions.delete(session_id)

    @app.post("/v1/conversations/{user_id}/messages")
    async def message(user_id: str, request: Request) -> dict[str, Any]:
        body = await json_body(request)
        return await request.app.state.conversations.message(user_id, body.get("content"))

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
