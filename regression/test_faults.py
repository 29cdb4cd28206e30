"""Faults as a feature: the clean target survives every fault with zero safety findings and
a measured recovery time, and the two bugs that only faults reveal are caught.

Each test runs the ``steady`` scenario (a small burst of every flavor every 250 ms) with one
fault, on the worker's stack (`suite_stack`; the worker runs one test at a time, and every
target that lived through a fault is stopped before a test of another module could reuse
it). Fault times count from the moment every operation kind has a verified ``ok`` (the
run's fault gate, see `recovered`): preparing the load takes 0.3 s on an idle machine and
1.4-2.4 s beside 4 CPU hogs, and a fault that lands in it tests nothing. The load ends once
the fault is over and every kind has a verified ``ok`` after it (or, where a bug must show
as not recovering, once the grace is past), within MAX_SECONDS: a slow restart on a busy
machine lengthens the run instead of failing it. Failures inside a fault window plus the
grace are availability (counted apart, with the recovery time); the verdict judges safety
always. Each bug test has its clean twin: the same schedule against the clean target, ended
by the same rule, which must be CLEAN, so what the bug test catches is the bug, not the fault.

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
from conftest import stop_all

from sessionstorm.stack.launch import RunningTarget, launch

REPORTS = Path(os.environ.get("SESSIONSTORM_REPORTS", Path(__file__).resolve().parent.parent / "reports")) / "regression"

MAX_SECONDS = 30      # the bound on a run's load; it ends as soon as it has what it needs
GRACE_S = 2.5         # [thresholds] recovery_s: the clean target recovers in 0.1-0.4 s (see the jsonl)
# every fault a tick (0.25 s) after the gate opens; windows half a second
CLEAN_FAULTS = [
    "kill:target@0.25+0.5", "restart:target@0.25", "pause:target@0.25+0.5", "drop:target@0.25+0.5",
    "kill:postgres@0.25+0.5", "restart:postgres@0.25", "pause:postgres@0.25+0.5",
    "kill:redis@0.25+0.5", "restart:redis@0.25", "pause:redis@0.25+0.5",
    "kill:provider@0.25+0.5", "restart:provider@0.25", "pause:provider@0.25+0.5",
    "error:provider@0.25+0.5", "latency:provider@0.25+0.5,latency=800ms",
]
SAFETY = {"CROSSTALK", "WRONG_MODEL", "REQUEST_ID_MISMATCH", "STREAM_INTERLEAVED", "DUPLICATE_ACTIVE_SESSION",
          "CONTEXT_LOSS", "SPURIOUS_NOT_FOUND", "LOST_WRITE", "INVARIANT_VIOLATED"}
KINDS = {"chat", "message", "observe", "read_session", "create_session"}  # what steady sends every tick
LOAD = {"users": 2, "sessions": 2}  # 9 requests a tick, every kind on two keys (steady's default: 15)


def _ok_kinds(d: Any, after: float = 0.0) -> set[str]:
    return {op.get("kind") for op in d.ops if op.get("outcome") == "ok" and (op.get("invoke_wall") or 0) > after}


def _ended(run: Any, d: Any) -> float | None:
    """Opens the run's fault gate once every kind has a verified ok (the fault meets a running
    load); then, when every fault is over, the time it ended."""
    if not run.fault_gate.is_set() and KINDS <= _ok_kinds(d):
        run.fault_gate.set()
    return run.nemesis.ended_wall() if run.nemesis is not None else None


def recovered(run: Any, d: Any) -> bool:
    """Every fault is over and every kind has a verified ok invoked after its end."""
    ended = _ended(run, d)
    return ended is not None and KINDS <= _ok_kinds(d, ended)


def past_grace(run: Any, d: Any) -> bool:
    """Every fault is over and every kind has been sent again after the grace: a target that
    never recovers shows it as NOT_RECOVERED (ops, not a clock: a slow tick cannot skip it)."""
    ended = _ended(run, d)
    return ended is not None and KINDS <= {op.get("kind") for op in d.ops
                                           if (op.get("invoke_wall") or 0) > ended + GRACE_S}


@pytest.fixture(scope="module")
def fault_stack(is_reference: bool, suite_stack: Any, target_for: Any) -> Iterator[Any]:
    """The worker's stack: faults act on it. Targets the worker started before are stopped
    (a restarted PostgreSQL would break their connections under a later test), and so are
    those of this module at its end; the clean one, which no fault has touched yet, becomes
    this module's clean target (see FaultTargets) instead of starting another."""
    if not is_reference:
        pytest.skip("fault tests launch the reference target")
    suite_stack.inherited_clean = target_for.drop_all(keep="")
    yield suite_stack


