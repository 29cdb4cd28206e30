"""Each seeded bug, shown at the level of its mechanism under real concurrency (rows in
PostgreSQL, entries in Redis, canaries in replies), beside the clean target running the
very same test. A race is timing: the buggy target gets up to ATTEMPTS tries to show it;
the clean one must show nothing."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from pg_helpers import sql

from sessionstorm.canary import canary_for, find_canaries, new_op_id, parse_echo

from .conftest import client, new_key

ATTEMPTS = 5


def chat(model: str, canary: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": f"Question about {canary}."}]}


def crosstalk(t) -> int:
    """20 developers on one key at once, once its session exists: replies carrying another
    request's canary. (A fresh key's first burst queues behind the request that opens the
    session and reaches the provider one by one: 19 of 20 such probes saw nothing.)"""
    h = {"Authorization": f"Bearer {new_key(t.url)}"}
    canaries = [canary_for(new_op_id()) for _ in range(20)]

    async def run():
        async with client(t.url) as c:
            first = await c.post("/v1/chat/completions", json=chat("llama-70b", canary_for(new_op_id())), headers=h)
            assert first.status_code == 200, first.text
            rs = await asyncio.gather(*(c.post("/v1/chat/completions", json=chat("llama-70b", k), headers=h) for k in canaries))
        return sum(bool(set(find_canaries(r.text)) - {k}) for k, r in zip(canaries, rs))
    return asyncio.run(run())


def expired_in_flight(t) -> int:
    """Alternating models on one key at once, once its session exists (a fresh key's burst
    would all open sessions at once instead): requests that met a session closed under them."""
    h = {"Authorization": f"Bearer {new_key(t.url)}"}
    models = ["qwen3-235b", "llama-70b", "mistral-7b"]

    async def run():
        async with client(t.url) as c:
            first = await c.post("/v1/chat/completions", json=chat("llama-70b", canary_for(new_op_id())), headers=h)
            assert first.status_code == 200, first.text
            rs = await asyncio.gather(*(c.post("/v1/chat/completions", json=chat(models[i % 3], canary_for(new_op_id())),
                                               headers=h) for i in range(12)))
        return sum(r.status_code == 502 and r.json()["error"] == "SESSION_EXPIRED" for r in rs)
    return asyncio.run(run())


def duplicate_conversations(t) -> int:
    """3 concurrent first messages for each of 5 users: users with more than one active conversation."""
    users = [f"u-{uuid.uuid4().hex[:8]}" for _ in range(5)]

    async def run():
        async with client(t.url) as c:
            await asyncio.gather(*(c.post(f"/v1/conversations/{u}/messages", json={"content": "hi"})
                                   for u in users for _ in range(3)))
    asyncio.run(run())
    in_list = ",".join(f"'{u}'" for u in users)
    return len(sql(t.postgres.dsn, f"SELECT user_id FROM conversation_sessions WHERE status = 'active' "
                                   f"AND user_id IN ({in_list}) GROUP BY user_id HAVING count(*) > 1"))


def duplicate_key_sessions(t) -> int:
    """First requests of 5 fresh keys, 4 at once each: keys with more than one active session."""
    user = f"dev-{uuid.uuid4().hex[:8]}"  # counts only this probe's keys, not an earlier try's
    keys = [new_key(t.url, user) for _ in range(5)]

    async def run():
        async with client(t.url) as c:
            await asyncio.gather(*(c.post("/v1/chat/completions", json=chat("llama-70b", canary_for(new_op_id())),
                                          headers={"Authorization": f"Bearer {k}"}) for k in keys for _ in range(4)))
    asyncio.run(run())
    return len(sql(t.postgres.dsn, f"SELECT s.api_key_id FROM sessions s JOIN api_keys k ON k.id = s.api_key_id "
                                   f"JOIN users u ON u.id = k.user_id WHERE s.is_active AND u.name = '{user}' "
                                   f"GROUP BY s.api_key_id HAVING count(*) > 1"))


def fallback_churn(t) -> int:
    """Three messages in a row from one user: conversations beyond the first."""
    user = f"u-{uuid.uuid4().hex[:8]}"

    async def run():
        async with client(t.url) as c:
            return [(await c.post(f"/v1/conversations/{user}/messages", json={"content": f"m{i}"})).json() for i in range(3)]
    replies = asyncio.run(run())
    return len({r["session_id"] for r in replies}) - 1


def observe_burst(t) -> tuple[int, int]:
    """10 sessions x 5 parallel observes, then read-back: (spurious 404s, lost observations)."""
    async def run():
        async with client(t.url) as c:
            sids = [(await c.post("/sessions")).json()["session_id"] for _ in range(10)]
            rs = await asyncio.gather(*(c.post(f"/sessions/{s}/observe", json={"observation": f"{s}-{i}"})
                                        for s in sids for i in range(5)))
            not_found = sum(r.status_code == 404 and r.json()["error"] == "SESSION_NOT_FOUND" for r in rs)
            acked = {f"{s}-{i}" for s in sids for i in range(5)} - {
                orjson_obs(r) for r in rs if r.status_code != 200}
            read = set()
            for s in sids:
                read |= set((await c.get(f"/sessions/{s}")).json()["observations"])
            return not_found, len(acked - read)
    return asyncio.run(run())


def orjson_obs(r) -> str:
    return r.request.content.decode().split('"')[3]


def wrong_model(t) -> int:
    """One key asks model A, then model B: replies served by another model than asked."""
    h = {"Authorization": f"Bearer {new_key(t.url)}"}

    async def run():
        async with client(t.url) as c:
            wrong = 0
            for model in ("qwen3-235b", "llama-70b", "mistral-7b"):
                r = await c.post("/v1/chat/completions", json=chat(model, canary_for(new_op_id())), headers=h)
                wrong += parse_echo(r.json()["choices"][0]["message"]["content"]).model != model
            return wrong
    return asyncio.run(run())


CASES = {
    "no-request-id": crosstalk,
    "model-switch-race": expired_in_flight,
    "racy-get-or-create": duplicate_conversations,
    "racy-get-or-create,no-unique-index": duplicate_key_sessions,
    "bad-fallback": fallback_churn,
    "unlocked-lazy-init": lambda t: observe_burst(t)[0],
    "lost-update-observe": lambda t: observe_burst(t)[1],
    "model-id-not-forwarded": wrong_model,
}


@pytest.mark.parametrize("bugs", list(CASES))
def test_bug_shows_its_mechanism_and_the_clean_target_does_not(target, bugs):
    probe = CASES[bugs]
    assert probe(target("")) == 0, "the clean target must show nothing"
    seen = 0
    for _ in range(ATTEMPTS):
        seen = probe(target(bugs))
        if seen:
            break
    assert seen > 0, f"{bugs} did not show in {ATTEMPTS} tries"


def test_racy_gateway_keeps_one_active_session_when_the_index_is_there(target):
    # racy-get-or-create alone: the unique index turns the race into 500s, not duplicates.
    assert duplicate_key_sessions(target("racy-get-or-create")) == 0
