"""preflight() against real servers (serve.py's mini apps): a new build and an old one
without the observe route behind one name, or sharing one port; each beside its clean twin."""
from __future__ import annotations

import statistics
import time

from sessionstorm.endpoints import fingerprint, preflight, resolve

from .conftest import NAME, needs_ipv6

BOTH = {NAME: ["::1", "127.0.0.1"]}
OBSERVE = "/sessions/{session_id}/observe"  # GET: 405 where the route exists, the generic 404 where not


@needs_ipv6
def test_old_build_on_the_other_family_is_a_split_naming_both_addresses(servers, port):
    servers.mini("127.0.0.1", port, "new")
    servers.mini("::1", port, "old")
    findings = preflight(f"http://{NAME}:{port}", BOTH, session_path=OBSERVE)
    assert [f["code"] for f in findings] == ["SPLIT_ENDPOINT"]
    f = findings[0]
    assert f["severity"] == "error"
    assert set(f["addresses"]) == {f"[::1]:{port}", f"127.0.0.1:{port}"}
    assert f["addresses"][f"[::1]:{port}"] != f["addresses"][f"127.0.0.1:{port}"]
    assert set(f["differs"]) == {"session_not_found", "openapi"}
    assert f"[::1]:{port}" in f["detail"] and f"127.0.0.1:{port}" in f["detail"]
    assert f"ss -ltnp 'sport = :{port}'" in f["fix"] and f"lsof -i :{port}" in f["fix"]
    old = [v for v in f["variants"].values() if v["session_not_found"]["status"] == 404]
    assert len(old) == 1 and old[0]["session_not_found"]["excerpt"] == '{"detail":"Not Found"}'


@needs_ipv6
def test_clean_twin_same_build_on_both_families(servers, port):
    servers.mini("127.0.0.1", port, "new")
    servers.mini("::1", port, "new")
    assert preflight(f"http://{NAME}:{port}", BOTH, session_path=OBSERVE) == []


@needs_ipv6
def test_an_address_nobody_listens_on_is_not_a_split(servers, port):
    servers.mini("127.0.0.1", port, "new")  # ::1 refuses: clients fall back to 127.0.0.1
    assert preflight(f"http://{NAME}:{port}", BOTH, session_path=OBSERVE) == []
    fps = fingerprint(f"http://{NAME}:{port}", resolve(f"http://{NAME}:{port}", BOTH)[0], connections=2)
    assert all("ConnectError" in fp["error"] for fp in fps)


def test_two_processes_sharing_the_port_through_so_reuseport(servers, port):
    servers.mini("127.0.0.1", port, "new", reuse_port=True)
    servers.mini("127.0.0.1", port, "old", reuse_port=True)
    findings = preflight(f"http://127.0.0.1:{port}", session_path=OBSERVE, connections=16)
    assert [f["code"] for f in findings] == ["SPLIT_ENDPOINT"]
    seen = findings[0]["addresses"][f"127.0.0.1:{port}"]  # one address, two servers behind it
    assert set(seen) == {"A", "B"} and sum(seen.values()) == 16
    assert "openapi" in findings[0]["differs"]


def test_clean_twin_two_processes_of_one_build_sharing_the_port(servers, port):
    servers.mini("127.0.0.1", port, "new", reuse_port=True)
    servers.mini("127.0.0.1", port, "new", reuse_port=True)
    assert preflight(f"http://127.0.0.1:{port}", session_path=OBSERVE, connections=16) == []


@needs_ipv6
def test_preflight_is_fast(servers, port):
    servers.mini("127.0.0.1", port, "new")
    servers.mini("::1", port, "old")
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        assert preflight(f"http://{NAME}:{port}", BOTH, session_path=OBSERVE)
        times.append(time.perf_counter() - t0)
    print(f"preflight, 2 addresses x 8 connections, mini apps: median {statistics.median(times) * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
    assert statistics.median(times) < 1.0
