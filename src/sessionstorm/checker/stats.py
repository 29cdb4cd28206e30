"""Run statistics (latency, throughput, error rate) and the thresholds judged on them."""
from __future__ import annotations

from array import array
from typing import Any

from sessionstorm.checker.base import Checker, Report

THRESHOLD_KEYS = {  # name -> (stat it reads, True when the stat must stay at or below it)
    "error_rate": ("error_rate", True),
    "info_rate": ("info_rate", True),
    "p50_ms": ("p50", True),
    "p95_ms": ("p95", True),
    "p99_ms": ("p99", True),
    "ttft_p95_ms": ("ttft_p95", True),
    "session_reuse_ratio": ("session_reuse_ratio", False),
}
# What CLEAN needs when neither the profile nor the command line says otherwise.
DEFAULT_THRESHOLDS = {"error_rate": 0.01, "info_rate": 0.01}
# Breaching these means "could not tell", not "broken": too many outcomes are unknown.
UNKNOWN_WHEN_BREACHED = frozenset({"info_rate"})


class Stats(Checker):
    name = "stats"

    def __init__(self) -> None:
        self.latency = array("d")
        self.ttft = array("d")
        self.outcomes = {"ok": 0, "fail": 0, "info": 0}
        self.apart_outcomes = {"fail": 0, "info": 0}  # failures inside fault windows (checker.faults)
        self.first: float | None = None
        self.last: float | None = None

    def op(self, op: dict[str, Any]) -> None:
        outcome = op.get("outcome", "info")
        outcomes = self.outcomes
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        t0, t1 = op.get("invoke_wall"), op.get("complete_wall")
        if t0 is None or t1 is None:
            return
        if outcome != "info":
            self.latency.append((t1 - t0) * 1000)
            ttft = op.get("ttft")
            if ttft is not None:
                self.ttft.append(ttft * 1000)
        # what min() and max() would keep, without their calls
        first = self.first
        if first is None or t0 < first:
            self.first = t0
        last = self.last
        if last is None or t1 > last:
            self.last = t1

    def apart(self, op: dict[str, Any]) -> None:
        """A failure inside a fault window: in the totals, not in the error and unknown rates."""
        outcome = op.get("outcome", "info")
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.apart_outcomes[outcome] = self.apart_outcomes.get(outcome, 0) + 1

    def finish(self, report: Report) -> bool | None:
        return True

    def summary(self, reuse_ratio: float | None) -> dict[str, Any]:
        lat, ttft = sorted(self.latency), sorted(self.ttft)
        duration = (self.last - self.first) if self.first is not None and self.last is not None else 0.0
        total = sum(self.outcomes.values())
        apart = sum(self.apart_outcomes.values())
        judged = total - apart  # failures inside fault windows are availability, judged by checker.faults
        undecided = judged - self.outcomes["ok"]
        return {"latency_ms": {"p50": _pct(lat, 50), "p95": _pct(lat, 95), "p99": _pct(lat, 99),
                               "max": round(lat[-1], 3) if lat else None, "samples": len(lat)},
                "ttft_ms": {"p50": _pct(ttft, 50), "p95": _pct(ttft, 95), "samples": len(ttft)},
                "throughput_rps": round(total / duration, 2) if duration > 0 else None,
                # every operation not verified ok counts: a reply that never came is no success
                "error_rate": round(undecided / judged, 5) if judged else None,
                "info_rate": round((self.outcomes["info"] - self.apart_outcomes.get("info", 0)) / judged, 5) if judged else None,
                "in_fault_windows": dict(self.apart_outcomes) if apart else None,
                "session_reuse_ratio": reuse_ratio, "duration_s": round(duration, 3)}


def _pct(values: list[float], p: float) -> float | None:
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3) if values else None


def judge_thresholds(stats: dict[str, Any], thresholds: dict[str, float], report: Report
                     ) -> tuple[bool | None, list[dict[str, Any]]]:
    """Each threshold as a row with its measured value; the verdict: False on a breach,
    None when only the unknown rate is breached, True when every measured one holds."""
    verdict: bool | None = True
    rows = []
    flat = {**stats, **(stats.get("latency_ms") or {}),
            "ttft_p95": (stats.get("ttft_ms") or {}).get("p95")}
    for name, limit in thresholds.items():
        if name not in THRESHOLD_KEYS or limit is None:
            continue
        key, at_most = THRESHOLD_KEYS[name]
        value = flat.get(key)
        held = None if value is None else ((value <= limit) if at_most else (value >= limit))
        rows.append({"name": name, "limit": limit, "value": value, "held": held,
                     "rule": f"{'<=' if at_most else '>='} {limit:g}"})
        if held is not False:
            continue
        if name in UNKNOWN_WHEN_BREACHED:
            verdict = None if verdict is True else verdict
            continue
        verdict = False
        report("THRESHOLD_BREACHED", {"ops": [], "keys": [], "sessions": [], "times": [], "threshold": name,
                                      "value": value, "limit": limit,
                                      "detail": f"{name}: {value} {'>' if at_most else '<'} {limit}"})
    return verdict, rows
