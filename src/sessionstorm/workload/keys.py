"""API keys for a run, made the way the profile says: literal, SQL, HTTP or a hook.

Synchronous on purpose: keys are made once before load starts, from gevent (Locust)
or from asyncio (``await asyncio.to_thread(make_keys, ...)``).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sessionstorm.errors import StartupError
from sessionstorm.profile import fill, resolve_hook

if TYPE_CHECKING:
    from sessionstorm.stack.launch import RunningTarget


def make_keys(target: RunningTarget, users: list[str]) -> dict[str, str]:
    """One key per user (literal keys are shared round-robin, as teams share keys)."""
    k = target.profile.keys
    if not target.profile.auth.header:
        return {}
    if k.source == "literal":
        return {u: k.literal[i % len(k.literal)] for i, u in enumerate(users)}
    if k.source == "hook":
        fn = resolve_hook(k.hook or "")
        return {u: str(fn(u, target)) for u in users}
    if k.source == "http":
        return asyncio.run(_http_keys(target, users))
    return asyncio.run(_sql_keys(target, users))


async def _http_keys(target: RunningTarget, users: list[str]) -> dict[str, str]:
    import httpx

    from sessionstorm.endpoints import target_client

    k = target.profile.keys
    out: dict[str, str] = {}
    # the Run's guard judged this URL and its resolve before any request: no second verdict here
    async with target_client(target.url, target.profile.target.resolve or None, allow_remote=True,
                             timeout=target.profile.target.timeout_s) as client:
        for u in users:
            values = {**target.values, "user": u}
            headers = {h: fill(v, values, f"keys.http_headers.{h}") for h, v in k.http_headers.items()}
            body = {f: fill(v, values, f"keys.http_body.{f}") for f, v in k.http_body.items()}
            what = f"keys via {k.http_method} {k.http_path}"
            try:
                r = await client.request(k.http_method, fill(k.http_path or "", values, "keys.http_path"),
                                         headers=headers, json=body or None)
            except httpx.HTTPError as e:
                raise StartupError(what, f"a reply from {target.url}", f"{type(e).__name__}: {e}") from None
            doc = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
            if not (200 <= r.status_code < 300 and isinstance(doc, dict) and doc.get(k.http_field)):
                raise StartupError(what, f"a 2xx JSON reply with field {k.http_field!r}",
                                   f"HTTP {r.status_code}: {r.text[:120]}", "check keys.http_* in the profile")
            out[u] = str(doc[k.http_field])
    return out


async def _sql_keys(target: RunningTarget, users: list[str]) -> dict[str, str]:
    import asyncpg

    if not target.dsn:
        raise StartupError("keys via SQL", "database.dsn", "no DSN", "set database.dsn in the profile")
    conn = await asyncpg.connect(target.dsn, timeout=10)
    try:
        out = {}
        for u in users:
            key = await conn.fetchval(fill(target.profile.keys.sql or "", {**target.values, "user": u}, "keys.sql"))
            if key is None:
                raise StartupError("keys via SQL", "a row whose first column is the key", "no row",
                                   "make keys.sql end in RETURNING <key column>")
            out[u] = str(key)
        return out
    finally:
        await conn.close()
