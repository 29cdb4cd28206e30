"""The one-screen summary of a checked run, for terminals and logs."""
from __future__ import annotations

from typing import Any

VERDICT = {True: "CLEAN", False: "ANOMALIES FOUND", "unknown": "UNKNOWN (nothing proves the run clean)"}


def summary_lines(results: dict[str, Any], where: object = None) -> list[str]:
    s = results.get("stats", {})
    lat = s.get("latency_ms") or {}
    out = [f"verdict: {VERDICT.get(results['valid'], results['valid'])}  "
           f"({results['ops']} ops: {results['outcomes']}; p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms)"]
    c = results.get("contract") or {}
    if c and (c.get("request_id"), c.get("provider_sessions"), c.get("observe")) != ("forwarded", "one-per-key", "durable"):
        limit = f" (max {c['max_new_sessions_per_key']} new per key in {c['session_window_s']:g} s)" \
            if c.get("max_new_sessions_per_key") else ""
        out.append(f"  contract: request_id {c.get('request_id')}, provider_sessions {c.get('provider_sessions')}{limit}, "
                   f"observe {c.get('observe')}")
    for a in results["anomalies"]:
        first = next((e for e in a["evidence"] if e), {})
        out.append(f"  {a['code']:<26} x{a['count']:<6} {first.get('detail', '')}"[:200])
    for f in results.get("faults") or ():
        out.append(f"  {fault_line(f)}")
    if results.get("stopped_by"):
        out.append(f"  stopped early: {results['stopped_by']}")
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


def fault_line(f: dict[str, Any]) -> str:
    """One fault of the nemesis: applied or not, its window, what failed in it, the recovery."""
    if not f.get("applied"):
        return f"fault {f['spec']}: NOT applied ({'; '.join(f.get('errors') or ()) or 'never started'})"
    window = f"{f['end'] - f['start']:.1f} s" if f.get("start") and f.get("end") else "no end recorded"
    failed = ", ".join(f"{n} {o}" for o, n in sorted((f.get("excused") or {}).items())) or "nothing"
    rec = f"recovered in {f['recovery_max_s']:.2f} s" if f.get("recovery_max_s") is not None else "recovery not observed"
    return (f"fault {f['spec']}: window {window}, failed inside (+{f.get('grace_s', 0):g} s grace): {failed}; "
            f"{rec} (fault end -> first verified ok, slowest kind)")
