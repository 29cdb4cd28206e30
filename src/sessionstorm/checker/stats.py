"""Run statistics (latency, throughput, error rate) and the thresholds judged on them."""
from __future__ import annotations

from array import array
from typing import Any

from sessionstorm.checker.base import Checker, Report

THRESHOLD_KEYS = {  # name -> (stat it reads, True when the stat must stay at or below it)
    "error_rate": ("error_rate", True),
    "p50_ms": ("p50", True),
    "p95_ms": ("p95", True),
    "p99_ms": ("p99", True),
    "session_reuse_ratio": ("session_reuse_ratio", False),
}


class Stats(Checker):
    name = "stats"

    def __init__(self) -> None:
        self.latency = array("d")
        self.outcomes = {"ok": 0, "fail": 0, "info": 0}
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
        # what min() and max() would keep, without their calls
        first = self.first
        if first is None or t0 < first:
            self.first = t0
        last = self.last
        if last is None or t1 > last:
            self.last = t1

    def finish(self, report: Report) -> bool | None:
        return True

    def summary(self, reuse_ratio: float | None) -> dict[str, Any]:
        lat = sorted(self.latency)
        pct = (lambda p: round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 3)) if lat else (lambda p: None)
        decided = self.outcomes["ok"] + self.outcomes["fail"]
        duration = (self.last - self.first) if self.first is not None and self.last is not None else 0.0
        total = sum(self.outcomes.values())
        return {"latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": round(lat[-1], 3) if lat else None,
                               "samples": len(lat)},
                "throughput_rps": round(total / duration, 2) if duration > 0 else None,
                "error_rate": round(self.outcomes["fail"] / decided, 5) if decided else None,
                "session_reuse_ratio": reuse_ratio, "duration_s": round(duration, 3)}


def judge_thresholds(stats: dict[str, Any], thresholds: dict[str, float], report: Report) -> bool:
    ok = True
    flat = {**stats, **(stats.get("latency_ms") or {})}
    for name, limit in thresholds.items():
        if name not in THRESHOLD_KEYS or limit is None:
            continue
        key, at_most = THRESHOLD_KEYS[name]
        value = flat.get(key)
        if value is None:
            continue
        if (value > limit) if at_most else (value < limit):
            ok = False
            report("THRESHOLD_BREACHED", {"ops": [], "keys": [], "sessions": [], "times": [], "threshold": name,
                                          "value": value, "limit": limit,
                                          "detail": f"{name}: {value} {'>' if at_most else '<'} {limit}"})
    return ok
