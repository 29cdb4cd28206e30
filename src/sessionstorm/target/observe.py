"""The session-observe service of seed 004, kept in Redis with a TTL.

Clean: the Redis client is (re)made under a lock and published only when complete, and an
observation is appended atomically (RPUSH). The bugs:

- ``unlocked-lazy-init``: the client is made lazily on first use and re-made like a pooled
  connection (after RECYCLE_USES uses, RECYCLE_AGE_S seconds, or IDLE_S seconds idle), without
  a lock, and it is published before its key namespace is loaded (an await in between). A
  request arriving in that window uses the half-made client: a read looks under the wrong
  key and answers this service's own 404 SESSION_NOT_FOUND for a session that exists; a
  create files its session under the wrong key, so every later request for it gets 404 --
  deterministic, retries never help, as in seed 004.
- ``lost-update-observe``: observe reads the whole session, appends, writes it back: two
  concurrent observes read the same list and the later write drops the other's entry.
- ``redis-state-loss``: when a new client finds a different Redis server (its ``run_id``
  changed: Redis restarted), the service assumes Redis came back empty and clears its
  database to start clean, and it treats a missing session as a new, empty one (observe
  creates it, read answers an empty list). Sessions acknowledged before the restart are
  gone and nothing says so: observes answer 200, read-backs miss what came before.
"""
from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from typing import Any

import orjson
import redis.asyncio as aioredis

from sessionstorm.target.errors import AppError
from sessionstorm.target.settings import Settings

NAMESPACE = "sessionstorm:observe:"
CONFIG_KEY = "sessionstorm:config:namespace"  # an operator may move the namespace
RECYCLE_USES = 10
RECYCLE_AGE_S = 2.0
IDLE_S = 0.5
# An observe does work with the observation (seed 004's service learns from it), awaited
# like any I/O; clean and buggy paths both do it. Env SESSIONSTORM_TARGET_OBSERVE_WORK_MS.
WORK_S = float(os.environ.get("SESSIONSTORM_TARGET_OBSERVE_WORK_MS", "2")) / 1000
# Making a client costs a handshake (TLS and AUTH to a managed Redis take ms, loopback
# does not); both paths pay it. Env SESSIONSTORM_TARGET_REDIS_INIT_MS.
INIT_S = float(os.environ.get("SESSIONSTORM_TARGET_REDIS_INIT_MS", "5")) / 1000
MAX_OBSERVATION = 64 * 1024
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


