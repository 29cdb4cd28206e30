"""The conversation service of seeds 002/003: one active conversation per user, context
kept across turns.

Clean: get-or-create runs under a per-user transaction-level advisory lock, backed by a
partial unique index on the active conversation. The bugs:

- ``racy-get-or-create``: select-then-insert with no lock and no index (seed 002 before
  its phase 5): concurrent first messages each create a conversation.
- ``bad-fallback``: the primary lookup asks for a status the rows never have (seed 003's
  "RPC not finding active sessions"), so every message takes the fallback, which ends all
  of the user's conversations and starts a new one: churn, and the context is lost.
"""
from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg

from sessionstorm.target.errors import AppError
from sessionstorm.target.settings import MAX_PROMPT_CHARS, Settings

# Starting a conversation builds its opening state (seed 002: the project context shown
# instead of the greeting), awaited like any I/O. Env SESSIONSTORM_TARGET_CREATE_WORK_MS.
CREATE_WORK_S = float(os.environ.get("SESSIONSTORM_TARGET_CREATE_WORK_MS", "20")) / 1000
ACTIVE = "SELECT id FROM conversation_sessions WHERE user_id = $1 AND status = $2 ORDER BY started_at DESC LIMIT 1"


class Conversations:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.racy = settings.has("racy-get-or-create")
        self.bad_fallback = settings.has("bad-fallback")

    async def message(self, user_id: str, content: Any) -> dict[str, Any]:
        if not user_id or len(user_id) > 200:
            raise AppError(400, "INVALID_USER_ID", "user id must be 1 to 200 characters")
        if not isinstance(content, str) or not content:
            raise AppError(400, "INVALID_REQUEST", "'content' must be a non-empty string")
        if len(content) > MAX_PROMPT_CHARS:
            raise AppError(413, "MESSAGE_TOO_LARGE", f"message has {len(content)} characters; the limit is {MAX_PROMPT_CHARS}")
        async with self.pool.acquire() as conn:
            if self.racy or self.bad_fallback:
                session_id = await self._get_or_create_unlocked(conn, user_id)
            else:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", user_id)
                    session_id = await self._find(conn, user_id) or await self._create(conn, user_id)
            await conn.execute("INSERT INTO conversation_messages(session_id, content) VALUES ($1, $2)",
                               session_id, content)
            rows = await conn.fetch("SELECT content FROM conversation_messages WHERE session_id = $1 ORDER BY id",
                                    session_id)
        return {"session_id": str(session_id), "turn": len(rows), "context": [r["content"] for r in rows]}

    async def _find(self, conn: asyncpg.Connection, user_id: str) -> Any:
        # bad-fallback: the lookup asks for a status no row has, so it never finds one.
        return await conn.fetchval(ACTIVE, user_id, "open" if self.bad_fallback else "active")

    async def _create(self, conn: asyncpg.Connection, user_id: str) -> Any:
        await asyncio.sleep(CREATE_WORK_S)  # clean: inside the user's lock; racy: nothing holds the others back
        return await conn.fetchval("INSERT INTO conversation_sessions(user_id) VALUES ($1) RETURNING id", user_id)

    async def _get_or_create_unlocked(self, conn: asyncpg.Connection, user_id: str) -> Any:
        found = await self._find(conn, user_id)  # check ... (another request may be between these lines)
        if found is not None:
            return found
        if self.bad_fallback:  # seed 003's _create_session_manual: end everything, start anew
            await conn.execute("UPDATE conversation_sessions SET status = 'ended', ended_at = clock_timestamp(), "
                               "ended_reason = 'fallback' WHERE user_id = $1 AND status = 'active'", user_id)
        return await self._create(conn, user_id)  # ... then act
