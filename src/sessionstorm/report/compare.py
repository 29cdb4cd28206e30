"""``sessionstorm compare OLD_RUN NEW_RUN``: has the new run regressed against the old one?

A regression is a new anomaly code, a latency percentile grown beyond a ratio (and by
more than a floor in ms, so 2 ms → 4 ms on an idle stub is not one), an error rate
risen beyond a delta, or throughput fallen beyond a fraction. Nightly soaks compare
against the previous night. Thresholds are settings; the defaults tolerate the noise of
two runs of one build on a shared machine.

A percentile is judged only when each run has at least MIN_TAIL samples beyond it (p95
needs 200 samples, p99 1000): below that it is the slowest few operations, and one
slow burst (a warm-up, a neighbour's CPU spike) moves it by 2x between two runs of one
build (measured: 40-sample runs of shared_key varied 1.5-2.3x in p95, 250-sample runs
1.05-1.2x). Such a row says so instead of guessing.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sessionstorm.errors import ConfigError
from sessionstorm.rundir import RunDir

MIN_TAIL = 10  # samples a percentile needs beyond it, in each run, to be judged


@dataclass(frozen=True)
class Limits:
    latency_ratio: float = 1.5      # new/old p50, p95, p99 above this regresses...
    latency_floor_ms: float = 5.0   # ...when also more than this many ms slower
    error_rate_delta: float = 0.01  # new error rate above old + this regresses
    throughput_drop: float = 0.4    # new throughput below old × (1 - this) regresses

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(name.replace("_", "-"), value, "a number ≥ 0", f"pass --{name.replace('_', '-')} 1.5 or similar")


def min_samples(percentile: int) -> int:
    """Samples a run needs for MIN_TAIL of them to lie beyond this percentile."""
    return -(-MIN_TAIL * 100 // (100 - percentile))


def load_results(location: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """A run folder (or its results.json) → (folder, results)."""
    p = Path(location)
    folder = p.parent if p.name == "results.json" else p
    if not (folder / "results.json").is_file():
        raise ConfigError("run", str(location), "a run folder holding results.json",
                          "pass a folder under reports/ (run `sessionstorm check RUN_DIR` first if it was never checked)")
    return folder, RunDir(folder).read_json("results.json")


def compare_runs(old: str | os.PathLike[str], new: str | os.PathLike[str], limits: Limits | None = None) -> dict[str, Any]:
    limits = limits or Limits()
    old_dir, a = load_results(old)
    new_dir, b = load_results(new)
    if a.get("scenario") and b.get("scenario") and a["scenario"] != b["scenario"]:
        raise ConfigError("new run", str(new_dir), f"a run of the old run's scenario {a['scenario']!r}, "
                          f"not {b['scenario']!r}", "compare two runs of one scenario")
    sa, sb = a.get("stats") or {}, b.get("stats") or {}
    la, lb = sa.get("latency_ms") or {}, sb.get("latency_ms") or {}
    rows: list[dict[str, Any]] = []

    def row(metric: str, x: Any, y: Any, change: str, regressed: bool, rule: str, judged: bool = True) -> None:
        rows.append({"metric": metric, "old": x, "new": y, "change": change, "regressed": regressed, "rule": rule,
                     "judged": judged})

    for p in ("p50", "p95", "p99"):
        x, y = la.get(p), lb.get(p)
        if x is None or y is None:
            row(f"latency {p} (ms)", x, y, "n/a", False, "no latency in one run")
            continue
        ratio = y / x if x > 0 else float("inf") if y > 0 else 1.0
        need = min_samples(int(p[1:]))
        few = min(n for n in (la.get("samples"), lb.get("samples"), need) if n is not None)  # older runs: unknown
        if few < need:
            row(f"latency {p} (ms)", x, y, f"×{ratio:.2f}", False,
                f"not judged: {few} samples, {p} needs {need} (a longer run)", judged=False)
            continue
        bad = ratio > limits.latency_ratio and y - x > limits.latency_floor_ms
        row(f"latency {p} (ms)", x, y, f"×{ratio:.2f}", bad,
            f"regresses above ×{limits.latency_ratio} and +{limits.latency_floor_ms} ms")
    x, y = sa.get("error_rate"), sb.get("error_rate")
    if x is not None and y is not None:
        row("error rate", x, y, f"{(y - x) * 100:+.2f} points", y > x + limits.error_rate_delta,
            f"regresses above +{limits.error_rate_delta * 100:.2f} points")
    x, y = sa.get("throughput_rps"), sb.get("throughput_rps")
    if x and y is not None:
        row("throughput (ops/s)", x, y, f"{(y - x) / x * 100:+.1f} %", y < x * (1 - limits.throughput_drop),
            f"regresses below −{limits.throughput_drop * 100:.0f} %")
    # Availability: what the new run verified. A run against a dead target has fast, "clean"
    # numbers; only its verified operations tell.
    x, y = _verified_rate(a), _verified_rate(b)
    if x and y is not None:
        row("verified ops/s", x, y, f"{(y - x) / x * 100:+.1f} %", y < x * (1 - limits.throughput_drop),
            f"regresses below −{limits.throughput_drop * 100:.0f} %")
    worse = VERDICT_RANK.get(_verdict(b), 2) > VERDICT_RANK.get(_verdict(a), 2)
    row("verdict", _verdict(a), _verdict(b), "worse" if worse else "same or better", worse,
        "regresses when CLEAN becomes ANOMALIES or UNKNOWN")
    codes_a = {an["code"]: an["count"] for an in a.get("anomalies", ())}
    codes_b = {an["code"]: an["count"] for an in b.get("anomalies", ())}
    new_codes = sorted(set(codes_b) - set(codes_a))
    verdict_worse = a.get("valid") is True and b.get("valid") is not True
    return {"old": str(old_dir), "new": str(new_dir), "old_valid": a.get("valid"), "new_valid": b.get("valid"),
            "rows": rows, "new_codes": [{"code": c, "count": codes_b[c]} for c in new_codes],
            "gone_codes": sorted(set(codes_a) - set(codes_b)),
            "still": [{"code": c, "old": codes_a[c], "new": codes_b[c]} for c in sorted(set(codes_a) & set(codes_b))],
            "limits": asdict(limits),
            "regressed": bool(new_codes) or verdict_worse or any(r["regressed"] for r in rows)}


VERDICT_RANK = {"CLEAN": 0, "UNKNOWN": 1, "ANOMALIES": 1}


def _verdict(results: dict[str, Any]) -> str:
    return {True: "CLEAN", False: "ANOMALIES"}.get(results.get("valid"), "UNKNOWN")


def _verified_rate(results: dict[str, Any]) -> float | None:
    """Verified (ok) operations per second: older results lack verified_ops, use outcomes."""
    verified = results.get("verified_ops", (results.get("outcomes") or {}).get("ok"))
    duration = (results.get("stats") or {}).get("duration_s")
    if verified is None or not duration:
        return 0.0 if verified == 0 else None
    return round(verified / duration, 2)


def text(cmp: dict[str, Any]) -> list[str]:
    out = [f"old: {cmp['old']} (valid: {cmp['old_valid']})", f"new: {cmp['new']} (valid: {cmp['new_valid']})"]
    for r in cmp["rows"]:
        flag = "REGRESSED" if r["regressed"] else "ok" if r["judged"] else r["rule"]
        out.append(f"  {r['metric']:<22} {_fmt(r['old']):>12} → {_fmt(r['new']):<12} {r['change']:<16} {flag}")
    for c in cmp["new_codes"]:
        out.append(f"  new anomaly code       {c['code']} ×{c['count']}  REGRESSED")
    for c in cmp["still"]:
        out.append(f"  still present          {c['code']} ×{c['old']} → ×{c['new']}")
    for c in cmp["gone_codes"]:
        out.append(f"  gone                   {c}")
    out.append("verdict: REGRESSED" if cmp["regressed"] else "verdict: no regression")
    return out


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:,.3f}" if isinstance(v, float) else str(v)


def render_compare(cmp: dict[str, Any], out: str | os.PathLike[str]) -> Path:
    from sessionstorm.report.render import env, write_atomically

    return write_atomically(Path(out), env().get_template("compare.html.j2").render(cmp=cmp))
