"""The embedded stack over real connections: PostgreSQL, Redis, the provider, targets."""
from __future__ import annotations

import time

import httpx
import pytest
import redis
from pg_helpers import sql
from stack_helpers import ENVSERVER

from sessionstorm.errors import ConfigError, StartupError
from sessionstorm.stack import BACKENDS, Stack


def test_postgres_runs_sql(sessionstorm_stack: Stack) -> None:
    rows = sql(sessionstorm_stack.postgres.dsn, "select version() as v, 6 * 7 as answer")
    assert rows[0]["v"].startswith("PostgreSQL")
    assert rows[0]["answer"] == 42
    assert sessionstorm_stack.postgres.host == "127.0.0.1"


def test_redis_set_get(sessionstorm_stack: Stack) -> None:
    r = redis.Redis.from_url(sessionstorm_stack.redis.url)
    r.set("sessionstorm:test", "value-1")
    assert r.get("sessionstorm:test") == b"value-1"
    r.close()


def test_provider_answers_healthz(sessionstorm_stack: Stack) -> None:
    r = httpx.get(sessionstorm_stack.provider.url + "/healthz", timeout=5)
    assert r.status_code == 200
    assert sessionstorm_stack.provider.url.startswith("http://127.0.0.1:")


def test_create_database_isolates(sessionstorm_stack: Stack) -> None:
    a, b = sessionstorm_stack.create_database("iso"), sessionstorm_stack.create_database("iso")
    assert a != b
    sql(a, "create table t as select 1 as x")
    assert sql(a, "select count(*) as n from t")[0]["n"] == 1
    assert sql(b, "select count(*) as n from pg_tables where tablename = 't'")[0]["n"] == 0


def test_target_gets_its_own_database_redis_and_env(sessionstorm_stack: Stack,
                                                    sessionstorm_start_target) -> None:  # type: ignore[no-untyped-def]
    cmd = ["{python}", ENVSERVER, "--dsn={postgres_dsn}", "--port={port}", "--json={\"keep\": 1}"]
    t1 = sessionstorm_start_target(cmd, env={"EXTRA": "redis={redis_url}"}, name="one")
    t2 = sessionstorm_start_target(cmd, name="two")
    seen1, seen2 = httpx.get(t1.url, timeout=5).json(), httpx.get(t2.url, timeout=5).json()
    env1 = seen1["env"]

    assert env1["SESSIONSTORM_POSTGRES_DSN"] == t1.postgres.dsn != sessionstorm_stack.postgres.dsn
    assert env1["SESSIONSTORM_POSTGRES_DSN"] != seen2["env"]["SESSIONSTORM_POSTGRES_DSN"]
    assert env1["SESSIONSTORM_REDIS_URL"] != seen2["env"]["SESSIONSTORM_REDIS_URL"]
    assert env1["SESSIONSTORM_PROVIDER_URL"] == sessionstorm_stack.provider.url
    port = t1.url.rsplit(":", 1)[1]
    assert env1["SESSIONSTORM_TARGET_PORT"] == env1["PORT"] == port
    assert env1["SESSIONSTORM_TARGET_HOST"] == "127.0.0.1"
    assert env1["SESSIONSTORM_ADMIN_TOKEN"]
    # templates are filled in the command and the env; unknown {names} are left alone
    assert seen1["argv"] == [f"--dsn={t1.postgres.dsn}", f"--port={port}", '--json={"keep": 1}']
    assert env1["EXTRA"] == f"redis={env1['SESSIONSTORM_REDIS_URL']}"
    # the fresh database is real and empty
    assert sql(t1.postgres.dsn, "select current_database() as d")[0]["d"] == t1.postgres.dbname
    info = sessionstorm_stack.info()
    assert info["target_one_url"] == t1.url and info["target_two_url"] == t2.url

    t1.stop()
    assert "target_one_url" not in sessionstorm_stack.info()
    with pytest.raises(httpx.ConnectError):
        httpx.get(t1.url, timeout=2)


def test_target_that_never_listens_names_what_it_waited_for(sessionstorm_stack: Stack) -> None:
    script = "import sys, time; print('booting slowly', flush=True); time.sleep(60)"
    t0 = time.monotonic()
    with pytest.raises(StartupError) as err:
        sessionstorm_stack.start_target(["{python}", "-c", script], name="sleepy", timeout=1.5)
    assert time.monotonic() - t0 < 15
    msg = str(err.value)
    assert "target 'sleepy' did not become ready" in msg
    assert "waited for GET http://127.0.0.1:" in msg and "/healthz -> 200" in msg
    assert "ConnectError" in msg and "after 1.5 s" in msg  # the last state seen
    assert "booting slowly" in err.value.logs
    assert not any(t.name == "sleepy" for t in sessionstorm_stack.targets)


def test_target_that_exits_is_reported_at_once(sessionstorm_stack: Stack) -> None:
    script = "import sys; print('no database for me', flush=True); sys.exit(3)"
    t0 = time.monotonic()
    with pytest.raises(StartupError) as err:
        sessionstorm_stack.start_target(["{python}", "-c", script], name="crashy", timeout=30)
    assert time.monotonic() - t0 < 10  # not the 30 s timeout
    assert "process exited with code 3" in str(err.value)
    assert "last log line: no database for me" in str(err.value)


def test_unknown_backend_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        Stack("kubernetes")
    assert str(err.value).startswith(f"backend=kubernetes: expected one of {', '.join(BACKENDS)};")
    assert {"embedded", "external"} <= set(BACKENDS)


def test_backend_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONSTORM_BACKEND", "nope")
    with pytest.raises(ConfigError, match="backend=nope"):
        Stack()
    monkeypatch.setenv("SESSIONSTORM_BACKEND", "external")
    assert Stack().backend_name == "external"


def test_external_backend_uses_given_addresses(sessionstorm_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONSTORM_POSTGRES_DSN", sessionstorm_stack.postgres.dsn)
    monkeypatch.setenv("SESSIONSTORM_REDIS_URL", sessionstorm_stack.redis.url)
    monkeypatch.setenv("SESSIONSTORM_PROVIDER_URL", sessionstorm_stack.provider.url)
    monkeypatch.setenv("SESSIONSTORM_TARGET_URL", sessionstorm_stack.provider.url + "/")
    with Stack("external") as ext:
        assert ext.pids() == []
        assert sql(ext.create_database("x"), "select 1 as one")[0]["one"] == 1
        target = ext.start_target(["unused"], name="staging")
        assert target.url == sessionstorm_stack.provider.url
        assert httpx.get(target.url + "/healthz", timeout=5).status_code == 200


def test_external_backend_rejects_bad_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONSTORM_TARGET_URL", "localhost:8000")
    with pytest.raises(ConfigError, match="SESSIONSTORM_TARGET_URL=localhost:8000: expected a URL starting with http://"):
        Stack("external").start()
