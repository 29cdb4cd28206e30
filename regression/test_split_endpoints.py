"""The stale twin of seed 004: an older build of the reference target (no observe route)
answers part of the traffic behind one name. Caught before load (SPLIT_ENDPOINT) and under
load (SPURIOUS_NOT_FOUND from the stale peer); the clean twin (the same build in the same
place) must pass the same test, for as many attempts as the stale one needed.

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
from conftest import reference_profile

from sessionstorm.stack.process import terminate
from sessionstorm.history import history_files, iter_records
from sessionstorm.stack.launch import RunningTarget

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
    """A clean target whose socket lets a twin share its address and port (SO_REUSEPORT)."""
    if not is_reference:
        pytest.skip("the stale twin is a build of the reference target")
    if sessionstorm_stack.backend_name != "embedded":  # before starting a target it could not use
        pytest.skip("SO_REUSEPORT shares a port only between processes of one user; a container's target runs as another")
    t = sessionstorm_stack.start_target(["{python}", "-m", "sessionstorm.target", "serve", "--reuse-port"],
                                        env={"SESSIONSTORM_TARGET_BUGS": ""}, name="split")
    yield t
    t.stop()


@pytest.fixture
def real_v4(target_for, is_reference):
    """The worker's clean target (on 127.0.0.1 only: ::1 at its port is free for a twin)."""
    if not is_reference:
        pytest.skip("the stale twin is a build of the reference target")
    return target_for("").handle


@pytest.fixture
def twins() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        stop_twin(p)


def stop_twin(p: subprocess.Popen) -> None:
    terminate(p)


def start_twin(twins: list[subprocess.Popen], real, host: str, bugs: str) -> subprocess.Popen:
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
    return p


def split_target(real, url: str, resolve: dict[str, list[str]]) -> RunningTarget:
    profile = reference_profile()
    profile = replace(profile, target=replace(profile.target, base_url=url, resolve=resolve))
    return RunningTarget(profile, url, real.postgres.dsn, {"admin_token": real.env["SESSIONSTORM_ADMIN_TOKEN"]})


def until_caught(run_checked, target: RunningTarget) -> list[dict]:
    """Runs until both findings show, at most ATTEMPTS."""
    runs: list[dict] = []
    for _ in range(ATTEMPTS):
        runs.append(run_checked("parallel_observe", target))
        if {"SPLIT_ENDPOINT", "SPURIOUS_NOT_FOUND"} <= {a["code"] for a in runs[-1]["anomalies"]}:
            break
    return runs


def assert_caught(results: dict, stale_peer: str) -> None:
    found = {a["code"]: a for a in results["anomalies"]}
    assert {"SPLIT_ENDPOINT", "SPURIOUS_NOT_FOUND"} <= found.keys(), results["summary"]
    split = found["SPLIT_ENDPOINT"]["evidence"][0]
    assert "ss -ltnp" in split["detail"] and stale_peer in split["addresses"], split
    spurious = found["SPURIOUS_NOT_FOUND"]["evidence"]
    assert {e["peer"] for e in spurious} == {stale_peer} and {e["body"] for e in spurious} == {"generic"}
    ops = [r for r in iter_records(history_files(results["where"])) if r["type"] == "op" and r["kind"] == "observe"]
    assert {o["peer"] for o in ops if o["outcome"] == "ok"} and all(o["status"] in (200, 404) for o in ops)


def stale_then_clean(real, twins, run_checked, host: str, target: RunningTarget, stale_peer: str) -> list[dict]:
    """The stale twin until caught (its last run must show it), then the clean twin in the same
    place for as many runs, each CLEAN; returns the clean twin's runs."""
    stale = start_twin(twins, real, host, "stale-build")
    caught = until_caught(run_checked, target)
    assert_caught(caught[-1], stale_peer)
    stop_twin(stale)
    start_twin(twins, real, host, "")
    clean = [run_checked("parallel_observe", target) for _ in caught]
    for results in clean:
        assert results["valid"] is True and not results["anomalies"], results["summary"]
    return clean


@needs_ipv6
def test_a_stale_build_on_the_other_loopback_family(real_v4, twins, run_checked):
    port = urlsplit(real_v4.url).port
    target = split_target(real_v4, f"http://localhost:{port}", {"localhost": ["::1", "127.0.0.1"]})
    clean = stale_then_clean(real_v4, twins, run_checked, "::1", target, f"[::1]:{port}")
    # the same build on both: clean, and both addresses really served
    peers = {p for r in clean for p in r["peers"]}
    assert {f"[::1]:{port}", f"127.0.0.1:{port}"} <= peers, peers


def test_a_stale_build_sharing_the_port_through_so_reuseport(real, twins, run_checked):
    port = urlsplit(real.url).port
    # one address: the body tells the builds apart
    stale_then_clean(real, twins, run_checked, "127.0.0.1", split_target(real, f"http://127.0.0.1:{port}", {}),
                     f"127.0.0.1:{port}")