class FaultTargets:
    """The clean target of this module (reused: each test proves it recovered; one that failed
    a test is replaced) and fresh bug targets, all stopped at the module's end."""

    def __init__(self, profile: Any, stack: Any) -> None:
        self.profile, self.stack = profile, stack
        # the worker's clean target, handed over by fault_stack: it is reused as this module's
        # own would be (each test proves it recovered), so it needs no start of its own
        self._clean: RunningTarget | None = getattr(stack, "inherited_clean", None)
        stack.inherited_clean = None
        self.fresh: list[RunningTarget] = []

    def clean(self) -> RunningTarget:
        if self._clean is None:
            self._clean = launch(self.profile, self.stack, vars={"bugs": ""}, name="clean")
        return self._clean

    def discard_clean(self) -> None:
        if self._clean is not None:
            self._clean.stop()
            self._clean = None

    def bug(self, bugs: str) -> RunningTarget:
        t = launch(self.profile, self.stack, vars={"bugs": bugs}, name=bugs.replace(",", "+"))
        self.fresh.append(t)
        return t

    def stop(self) -> None:
        clean, self._clean = self._clean, None
        stop_all([t for t in (clean, *self.fresh) if t is not None])


@pytest.fixture(scope="module")
def targets(fault_stack: Any, profile: Any) -> Iterator[FaultTargets]:
    t = FaultTargets(profile, fault_stack)
    yield t
    t.stop()


def _run(run_checked: Callable[..., dict[str, Any]], target: RunningTarget, stack: Any, spec: str,
         until: Callable[[Any, Any], bool]) -> dict[str, Any]:
    return run_checked("steady", target, faults=(spec,), fault_stack=stack, thresholds={"recovery_s": GRACE_S},
                       until=until, seconds=MAX_SECONDS, **LOAD)


def _assert_clean_survives(results: dict[str, Any], spec: str, backend: str) -> None:
    assert results["faults"], f"no fault was recorded\n{results['summary']}"
    fault = results["faults"][0]
    assert fault["applied"] is True and fault["start"] and fault["end"], f"{spec} not applied: {fault}"
    codes = {a["code"] for a in results["anomalies"]}
    assert not codes & SAFETY, f"{spec}: safety findings against the clean target\n{results['summary']}"
    assert results["valid"] is True, f"{spec}: the clean target is not CLEAN\n{results['summary']}"
    # every kind the load ran after the fault has a verified ok after it: a measured recovery time
    assert KINDS <= set(fault["recovery_s"]), f"{spec}: recovery not measured for {KINDS - set(fault['recovery_s'])}"
    with open(REPORTS / "fault-recovery.jsonl", "a") as f:
        f.write(json.dumps({"backend": backend, "fault": spec, "recovery_s": fault["recovery_s"],
                            "max_s": fault["recovery_max_s"], "window_s": round(fault["end"] - fault["start"], 3),
                            "excused": fault["excused"], "run": results["where"]}) + "\n")


@pytest.mark.parametrize("spec", CLEAN_FAULTS)
def test_clean_target_survives(spec, fault_stack, targets, run_checked):
    try:
        results = _run(run_checked, targets.clean(), fault_stack, spec, recovered)
        _assert_clean_survives(results, spec, fault_stack.backend_name)
    except BaseException:
        targets.discard_clean()  # whatever state it was left in, the next test gets a fresh one
        raise


@pytest.mark.parametrize(("bugs", "spec", "code", "until"), [
    ("no-db-reconnect", "restart:postgres@0.25", "NOT_RECOVERED", past_grace),
    ("redis-state-loss", "restart:redis@0.25", "LOST_WRITE", recovered),
], ids=["no-db-reconnect", "redis-state-loss"])
def test_fault_reveals_bug(bugs, spec, code, until, fault_stack, targets, run_checked):
    found = _run(run_checked, targets.bug(bugs), fault_stack, spec, until)
    assert found["faults"][0]["applied"] is True, found["faults"]
    codes = {a["code"]: a for a in found["anomalies"]}
    assert code in codes, f"{bugs} under {spec}: {code} not found\n{found['summary']}"
    ev = codes[code]["evidence"][0]
    assert ev["ops"], f"{code} without the operations as evidence: {ev}"
    if code == "NOT_RECOVERED":
        assert ev["fault"] == spec and ev["failed_after_grace"] > 0, ev
    # the clean twin: the same fault at the same time, ended by the same rule, nothing found
    try:
        twin = _run(run_checked, targets.clean(), fault_stack, spec, until)
        assert twin["valid"] is True and not twin["anomalies"], (
            f"the clean twin of {bugs} under {spec} is not clean: the fault alone raises alarms\n{twin['summary']}")
    except BaseException:
        targets.discard_clean()
        raise


def test_bug_is_invisible_without_faults(targets, run_checked):
    """Only faults reveal them: without one, both bugs pass as clean."""
    results = run_checked("steady", targets.bug("no-db-reconnect,redis-state-loss"), seconds=1)
    assert results["valid"] is True and not results["anomalies"], results["summary"]
