"""The one-screen summary of a checked run, for terminals and logs."""
from __future__ import annotations

from typing import Any

VERDICT = {True: "CLEAN", False: "ANOMALIES FOUND", "unknown": "UNKNOWN (nothing proves the run clean)"}


def summary_lines(results: dict[str, Any], where: object = None) -> list[str]:
    s = results.get("stats", {})
    lat = s.get("latency_ms") or {}
    out = [f"verdict: {VERDICT.get(results['valid'], results['valid'])}  "
           f"({results['ops']} ops: {results['outcomes']}; p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms)"]
    for a in results["anomalies"]:
        first = next((e for e in a["evidence"] if e), {})
        out.append(f"  {a['code']:<26} x{a['count']:<6} {first.get('detail', '')}"[:200])
    if results.get("interrupted"):
        out.append("  interrupted: the run was stopped early; what completed was checked")
    for reason in results.get("reasons") or ():
        out.append(f"  unknown: {reason}")
    for row in results.get("threshold_rows") or ():
        if row["held"] is False:
            out.append(f"  threshold {row['name']}: {row['value']} breaches {row['rule']}")
    for name, v in results["checkers"].items():
        if v.get("error"):
            out.append(f"  checker {name} crashed (unknown): {v['error'].strip().splitlines()[-1]}")
    if results.get("corrupt_count"):
        out.append(f"  {results['corrupt_count']} corrupt history line(s) skipped")
    if where is not None:
        out.append(f"results: {where}/results.json")
    return out
