"""Schema and key storage of the reference target (PostgreSQL through asyncpg)."""
from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import Any

import asyncpg

SCHEMA_LOCK = 727_001  # advisory lock id: several workers start at once, one creates the schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id bigserial PRIMARY KEY, name text UNIQUE NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS api_keys (
    id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id), key_hash text UNIQUE NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS sessions (
    id bigserial PRIMARY KEY, api_key_id bigint NOT NULL REFERENCES api_keys(id), model text NOT NULL,
    provider_session_id text NOT NULL, is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(), closed_at timestamptz);
CREATE TABLE IF NOT EXISTS conversation_sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text NOT NULL, status text NOT NULL DEFAULT 'active',
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(), ended_at timestamptz, ended_reason text);
CREATE TABLE IF NOT EXISTS conversation_messages (
    id bigserial PRIMARY KEY, session_id uuid NOT NULL REFERENCES conversation_sessions(id), content text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS conversation_messages_session ON conversation_messages(session_id, id);
"""
# The constraints the seeds were missing, each removable by its bug flag.
SESSION_INDEX = ("sessions_active_api_key_unique",
                 "CREATE UNIQUE INDEX IF NOT EXISTS sessions_active_api_key_unique ON sessions(api_key_id) WHERE is_active")
CONVERSATION_INDEX = ("conversation_one_active_per_user",
                      "CREATE UNIQUE INDEX IF NOT EXISTS conversation_one_active_per_user "
                      "ON conversation_sessions(user_id) WHERE status = 'active'")


async def ensure_schema(pool: asyncpg.Pool, bugs: frozenset[str]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(SCHEMA)
        for (name, create), absent in ((SESSION_INDEX, "no-unique-index" in bugs),
                                       (CONVERSATION_INDEX, "racy-get-or-create" in bugs)):
            await conn.execute(f"DROP INDEX IF EXISTS {name}" if absent else create)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(conn: asyncpg.Connection, user: str) -> dict[str, object]:
    key = "sk-ss-" + secrets.token_urlsafe(24)
    async with conn.transaction():
        user_id = await conn.fetchval(
            "INSERT INTO users(name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            user)
        key_id = await conn.fetchval("INSERT INTO api_keys(user_id, key_hash) VALUES ($1, $2) RETURNING id",
                                     user_id, hash_key(key))
    return {"api_key": key, "key_id": key_id, "user_id": user_id}


class StickyPool:
    """The ``no-db-reconnect`` bug: a hand-rolled pool with asyncpg.Pool's calls (``acquire``
    awaited or as a context manager, ``release``, ``fetchval``, ``close``) that keeps every
    connection it opened and hands it out again without checking it. After PostgreSQL
    restarts, every connection it holds is dead and stays in the pool: every call fails."""

    def __init__(self, dsn: str, max_size: int = 60) -> None:
        self.dsn, self.max_size = dsn, max_size
        self._idle: list[asyncpg.Connection] = []
        self._all: list[asyncpg.Connection] = []
        self._opening = 0
        self._cond = asyncio.Condition()

    def acquire(self) -> _Acquire:
        return _Acquire(self)

    async def _get(self) -> asyncpg.Connection:
        async with self._cond:
            while not self._idle and len(self._all) + self._opening >= self.max_size:
                await self._cond.wait()
            if self._idle:
                return self._idle.pop()  # the bug: never asks whether it is still alive
            self._opening += 1
        try:
            conn = await asyncpg.connect(self.dsn)
            self._all.append(conn)
            return conn
        finally:
            self._opening -= 1

    async def release(self, conn: asyncpg.Connection) -> None:
        async with self._cond:
            self._idle.append(conn)
            self._cond.notify()

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def close(self) -> None:
        for conn in self._all:
            conn.terminate()


class _Acquire:
    def __init__(self, pool: StickyPool) -> None:
        self.pool, self.conn = pool, None

    def __await__(self) -> Any:
        return self.pool._get().__await__()

    async def __aenter__(self) -> asyncpg.Connection:
        self.conn = await self.pool._get()
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.release(self.conn)
