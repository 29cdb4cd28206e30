"""Faults as a feature: the clean target survives every fault with zero safety findings and
a measured recovery time, and the two bugs that only faults reveal are caught.

Each test runs the ``steady`` scenario (a small burst of every flavor every 250 ms) with a
fault schedule, on a stack of this module's own (so a restarted PostgreSQL never surprises
another test's target) and a fresh target per test. Failures inside a fault window plus the
grace are availability (counted apart, with the recovery time); the verdict judges safety
always. Each bug test has its clean twin: the same schedule against the clean target, which
must be CLEAN, so what the bug test catches is the bug, not the fault.

The recovery time per fault and operation kind of each clean run is appended to
``reports/regression/fault-recovery.jsonl``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionstorm.stack.launch import RunningTarget, launch, provider_args

REPORTS = Path(os.environ.get("SESSIONSTORM_REPORTS", Path(__file__).resolve().parent.parent / "reports")) / "regression"

SECONDS = 6           # steady load per run: fault at 2 s, its end and recovery well inside
AT = 2                # every fault starts 2 s in
GRACE_S = 4.0         # [thresholds] recovery_s for these runs: failures after it are not excused
# action:component -> the spec (durations short: the run needs time after the grace)
CLEAN_FAULTS = [
    "kill:target@2+1", "restart:target@2", "pause:target@2+1", "drop:target@2+1",
    "kill:postgres@2+1", "restart:postgres@2", "pause:postgres@2+1",
    "kill:redis@2+1", "restart:redis@2", "pause:redis@2+1",
    "kill:provider@2+1", "restart:provider@2", "pause:provider@2+1",
    "error:provider@2+1", "latency:provider@2+1,latency=800ms",
]
SAFETY = {"CROSSTALK", "WRONG_MODEL", "REQUEST_ID_MISMATCH", "STREAM_INTERLEAVED", "DUPLICATE_ACTIVE_SESSION",
          "CONTEXT_LOSS", "SPURIOUS_NOT_FOUND", "LOST_WRITE", "INVARIANT_VIOLATED"}


def _stack(backend: str | None, args: list[str] | None = None) -> Iterator[Any]:
    from sessionstorm.stack import Stack

    with Stack(backend, provider_args=args) as stack:
        yield stack


@pytest.fixture(scope="module")
def fault_stack(request: pytest.FixtureRequest, is_reference: bool) -> Iterator[Any]:
    """This module's own stack, on the suite's backend (--sessionstorm-backend, else
    SESSIONSTORM_BACKEND: `make test` runs the suite on embedded, then on docker): faults act
    on it alone."""
    if not is_reference:
        pytest.skip("fault tests launch the reference target on a stack of their own")
    yield from _stack(request.config.getoption("--sessionstorm-backend"),
                      provider_args(request.getfixturevalue("profile")))  # its [provider] table


@pytest.fixture
def fresh_target(profile: Any) -> Iterator[Callable[..., RunningTarget]]:
    """A new reference target on the given stack (bug flags optional), stopped after the test."""
    started: list[RunningTarget] = []

    def start(stack: Any, bugs: str = "") -> RunningTarget:
        t = launch(profile, stack, vars={"bugs": bugs}, name=(bugs or "clean").replace(",", "+"))
        started.append(t)
        return t

    yield start
    for t in started:
        t.stop()


def _run(run_checked: Callable[..., dict[str, Any]], target: RunningTarget, stack: Any, spec: str,
         seconds: int = SECONDS) -> dict[str, Any]:
    return run_checked("steady", target, faults=(spec,), fault_stack=stack, thresholds={"recovery_s": GRACE_S},
                       seconds=seconds)


def _assert_clean_survives(results: dict[str, Any], spec: str, backend: str) -> None:
    assert results["faults"], f"no fault was recorded\n{results['summary']}"
    fault = results["faults"][0]
    assert fault["applied"] is True and fault["start"] and fault["end"], f"{spec} not applied: {fault}"
    codes = {a["code"] for a in results["anomalies"]}
    assert not codes & SAFETY, f"{spec}: safety findings against the clean target\n{results['summary']}"
    assert results["valid"] is True, f"{spec}: the clean target is not CLEAN\n{results['summary']}"
    # every kind the load ran after the fault has a verified ok after it: a measured recovery time
    kinds = {"chat", "message", "observe", "read_session", "create_session"}
    assert kinds <= set(fault["recovery_s"]), f"{spec}: recovery not measured for {kinds - set(fault['recovery_s'])}"
    with open(REPORTS / "fault-recovery.jsonl", "a") as f:
        f.write(json.dumps({"backend": backend, "fault": spec, "recovery_s": fault["recovery_s"],
                            "max_s": fault["recovery_max_s"], "window_s": round(fault["end"] - fault["start"], 3),
                            "excused": fault["excused"], "run": results["where"]}) + "\n")


@pytest.mark.parametrize("spec", CLEAN_FAULTS)
def test_clean_target_survives(spec, fault_stack, fresh_target, run_checked):
    results = _run(run_checked, fresh_target(fault_stack), fault_stack, spec)
    _assert_clean_survives(results, spec, fault_stack.backend_name)


@pytest.mark.parametrize(("bugs", "spec", "code"), [
    ("no-db-reconnect", "restart:postgres@2", "NOT_RECOVERED"),
    ("redis-state-loss", "restart:redis@2", "LOST_WRITE"),
])
def test_fault_reveals_bug(bugs, spec, code, fault_stack, fresh_target, run_checked):
    # long enough to see past the grace: fault end (~2 s) + GRACE_S + a few ticks
    found = _run(run_checked, fresh_target(fault_stack, bugs), fault_stack, spec, seconds=10)
    assert found["faults"][0]["applied"] is True, found["faults"]
    codes = {a["code"]: a for a in found["anomalies"]}
    assert code in codes, f"{bugs} under {spec}: {code} not found\n{found['summary']}"
    ev = codes[code]["evidence"][0]
    assert ev["ops"], f"{code} without the operations as evidence: {ev}"
    if code == "NOT_RECOVERED":
        assert ev["fault"] == spec and ev["failed_after_grace"] > 0, ev
    # the clean twin: the same fault at the same time, nothing found
    twin = _run(run_checked, fresh_target(fault_stack), fault_stack, spec, seconds=10)
    assert twin["valid"] is True and not twin["anomalies"], (
        f"the clean twin of {bugs} under {spec} is not clean: the fault alone raises alarms\n{twin['summary']}")


def test_bug_is_invisible_without_faults(fault_stack, fresh_target, run_checked):
    """Only faults reveal them: without one, both bugs pass as clean."""
    target = fresh_target(fault_stack, "no-db-reconnect,redis-state-loss")
    results = run_checked("steady", target, seconds=3)
    assert results["valid"] is True and not results["anomalies"], results["summary"]
