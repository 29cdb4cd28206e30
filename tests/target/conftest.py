from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

ADMIN = {"Authorization": "Bearer sessionstorm-admin"}  # the stack's default admin token
_targets: dict[str, Any] = {}


@pytest.fixture(scope="session")
def target(sessionstorm_stack):
    """A reference target per bug set, started once per worker: target("no-request-id")."""
    def get(bugs: str = ""):
        if bugs not in _targets:
            _targets[bugs] = sessionstorm_stack.start_target(
                ["{python}", "-m", "sessionstorm.target", "serve"], env={"SESSIONSTORM_TARGET_BUGS": bugs},
                name=(bugs or "clean").replace(",", "+"))
        return _targets[bugs]
    yield get
    _targets.clear()


def new_key(url: str, user: str = "dev") -> str:
    r = httpx.post(url + "/admin/keys", json={"user": user}, headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()["api_key"]


def gather(coros):
    async def run():
        return await asyncio.gather(*coros)
    return asyncio.run(run())


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=100))
