"""The LLM gateway of seeds 000/001: one provider session per API key, kept in PostgreSQL.

Clean: session work per key is serialised with PostgreSQL advisory locks held for the
whole provider call -- shared while a request uses the key's current session, exclusive
to close it and open one for another model (a key's first one is made under a creation
lock) -- so a model switch never closes a session with requests in flight; X-Request-ID
and model_id are forwarded, so the provider never mixes replies. Each bug flag removes exactly one of these protections.
"""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sessionstorm.target.db import hash_key
from sessionstorm.target.errors import AppError
from sessionstorm.target.settings import MAX_PROMPT_CHARS, Settings

SESSION_SQL = "SELECT id, model, provider_session_id FROM sessions WHERE api_key_id = $1 AND is_active"


class Gateway:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, http: httpx.AsyncClient, models: list[str]) -> None:
        self.s, self.pool, self.http, self.models = settings, pool, http, models
        self._keys: dict[str, int] = {}  # key hash -> key id; keys are never revoked here
        # Locking is what racy-get-or-create and model-switch-race take away.
        self.locked = not (settings.has("racy-get-or-create") or settings.has("model-switch-race"))

    async def authenticate(self, authorization: str | None) -> int:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AppError(401, "MISSING_API_KEY", "send 'Authorization: Bearer <api key>'")
        digest = hash_key(authorization[7:].strip())
        key_id = self._keys.get(digest)
        if key_id is None:
            key_id = await self.pool.fetchval("SELECT id FROM api_keys WHERE key_hash = $1", digest)
            if key_id is None:
                raise AppError(401, "INVALID_API_KEY", "unknown API key; create one with POST /admin/keys")
            self._keys[digest] = key_id
        return key_id

    def _validate(self, raw: bytes) -> tuple[dict[str, Any], str, bool]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise AppError(400, "INVALID_JSON", f"request body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise AppError(400, "INVALID_REQUEST", "request body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise AppError(400, "INVALID_REQUEST", "'messages' must be a non-empty list of {role, content} objects")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise AppError(400, "MISSING_MODEL", f"'model' is required: one of {', '.join(self.models)}")
        if model not in self.models:
            raise AppError(404, "UNKNOWN_MODEL", f"unknown model {model!r}: expected one of {', '.join(self.models)}")
        size = sum(len(str(m.get("content", ""))) for m in messages)
        if size > MAX_PROMPT_CHARS:
            raise AppError(413, "PROMPT_TOO_LARGE", f"prompt has {size} characters; the limit is {MAX_PROMPT_CHARS}")
        return body, model, bool(body.get("stream"))

    async def chat(self, request: Request) -> Response:
        raw = await request.body()
        key_id = await self.authenticate(request.headers.get("authorization"))
        _, model, stream = self._validate(raw)
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        conn: asyncpg.Connection = await self.pool.acquire()
        try:
            row = await (self._session_locked(conn, key_id, model) if self.locked
                         else self._session_unlocked(conn, key_id, model))
            psid = row["provider_session_id"]
            headers = {"content-type": "application/json", "session_id": psid, "x-session-id": psid}
            if not self.s.has("no-request-id"):
                headers["x-request-id"] = rid
            if not self.s.has("model-id-not-forwarded"):
                headers["model_id"] = row["model"]
            reply_headers = {"x-request-id": rid, "x-session-id": psid}
            req = self.http.build_request("POST", "/v1/chat/completions", content=raw, headers=headers)
            upstream = await self._send(req, stream)
            if upstream.status_code != 200:
                body = await upstream.aread()
                await upstream.aclose()
                raise _upstream_error(upstream.status_code, body, psid)
            if not stream:
                return Response(upstream.content, 200, reply_headers, media_type="application/json")
            release, conn = conn, None  # the stream's generator releases it when done
            return StreamingResponse(self._relay(upstream, release), 200, reply_headers, media_type="text/event-stream")
        finally:
            if conn is not None:
                await self._release(conn)

    async def _send(self, req: httpx.Request, stream: bool) -> httpx.Response:
        try:
            return await self.http.send(req, stream=stream)
        except httpx.HTTPError as e:
            raise AppError(502, "UPSTREAM_UNAVAILABLE", f"provider did not answer: {type(e).__name__}") from None

    async def _relay(self, upstream: httpx.Response, conn: asyncpg.Connection) -> Any:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            await self._release(conn)

    async def _release(self, conn: asyncpg.Connection) -> None:
        try:
            if self.locked:
                await conn.execute("SELECT pg_advisory_unlock_all()")
        finally:
            await self.pool.release(conn)

    # -- the key's session ---------------------------------------------------------------
    def _reusable(self, row: asyncpg.Record | None, model: str) -> bool:
        # model-id-not-forwarded: the key's session serves whatever model is asked.
        return row is not None and (row["model"] == model or self.s.has("model-id-not-forwarded"))

    async def _session_locked(self, conn: asyncpg.Connection, key_id: int, model: str) -> asyncpg.Record:
        await conn.execute("SELECT pg_advisory_lock_shared($1)", key_id)
        row = await conn.fetchrow(SESSION_SQL, key_id)
        if self._reusable(row, model):
            return row  # shared lock held until the reply is relayed: nobody closes it under us
        if row is None:
            # A key's first session: made under the key's creation lock, the shared lock kept (so
            # nobody switches meanwhile). Those who came at once wait for the insert, not for the
            # first request's whole provider call, as they would queued for the exclusive lock.
            await conn.execute("SELECT pg_advisory_lock($1::int, 1)", key_id)
            try:
                row = await conn.fetchrow(SESSION_SQL, key_id)
                if row is None:
                    row = await self._replace(conn, key_id, None, model)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1::int, 1)", key_id)
            if self._reusable(row, model):
                return row
        await conn.execute("SELECT pg_advisory_unlock_shared($1)", key_id)
        await conn.execute("SELECT pg_advisory_lock($1)", key_id)  # waits for in-flight requests to finish
        row = await conn.fetchrow(SESSION_SQL, key_id)
        if self._reusable(row, model):
            return row
        return await self._replace(conn, key_id, row, model)

    async def _session_unlocked(self, conn: asyncpg.Connection, key_id: int, model: str) -> asyncpg.Record:
        row = await conn.fetchrow(SESSION_SQL, key_id)  # check ... (nothing stops another request here)
        if self._reusable(row, model):
            return row
        return await self._replace(conn, key_id, row, model)  # ... then act

    async def _replace(self, conn: asyncpg.Connection, key_id: int, old: asyncpg.Record | None,
                       model: str) -> asyncpg.Record:
        # Seed 000's order: the new session is opened before the old one is closed. A switch
        # closes whatever is active when the new row goes in -- under the lock that is `old`;
        # without it, also a session another switch made while ours was opening, with that
        # request still in flight. A key's first session just goes in (racy-get-or-create).
        opened = await self._provider("POST", f"/blockchain/models/{model}/session",
                                      {"sessionDuration": self.s.session_ttl_s})
        closed = [] if old is None else await conn.fetch(
            "UPDATE sessions SET is_active = false, closed_at = clock_timestamp() "
            "WHERE api_key_id = $1 AND is_active RETURNING provider_session_id", key_id)
        row = await conn.fetchrow(
            "INSERT INTO sessions(api_key_id, model, provider_session_id) VALUES ($1, $2, $3) "
            "RETURNING id, model, provider_session_id", key_id, model, opened["sessionID"])
        for r in closed:
            await self._provider("POST", f"/blockchain/sessions/{r['provider_session_id']}/close")
        return row

    async def _provider(self, method: str, path: str, body: Any = None) -> Any:
        try:
            r = await self.http.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise AppError(502, "UPSTREAM_UNAVAILABLE", f"provider did not answer {path}: {type(e).__name__}") from None
        if r.status_code != 200:
            raise _upstream_error(r.status_code, r.content, None)
        return r.json()


def _upstream_error(status: int, body: bytes, psid: str | None) -> AppError:
    try:
        words = str(orjson.loads(body).get("error"))
    except (orjson.JSONDecodeError, AttributeError):
        words = body[:200].decode("utf-8", "replace")
    if status == 410:
        return AppError(502, "SESSION_EXPIRED", f"provider session {psid} expired in flight: {words}")
    return AppError(502, "UPSTREAM_ERROR", f"provider answered HTTP {status}: {words}")
