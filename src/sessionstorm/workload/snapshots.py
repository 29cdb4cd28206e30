"""Database invariant snapshots: every SQL invariant of the target profile, run against the
target's database, during and after a run. A query returns the violating rows (none: the
invariant holds). Each result becomes a ``snapshot`` event in the history; the checker's
``Invariants`` reads them. Shared by the regression driver and the Locust integration.
"""
from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

TIMEOUT_S = 10.0


def jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, (decimal.Decimal, uuid.UUID, bytes)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return str(v)


async def take(dsn: str | None, invariants: dict[str, str], when: str) -> list[dict[str, Any]]:
    """One snapshot per invariant: ``{"invariant", "sql", "rows" (None on error), "error", "when"}``."""
    import asyncpg

    if not invariants:
        return []
    conn, connect_error = None, None if dsn else "no database.dsn in the profile"
    if dsn:
        try:
            conn = await asyncpg.connect(dsn, timeout=TIMEOUT_S)
        except (OSError, asyncpg.PostgresError, TimeoutError) as e:
            connect_error = f"{type(e).__name__}: {e}"
    results: list[dict[str, Any]] = []
    try:
        for name, sql in invariants.items():
            rows, error = None, connect_error
            if conn is not None:
                try:
                    recs = await conn.fetch(sql, timeout=TIMEOUT_S)
                    rows = [{k: jsonable(v) for k, v in r.items()} for r in recs]
                except (asyncpg.PostgresError, TimeoutError, OSError) as e:
                    error = f"{type(e).__name__}: {e}"
            results.append({"invariant": name, "sql": sql, "rows": rows, "error": error, "when": when})
    finally:
        if conn is not None:
            await conn.close()
    return results
