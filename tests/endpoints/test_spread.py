"""Connections spread round-robin over every address: httpx (SpreadTransport) and
geventhttpclient (Locust's FastHttpUser), measured against two real servers."""
from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from sessionstorm.endpoints import (
    Spreader,
    SpreadTransport,
    peer_of,
    spread_geventhttpclient,
)

from .conftest import NAME, needs_ipv6

BOTH = {NAME: ["::1", "127.0.0.1"]}
FRESH = 20


async def _whoami(spreader: Spreader, port: int) -> list[tuple[str | None, dict]]:
    # no keep-alive: every request opens a fresh connection, as 20 new users would
    transport = SpreadTransport(spreader, limits=httpx.Limits(max_keepalive_connections=0))
    async with httpx.AsyncClient(base_url=f"http://{NAME}:{port}", transport=transport, timeout=5) as c:
        out = []
        for _ in range(FRESH):
            r = await c.get("/whoami")
            out.append((peer_of(r), r.json()))
        return out


@needs_ipv6
def test_httpx_spreads_fresh_connections_and_keeps_the_name(servers, port):
    pids = {str(servers.mini("::1", port, "new").pid): f"[::1]:{port}",
            str(servers.mini("127.0.0.1", port, "new").pid): f"127.0.0.1:{port}"}
    got = asyncio.run(_whoami(Spreader.for_url(f"http://{NAME}:{port}", BOTH), port))
    assert Counter(peer for peer, _ in got) == {f"[::1]:{port}": FRESH // 2, f"127.0.0.1:{port}": FRESH // 2}
    assert all(pids[body["pid"]] == peer for peer, body in got)  # the peer is the process that answered
    assert {body["host"] for _, body in got} == {f"{NAME}:{port}"}  # Host header: the name, not the address
    first = asyncio.run(_whoami(Spreader.for_url(f"http://{NAME}:{port}", BOTH, policy="first"), port))
    assert Counter(peer for peer, _ in first) == {f"[::1]:{port}": FRESH}


@needs_ipv6
def test_spread_falls_back_when_an_address_refuses(servers, port):
    servers.mini("127.0.0.1", port, "new")  # nothing on ::1
    got = asyncio.run(_whoami(Spreader.for_url(f"http://{NAME}:{port}", BOTH), port))
    assert Counter(peer for peer, _ in got) == {f"127.0.0.1:{port}": FRESH}


@needs_ipv6
def test_geventhttpclient_users_spread_over_both_addresses(servers, port):
    """Locust's case: each user has its own pool with one connection; one Spreader for all."""
    import json

    from geventhttpclient.client import HTTPClientPool

    pids = {str(servers.mini("::1", port, "new").pid): "::1", str(servers.mini("127.0.0.1", port, "new").pid): "v4"}
    spreader = Spreader.for_url(f"http://{NAME}:{port}", BOTH)
    hits, hosts = Counter(), set()
    for _ in range(FRESH):  # FRESH users, a pool each, as FastHttpUser makes them
        pool = spread_geventhttpclient(HTTPClientPool(concurrency=1, connection_timeout=5, network_timeout=5), spreader)
        try:
            r = pool.get_client(f"http://{NAME}:{port}/").get("/whoami")
            body = json.loads(r.read())
        finally:
            pool.close()
        hits[pids[body["pid"]]] += 1
        hosts.add(body["host"])
    assert hits == {"::1": FRESH // 2, "v4": FRESH // 2}
    assert hosts == {f"{NAME}:{port}"}


def test_tls_server_name_stays_the_name(servers, port, tmp_path):
    """The certificate is for the name only: verification passes only if the client asked for
    the name (SNI and hostname check), though it connected to an address."""
    import ssl
    import subprocess
    import sys

    from sessionstorm.endpoints import fingerprint

    from .conftest import SERVE

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={NAME}",
                    "-addext", f"subjectAltName=DNS:{NAME}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    servers.start("127.0.0.1", port, [sys.executable, SERVE, "127.0.0.1", str(port), "new",
                                      "--tls", str(cert), str(key)], tls_verify=False)
    spreader = Spreader.for_url(f"https://{NAME}:{port}", {NAME: ["127.0.0.1"]})

    async def get() -> httpx.Response:
        transport = SpreadTransport(spreader, verify=ssl.create_default_context(cafile=str(cert)))
        async with httpx.AsyncClient(base_url=f"https://{NAME}:{port}", transport=transport, timeout=5) as c:
            return await c.get("/whoami")
    r = asyncio.run(get())
    assert r.json()["host"] == f"{NAME}:{port}" and peer_of(r) == f"127.0.0.1:{port}"
    fps = fingerprint(f"https://{NAME}:{port}", spreader.addresses[0], connections=2,
                      verify=ssl.create_default_context(cafile=str(cert)))
    assert [fp["ready"] for fp in fps] == [200, 200] and fps[0] == {**fps[1], "peer": fps[0]["peer"]}
    # with the system CAs the self-signed certificate fails, and the fingerprint says so
    fps = fingerprint(f"https://{NAME}:{port}", spreader.addresses[0], connections=1)
    assert "CERTIFICATE_VERIFY_FAILED" in fps[0]["error"]


@needs_ipv6
def test_locust_fasthttp_sessions_spread(servers, port):
    """The recipe with Locust's own FastHttpSession, in a subprocess (Locust patches for gevent)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    pids = {str(servers.mini("::1", port, "new").pid): "::1", str(servers.mini("127.0.0.1", port, "new").pid): "v4"}
    script = str(Path(__file__).with_name("locust_spread.py"))
    out = subprocess.run([sys.executable, script, f"http://{NAME}:{port}", f"{NAME}=::1,127.0.0.1", str(FRESH)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert Counter(pids[b["pid"]] for b in got) == {"::1": FRESH // 2, "v4": FRESH // 2}
    assert {b["host"] for b in got} == {f"{NAME}:{port}"}
