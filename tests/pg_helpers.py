"""SQL from tests, in their own connection: what a test reads back is what was committed."""
from __future__ import annotations

import asyncio

import asyncpg


def sql(dsn: str, query: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(query)
        finally:
            await conn.close()
    return asyncio.run(run())
