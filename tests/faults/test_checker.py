"""Verdicts relative to faults, over histories written as the nemesis and the drivers write them."""
from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from sessionstorm.canary import canary_for, new_op_id
from sessionstorm.checker import check_run
from sessionstorm.history import HistoryWriter
from sessionstorm.rundir import RunDir

T0 = 1_000.0


def op(kind: str, at: float, outcome: str = "ok", dur: float = 0.05, **fields: Any) -> dict[str, Any]:
    oid = new_op_id()
    c = canary_for(oid)
    rec = {"id": oid, "kind": kind, "flavor": "gateway", "outcome": outcome, "status": 200 if outcome == "ok" else 502,
           "key": "fp_k", "invoke_wall": T0 + at, "complete_wall": T0 + at + dur, "canaries_sent": [c],
           "canaries_seen": [c] if outcome == "ok" else None, "model_asked": "m", "model_served": "m",
           "session_seen": "s1", "reply_excerpt": "x", "error": None if outcome == "ok" else "UPSTREAM_UNAVAILABLE"}
    rec.update(fields)
    return rec


def fault(spec: str, phase: str, at: float, applied: bool = True, error: str | None = None) -> dict[str, Any]:
    action, rest = spec.split(":", 1)
    return {"type": "event", "kind": "fault", "process": "h-1-nemesis", "wall": T0 + at, "mono": at,
            "data": {"id": spec, "spec": spec, "action": action, "component": rest.split("@")[0], "phase": phase,
                     "applied": applied, "error": error}}


@pytest.fixture
def run_with(tmp_path):
    def write(ops: list[dict[str, Any]], faults: list[dict[str, Any]], recovery_s: float = 2.0) -> dict[str, Any]:
        run = RunDir.create("unit", root=tmp_path)
        run.write_json("run.json", {"thresholds": {"recovery_s": recovery_s}})
        with HistoryWriter(run.history_path("h-1-driver"), process="h-1-driver") as w:
            for o in ops:
                w.op(**o)
        path = run.history_path("h-1-nemesis")
        path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in faults))
        return check_run(run)
    return write


def steady(kind: str, start: float, end: float, fail_between: tuple[float, float] = (0, 0)) -> list[dict[str, Any]]:
    out, t = [], start
    while t < end:
        failed = fail_between[0] <= t < fail_between[1]
        out.append(op(kind, t, "fail" if failed else "ok", status=502 if failed else 200))
        t += 0.25
    return out


def test_failures_inside_the_window_are_availability_not_errors(run_with):
    ops = steady("chat", 0, 10, fail_between=(3, 4.5))          # down from 3 s to 4.5 s
    r = run_with(ops, [fault("kill:target@3+1", "start", 3.0), fault("kill:target@3+1", "end", 4.4)])
    assert r["valid"] is True, r["reasons"]
    assert r["anomalies"] == []                                   # no SERVER_ERROR, no threshold breach
    assert r["stats"]["error_rate"] == 0.0 and r["stats"]["in_fault_windows"]["fail"] == 6
    assert r["outcomes"]["fail"] == 6                             # still in the totals
    f = r["faults"][0]
    assert f["excused"] == {"fail": 6} and f["recovery_s"]["chat"] == pytest.approx(0.15, abs=0.01)


def test_the_same_failures_without_a_fault_are_findings(run_with):
    r = run_with(steady("chat", 0, 10, fail_between=(3, 4.5)), [])
    assert r["valid"] is False
    assert {"SERVER_ERROR", "THRESHOLD_BREACHED"} <= {a["code"] for a in r["anomalies"]}


def test_a_service_still_failing_after_the_grace_is_not_recovered(run_with):
    ops = steady("chat", 0, 10, fail_between=(3, 10)) + steady("observe", 0, 10)
    r = run_with(ops, [fault("restart:postgres@3", "start", 3.0), fault("restart:postgres@3", "end", 3.5)])
    assert r["valid"] is False
    nr = next(a for a in r["anomalies"] if a["code"] == "NOT_RECOVERED")
    ev = nr["evidence"][0]
    assert ev["kind"] == "chat" and ev["fault"] == "restart:postgres@3" and ev["recovery_s"] is None
    assert ev["failed_after_grace"] == len([o for o in ops if o["kind"] == "chat" and o["invoke_wall"] > T0 + 5.5])
    assert len(ev["ops"]) == 3 and ev["times"][0][0] > T0 + 5.5   # the first failures after the grace, named
    assert "observe" in r["faults"][0]["recovery_s"]              # the kind that recovered has its time


def test_a_slow_recovery_inside_the_grace_is_fine(run_with):
    ops = steady("chat", 0, 10, fail_between=(3, 5))
    r = run_with(ops, [fault("kill:redis@3+1", "start", 3.0), fault("kill:redis@3+1", "end", 4.0)], recovery_s=2.0)
    assert r["valid"] is True, r["anomalies"]
    assert r["faults"][0]["recovery_s"]["chat"] == pytest.approx(1.05, abs=0.01)


def test_a_fault_that_was_not_applied_makes_the_run_unknown(run_with):
    r = run_with(steady("chat", 0, 5), [fault("kill:target@1+1", "start", 1.0, applied=False, error="no control")])
    assert r["valid"] == "unknown" and any("could not be applied" in x for x in r["reasons"])
    r = run_with(steady("chat", 0, 5), [fault("restart:redis@30", "skipped", 5.0, applied=False,
                                              error="the run ended before its start time")])
    assert r["valid"] == "unknown"


def test_safety_findings_count_inside_fault_windows(run_with):
    victim = op("chat", 3.2)
    victim["canaries_seen"] = [canary_for(new_op_id())]            # another request's answer, mid-fault
    ops = steady("chat", 0, 3) + [victim] + steady("chat", 4.5, 8)
    r = run_with(ops, [fault("error:provider@3+1", "start", 3.0), fault("error:provider@3+1", "end", 4.0)])
    assert r["valid"] is False and "CROSSTALK" in {a["code"] for a in r["anomalies"]}


def test_snapshots_that_fail_while_the_database_is_down_are_excused(tmp_path):
    run = RunDir.create("unit", root=tmp_path)
    with HistoryWriter(run.history_path("h-1-driver"), process="h-1-driver") as w:
        for o in steady("chat", 0, 2):
            w.op(**o)
        w.event("snapshot", invariant="one_active", sql="select 1", rows=None, error="connection refused", when="during")
    now = time.time()  # the snapshot event's wall is the writer's clock
    run.history_path("h-1-nemesis").write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in [
        {**fault("kill:postgres@0+1", "start", 0), "wall": now - 5},
        {**fault("kill:postgres@0+1", "end", 0), "wall": now + 5}]))
    r = check_run(run)
    assert r["checkers"]["invariants"]["valid"] is True and r["faults"][0]["excused"]["snapshot"] == 1