class RedisSessions:
    def __init__(self, settings: Settings, ttl_s: int = 3600) -> None:
        self.url, self.ttl = settings.redis_url, ttl_s
        self.unlocked_init = settings.has("unlocked-lazy-init")
        self.lost_update = settings.has("lost-update-observe")
        self.state_loss = settings.has("redis-state-loss")
        self._run_id: str | None = None  # the Redis server's run id, seen by redis-state-loss
        self.client: aioredis.Redis | None = None
        self.prefix = ""
        self._born = 0.0
        self._uses = 0
        self._last_use = 0.0
        self._lock = asyncio.Lock()
        self._old: list[aioredis.Redis] = []

    def _fresh(self) -> bool:
        now = time.monotonic()
        return (self.client is not None and self._uses < RECYCLE_USES and now - self._born < RECYCLE_AGE_S
                and now - self._last_use < IDLE_S)

    async def _client(self) -> tuple[aioredis.Redis, str]:
        if not self._fresh():
            if self.unlocked_init:
                await self._init_unlocked()
            else:
                async with self._lock:
                    if not self._fresh():
                        await self._init_locked()
        self._uses += 1
        self._last_use = time.monotonic()
        assert self.client is not None
        return self.client, self.prefix

    async def _init_locked(self) -> None:
        client = aioredis.from_url(self.url)
        await asyncio.sleep(INIT_S)
        await client.ping()
        if self.state_loss:
            await self._forget_on_new_server(client)
        prefix = (await client.get(CONFIG_KEY) or NAMESPACE.encode()).decode()
        self._retire()
        self.client, self.prefix, self._born, self._uses = client, prefix, time.monotonic(), 0
        self._last_use = self._born

    async def _init_unlocked(self) -> None:
        self._retire()
        self.client, self.prefix, self._born, self._uses = aioredis.from_url(self.url), "", time.monotonic(), 0
        self._last_use = self._born
        # Others run during these awaits and use the client before it has its namespace.
        await asyncio.sleep(INIT_S)
        await self.client.ping()
        self.prefix = (await self.client.get(CONFIG_KEY) or NAMESPACE.encode()).decode()

    async def _forget_on_new_server(self, client: aioredis.Redis) -> None:
        run_id = (await client.info("server")).get("run_id")
        if self._run_id is not None and run_id != self._run_id:
            await client.flushdb()  # the bug: "a restarted Redis is an empty cache: start clean"
        self._run_id = run_id

    def _retire(self) -> None:
        # Old clients may still serve in-flight requests; they are closed at shutdown.
        if self.client is not None:
            self._old.append(self.client)

    async def close(self) -> None:
        for c in [*self._old, *([self.client] if self.client is not None else [])]:
            await c.aclose()

    # -- API -----------------------------------------------------------------------
    @staticmethod
    def _check_id(session_id: str) -> None:
        if not _SESSION_ID.match(session_id):
            raise AppError(400, "INVALID_SESSION_ID", f"session id {session_id[:80]!r} is not 32 hex characters")

    async def create(self) -> dict[str, Any]:
        client, prefix = await self._client()
        sid = uuid.uuid4().hex
        await client.set(prefix + sid, b"[]", ex=self.ttl)
        return {"session_id": sid, "ttl_seconds": self.ttl}

    async def observe(self, session_id: str, observation: Any) -> dict[str, Any]:
        self._check_id(session_id)
        item = orjson.dumps(observation)
        if len(item) > MAX_OBSERVATION:
            raise AppError(413, "OBSERVATION_TOO_LARGE", f"observation has {len(item)} bytes; the limit is {MAX_OBSERVATION}")
        client, prefix = await self._client()
        key = prefix + session_id
        if self.lost_update:
            doc = await client.get(key)
            if doc is None:
                raise _not_found(session_id)
            ttl = await client.ttl(key)  # to write it back with the expiry it had
            items = orjson.loads(doc)
            await asyncio.sleep(WORK_S)  # processing, with the session's state in hand
            items.append(observation)
            await client.set(key, orjson.dumps(items), ex=max(ttl, 1))  # overwrites whatever came in between
            return {"session_id": session_id, "length": len(items)}
        await asyncio.sleep(WORK_S)  # processing; the append below does not depend on it
        length = await client.eval(_UPSERT if self.state_loss else _APPEND, 1, key, item)  # atomic: exists-check and append in one step
        if length < 0:
            raise _not_found(session_id)
        return {"session_id": session_id, "length": length}

    async def read(self, session_id: str) -> dict[str, Any]:
        self._check_id(session_id)
        client, prefix = await self._client()
        doc = await client.get(prefix + session_id)
        if doc is None and self.state_loss:
            doc = b"[]"  # the bug: a missing session reads as a new, empty one
        if doc is None:
            raise _not_found(session_id)
        return {"session_id": session_id, "observations": orjson.loads(doc)}

    async def delete(self, session_id: str) -> dict[str, Any]:
        self._check_id(session_id)
        client, prefix = await self._client()
        if not await client.delete(prefix + session_id):
            raise _not_found(session_id)
        return {"session_id": session_id, "deleted": True}


# The session is one JSON array; appending inside Redis keeps read-modify-write atomic.
_APPEND = """
local doc = redis.call('GET', KEYS[1])
if not doc then return -1 end
local n
if doc == '[]' then doc = '[' .. ARGV[1] .. ']'; n = 1
else doc = string.sub(doc, 1, -2) .. ',' .. ARGV[1] .. ']'; n = -1 end
redis.call('SET', KEYS[1], doc, 'KEEPTTL')
if n == 1 then return 1 end
return #cjson.decode(doc)
"""

# redis-state-loss: a missing session is made anew (empty) instead of answering 404.
_UPSERT = "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], '[]', 'EX', 3600) end\n" + _APPEND


def _not_found(session_id: str) -> AppError:
    return AppError(404, "SESSION_NOT_FOUND", f"no session {session_id}; it expired, was deleted, or never existed")
