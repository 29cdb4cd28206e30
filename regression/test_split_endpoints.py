"""The stale twin of seed 004: an older build of the reference target (no observe route)
answers part of the traffic behind one name. Caught before load (SPLIT_ENDPOINT) and under
load (SPURIOUS_NOT_FOUND from the stale peer); the clean twin (the same build in the same
place) must pass the same test.

Two variants: the stale build on the other loopback family at the same port (``localhost``
pinned to ``::1`` and ``127.0.0.1`` by ``[target] resolve``), and the stale build sharing the
address and port through SO_REUSEPORT. ``localhost`` keeps any lookup on this machine.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import psutil
import pytest

from sessionstorm.history import history_files, iter_records
from sessionstorm.profiles import REFERENCE
from sessionstorm.stack.launch import RunningTarget
from sessionstorm.profile import load_profile

ATTEMPTS = 3  # SO_REUSEPORT hashes connections: 8 probes all on one listener has odds 1/128


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")


@pytest.fixture
def real(sessionstorm_stack, is_reference) -> Iterator:
    if not is_reference:
        pytest.skip("the stale twin is a build of the reference target")
    t = sessionstorm_stack.start_target(["{python}", "-m", "sessionstorm.target", "serve", "--reuse-port"],
                                        env={"SESSIONSTORM_TARGET_BUGS": ""}, name="split")
    yield t
    t.stop()


@pytest.fixture
def twins() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_twin(twins: list[subprocess.Popen], real, host: str, bugs: str) -> None:
    """The target's own serve command on ``host`` and the real one's port, on its database and Redis."""
    port = urlsplit(real.url).port
    p = subprocess.Popen([sys.executable, "-m", "sessionstorm.target", "serve", "--host", host, "--port", str(port),
                          "--bugs", bugs, "--reuse-port"], env={**os.environ, **real.env},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    twins.append(p)
    deadline = time.monotonic() + 60
    while not any(c.status == psutil.CONN_LISTEN for c in psutil.Process(p.pid).net_connections("tcp")):
        assert p.poll() is None and time.monotonic() < deadline, f"the twin on {host}:{port} did not start"
        time.sleep(0.1)


def run_split(real, run_checked, url: str, resolve: dict[str, list[str]]) -> dict:
    profile = load_profile(REFERENCE)
    profile = replace(profile, target=replace(profile.target, base_url=url, resolve=resolve))
    target = RunningTarget(profile, url, real.postgres.dsn, {"admin_token": real.env["SESSIONSTORM_ADMIN_TOKEN"]})
    for _ in range(ATTEMPTS):
        results = run_checked("parallel_observe", target)
        if {"SPLIT_ENDPOINT", "SPURIOUS_NOT_FOUND"} <= {a["code"] for a in results["anomalies"]}:
            break
    return results


def assert_caught(results: dict, stale_peer: str) -> None:
    found = {a["code"]: a for a in results["anomalies"]}
    assert {"SPLIT_ENDPOINT", "SPURIOUS_NOT_FOUND"} <= found.keys(), results["summary"]
    split = found["SPLIT_ENDPOINT"]["evidence"][0]
    assert "ss -ltnp" in split["detail"] and stale_peer in split["addresses"], split
    spurious = found["SPURIOUS_NOT_FOUND"]["evidence"]
    assert {e["peer"] for e in spurious} == {stale_peer} and {e["body"] for e in spurious} == {"generic"}
    ops = [r for r in iter_records(history_files(results["where"])) if r["type"] == "op" and r["kind"] == "observe"]
    assert {o["peer"] for o in ops if o["outcome"] == "ok"} and all(o["status"] in (200, 404) for o in ops)


@needs_ipv6
@pytest.mark.parametrize("stale", [True, False], ids=["stale-twin", "clean-twin"])
def test_a_stale_build_on_the_other_loopback_family(real, twins, run_checked, stale):
    port = urlsplit(real.url).port
    start_twin(twins, real, "::1", "stale-build" if stale else "")
    results = run_split(real, run_checked, f"http://localhost:{port}", {"localhost": ["::1", "127.0.0.1"]})
    if stale:
        assert_caught(results, f"[::1]:{port}")
    else:  # the same build on both: clean, and both addresses really served
        assert results["valid"] is True, results["summary"]
        assert {f"[::1]:{port}", f"127.0.0.1:{port}"} <= set(results["peers"]), results["peers"]


@pytest.mark.parametrize("stale", [True, False], ids=["stale-twin", "clean-twin"])
def test_a_stale_build_sharing_the_port_through_so_reuseport(real, twins, run_checked, stale, sessionstorm_stack):
    if sessionstorm_stack.backend_name != "embedded":
        pytest.skip("SO_REUSEPORT shares a port only between processes of one user; a container's target runs as another")
    port = urlsplit(real.url).port
    start_twin(twins, real, "127.0.0.1", "stale-build" if stale else "")
    results = run_split(real, run_checked, f"http://127.0.0.1:{port}", {})
    if stale:
        assert_caught(results, f"127.0.0.1:{port}")  # one address: the body tells the builds apart
    else:
        assert results["valid"] is True, results["summary"]
