"""The preflight repeated during a run (`[target] reprobe_s`): a stale build that starts on the
other loopback family while the load runs is found by a later probe (SPLIT_ENDPOINT, "appeared
during the run"); the clean twin (the same build started the same way) is found by none, while
the probes demonstrably ran after it came up and both addresses answered them."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from sessionstorm.driver import run_scenario
from sessionstorm.history import history_files, iter_records
from sessionstorm.profile import load_profile
from sessionstorm.profiles import REFERENCE
from sessionstorm.run import Run
from sessionstorm.stack.launch import RunningTarget

from .conftest import NAME, needs_ipv6
from .test_reference import twin

PROBES_AFTER = 2   # probes that must run once the twin answers, before the run stops
WAIT_S = 90.0      # bound on that wait (a busy machine); the run itself is bounded by it too


def probes(run: Run) -> list[dict]:
    return [r["data"] for r in iter_records(history_files(run.dir.path))
            if r["type"] == "event" and r["kind"] == "preflight"]


@needs_ipv6
@pytest.mark.parametrize("stale", [True, False], ids=["split-appears-later", "clean-twin"])
def test_a_split_that_appears_during_the_run(real, servers, tmp_path, stale):
    port = urlsplit(real.url).port
    url, both = f"http://{NAME}:{port}", {f"[::1]:{port}", f"127.0.0.1:{port}"}
    profile = load_profile(REFERENCE)
    profile = replace(profile, target=replace(profile.target, base_url=url, resolve={NAME: ["::1", "127.0.0.1"]},
                                              reprobe_s=0.5))
    target = RunningTarget(profile, url, real.postgres.dsn, {"admin_token": real.env["SESSIONSTORM_ADMIN_TOKEN"]})
    run = Run("steady", driver="regression", target=target, reports_dir=tmp_path).start()
    stop = threading.Event()
    load = threading.Thread(target=lambda: asyncio.run(
        run_scenario("steady", run.target, run.dir, stop=stop, wire=run.wire, seconds=int(WAIT_S) + 30)))
    load.start()
    try:
        assert probes(run)[0]["findings"] == []  # before load: one server behind the name
        twin(servers, real, "::1", port, "stale-build" if stale else "")
        up = time.time() - run.started  # the twin answers from here on

        def compared() -> list[dict]:  # probes after it came up in which both addresses answered
            return [p for p in probes(run) if p["after_s"] > up and both <= set(p.get("answered") or ())]

        deadline = time.monotonic() + WAIT_S
        while len(compared()) < PROBES_AFTER and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        load.join(timeout=60)
    results = run.finish()
    assert len(compared()) >= PROBES_AFTER, probes(run)
    found = {a["code"]: a for a in results["anomalies"]}
    if stale:
        split = found["SPLIT_ENDPOINT"]["evidence"][0]
        assert split["probes"][0] > 0 and "appeared during the run" in split["detail"], split
        assert both <= set(split["addresses"]), split
        assert results["valid"] is False
    else:  # the same build on both addresses: no split, and both really served the load
        assert "SPLIT_ENDPOINT" not in found, found["SPLIT_ENDPOINT"]
        assert results["valid"] is True, results["reasons"]
