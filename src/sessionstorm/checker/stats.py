"""Run statistics (latency, throughput, error rate) and the thresholds judged on them."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionstorm.checker.base import Checker, Report

if TYPE_CHECKING:
    from sessionstorm.columns import Columns

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
    """Outcomes, latency and TTFT percentiles, throughput: SQL over every op (view ``o``).

    Failures inside fault windows (``excused``) count in the totals, apart from the rates."""

    name = "stats"

    def __init__(self) -> None:
        self.outcomes = {"ok": 0, "fail": 0, "info": 0}
        self.apart_outcomes = {"fail": 0, "info": 0}  # failures inside fault windows (checker.faults)
        self.latency: dict[str, Any] = {"p50": None, "p95": None, "p99": None, "max": None, "samples": 0}
        self.ttft: dict[str, Any] = {"p50": None, "p95": None, "samples": 0}
        self.first: float | None = None
        self.last: float | None = None

    def scan(self, cols: Columns) -> None:
        timed = "NOT excused AND invoke_wall IS NOT NULL AND complete_wall IS NOT NULL"
        firsts, lasts = [], []
        for outcome, excused, n, first, last in cols.con.execute(
                f"SELECT coalesce(outcome, 'info'), excused, count(*), min(invoke_wall) FILTER (WHERE {timed}), "
                f"max(complete_wall) FILTER (WHERE {timed}) FROM o GROUP BY ALL ORDER BY min(seq)").fetchall():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n
            if excused:
                self.apart_outcomes[outcome] = self.apart_outcomes.get(outcome, 0) + n
            firsts += [first] if first is not None else []
            lasts += [last] if last is not None else []
        self.first, self.last = min(firsts, default=None), max(lasts, default=None)  # of the timed ops
        decided = f"{timed} AND coalesce(outcome, 'info') <> 'info'"
        self.latency = _percentiles(cols, "(complete_wall - invoke_wall) * 1000", decided, (50, 95, 99))
        self.ttft = _percentiles(cols, "ttft * 1000", f"{decided} AND ttft IS NOT NULL", (50, 95))
        del self.ttft["max"]

    def finish(self, report: Report) -> bool | None:
        return True

    def summary(self, reuse_ratio: float | None) -> dict[str, Any]:
        duration = (self.last - self.first) if self.first is not None and self.last is not None else 0.0
        total = sum(self.outcomes.values())
        apart = sum(self.apart_outcomes.values())
        judged = total - apart  # failures inside fault windows are availability, judged by checker.faults
        undecided = judged - self.outcomes["ok"]
        return {"latency_ms": self.latency, "ttft_ms": self.ttft,
                "throughput_rps": round(total / duration, 2) if duration > 0 else None,
                # every operation not verified ok counts: a reply that never came is no success
                "error_rate": round(undecided / judged, 5) if judged else None,
                "info_rate": round((self.outcomes["info"] - self.apart_outcomes.get("info", 0)) / judged, 5) if judged else None,
                "in_fault_windows": dict(self.apart_outcomes) if apart else None,
                "session_reuse_ratio": reuse_ratio, "duration_s": round(duration, 3)}


def _percentiles(cols: Columns, value: str, where: str, ps: tuple[int, ...]) -> dict[str, Any]:
    """Exact percentiles of ``value`` over the ops ``where``: the value at index min(n - 1, int(p / 100 * n)) of the
    sorted values (as ever), plus the max and the number of samples. One query: the values ranked, with their count."""
    at = " OR ".join(f"r = least(n - 1, floor({p / 100!r}::DOUBLE * n)::BIGINT)" for p in ps)
    got = cols.con.execute(f"SELECT n, r, v FROM (SELECT v, row_number() OVER (ORDER BY v) - 1 AS r, count(*) OVER () AS n "
                           f"FROM (SELECT {value} AS v FROM o WHERE {where})) WHERE r = n - 1 OR {at}").fetchall()
    n = got[0][0] if got else 0
    out: dict[str, Any] = {f"p{p}": None for p in ps}
    if n:
        by_rank = {r: v for _, r, v in got}
        out = {f"p{p}": round(by_rank[min(n - 1, int(p / 100 * n))], 3) for p in ps}
        out["max"] = round(by_rank[n - 1], 3)
    else:
        out["max"] = None
    out["samples"] = n
    return out


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
