"""The reference target and its real ``stale-build`` flag (an older build without the observe
route): beside the target on the other loopback family at the same port, or sharing its port
through SO_REUSEPORT. Each detection has its clean twin: the same build in the same place."""
from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import httpx
import pytest

from sessionstorm.endpoints import Spreader, SpreadTransport, peer_of, preflight

from .conftest import NAME, SERVE, needs_ipv6

OBSERVE = "/sessions/{session_id}/observe"
GENERIC_404 = {"detail": "Not Found"}


def twin(servers, real, host: str, port: int, bugs: str):
    """The target's own serve command on ``host``, sharing the real target's database and Redis."""
    return servers.start(host, port, [sys.executable, "-m", "sessionstorm.target", "serve", "--host", host,
                                      "--port", str(port), "--bugs", bugs], env=real.env)


def timed_preflight(url: str, overrides: dict | None, runs: int = 7) -> tuple[list, float]:
    times, findings = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        findings = preflight(url, overrides, session_path=OBSERVE)
        times.append(time.perf_counter() - t0)
    return findings, statistics.median(times)


async def observe_50(url: str, spreader: Spreader) -> list[tuple[str | None, int, dict]]:
    """Seed 004's test: 10 sessions x 5 observes, all 50 at once, each on a new connection."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as setup:
        sids = [(await setup.post("/sessions")).json()["session_id"] for _ in range(10)]
    transport = SpreadTransport(spreader, limits=httpx.Limits(max_connections=100))
    async with httpx.AsyncClient(base_url=f"http://{NAME}:{urlsplit(url).port}", transport=transport,
                                 timeout=30) as c:
        rs = await asyncio.gather(*(c.post(f"/sessions/{sid}/observe", json={"observation": f"o{i}"})
                                    for sid in sids for i in range(5)))
    return [(peer_of(r), r.status_code, r.json()) for r in rs]


@needs_ipv6
def test_stale_build_on_the_other_family(real, servers):
    port = urlsplit(real.url).port
    url, both = f"http://{NAME}:{port}", {NAME: ["::1", "127.0.0.1"]}
    assert preflight(url, {NAME: ["127.0.0.1"]}, session_path=OBSERVE) == []  # one server: clean

    stale = twin(servers, real, "::1", port, "stale-build")
    findings, median = timed_preflight(url, both)
    print(f"\npreflight, reference target + stale twin (2 addresses x 8 connections): median {median * 1000:.0f} ms")
    assert median < 1.0
    assert [f["code"] for f in findings] == ["SPLIT_ENDPOINT"]
    f = findings[0]
    assert set(f["addresses"]) == {f"[::1]:{port}", f"127.0.0.1:{port}"}
    assert f["addresses"][f"[::1]:{port}"] != f["addresses"][f"127.0.0.1:{port}"]
    assert "session_not_found" in f["differs"]  # the missing route's generic 404 (no /openapi.json here)

    # Under load: a client that spreads its connections meets the stale build on every other one.
    got = asyncio.run(observe_50(real.url, Spreader.for_url(url, both)))
    outcome = Counter((peer, status, str(body) if status == 404 else "ok") for peer, status, body in got)
    print(f"spread, 50 concurrent observes: {dict(outcome)}")
    generic = [peer for peer, status, body in got if status == 404 and body == GENERIC_404]
    assert len(generic) == 25 and set(generic) == {f"[::1]:{port}"}
    assert {peer for peer, status, _ in got if status == 200} == {f"127.0.0.1:{port}"}
    # The client of seed 004's harness (the first address only) sees nothing.
    first = asyncio.run(observe_50(real.url, Spreader.for_url(url, {NAME: ["127.0.0.1", "::1"]}, "first")))
    assert Counter((peer, status) for peer, status, _ in first) == {(f"127.0.0.1:{port}", 200): 50}

    servers.stop(stale)  # the clean twin: the same build on ::1
    twin(servers, real, "::1", port, "")
    findings, median = timed_preflight(url, both)
    print(f"preflight, reference target + clean twin: median {median * 1000:.0f} ms")
    assert findings == [] and median < 1.0
    got = asyncio.run(observe_50(real.url, Spreader.for_url(url, both)))
    assert Counter(status for _, status, _ in got) == {200: 50}
    assert Counter(peer for peer, _, _ in got) == {f"[::1]:{port}": 25, f"127.0.0.1:{port}": 25}


@pytest.mark.parametrize("bugs, split", [("stale-build", True), ("", False)])
def test_stale_build_sharing_the_port_through_so_reuseport(real, servers, port, bugs, split):
    servers.start("127.0.0.1", port, [sys.executable, SERVE, "127.0.0.1", str(port), "reference", "--reuse-port"],
                  env={**real.env, "SESSIONSTORM_TARGET_BUGS": ""})
    servers.start("127.0.0.1", port, [sys.executable, SERVE, "127.0.0.1", str(port), "reference", "--reuse-port"],
                  env={**real.env, "SESSIONSTORM_TARGET_BUGS": bugs})
    # 16 connections: all on one of two listeners with probability 2**-15
    findings = preflight(f"http://127.0.0.1:{port}", session_path=OBSERVE, connections=16)
    # Under load the kernel spreads connections whatever the client does: even "first" meets
    # both processes, and the peer (one address) cannot tell them apart -- the body can.
    got = asyncio.run(observe_50(f"http://127.0.0.1:{port}", Spreader.for_url(
        f"http://{NAME}:{port}", {NAME: ["127.0.0.1"]}, "first")))
    generic = sum(status == 404 and body == GENERIC_404 for _, status, body in got)
    print(f"\nSO_REUSEPORT {bugs or 'clean'}: {generic} of 50 observes got the generic 404; "
          f"peers { {peer for peer, _, _ in got} }")
    assert {peer for peer, _, _ in got} == {f"127.0.0.1:{port}"}
    if not split:
        assert findings == [] and generic == 0
        return
    assert 0 < generic < 50
    assert [f["code"] for f in findings] == ["SPLIT_ENDPOINT"]
    seen = findings[0]["addresses"][f"127.0.0.1:{port}"]
    print(f"\nSO_REUSEPORT, 16 connections: {seen}")
    assert set(seen) == {"A", "B"}
    assert "session_not_found" in findings[0]["differs"]
