"""The timeline: which window of the run to draw, and swimlanes laid out in it.

Like Jepsen's timeline page, one lane per key (or per session), each operation a bar
from invoke to complete, overlapping operations stacked in rows. A run of a million
operations cannot be drawn whole, so the page shows one window: centred on the first
anomaly's evidence, or on the middle of a clean run.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sessionstorm.report.collect import TimelineOp

WIDTH = 960        # px of the time axis
LABEL_W = 150      # px left of it for lane labels
ROW_H, ROW_GAP, LANE_GAP = 7, 2, 8
MAX_LANES, MAX_ROWS = 24, 10


def anomalous_ops(results: dict[str, Any]) -> dict[str, str]:
    """op id -> the first anomaly code that names it."""
    marked: dict[str, str] = {}
    for a in results.get("anomalies", ()):
        for ev in a.get("evidence", ()):
            for op in ev.get("ops") or ():
                marked.setdefault(op, a["code"])
    return marked


def choose_window(results: dict[str, Any], started: float | None) -> tuple[float, float, str]:
    """(start, end, why) in wall-clock seconds."""
    p50 = ((results.get("stats") or {}).get("latency_ms") or {}).get("p50") or 100.0
    width = min(max(p50 / 1000 * 25, 1.0), 20.0)
    for a in results.get("anomalies", ()):
        for ev in a.get("evidence", ()):
            times = [t for pair in ev.get("times") or () for t in pair if t is not None]
            if times:
                focus = min(times)
                return focus - width / 4, focus + width * 3 / 4, f"around the first {a['code']} evidence"
    for f in results.get("faults") or ():  # no anomaly: show the first fault, from just before it
        if f.get("start"):
            end = f.get("end") or f["start"] + width
            return f["start"] - width / 4, max(end + width / 4, f["start"] + width), f"around the fault {f['spec']}"
    duration = (results.get("stats") or {}).get("duration_s") or 0.0
    if started is None:
        return 0.0, 0.0, "no start time recorded"
    middle = started + duration / 2
    return middle - width / 2, middle + width / 2, "the middle of the run (no anomaly)"


def _short(label: str | None) -> str:
    if not label:
        return "(none)"
    return label if len(label) <= 20 else f"{label[:10]}…{label[-6:]}"


def layout(ops: list[TimelineOp], window: tuple[float, float], by: str, marked: dict[str, str],
           faults: list[dict[str, Any]], origin: float) -> dict[str, Any]:
    """Swimlanes as SVG coordinates: lanes with anomalous operations first, then the busiest."""
    w0, w1 = window
    span = max(w1 - w0, 1e-6)
    x = lambda t: LABEL_W + (min(max(t, w0), w1) - w0) / span * WIDTH
    groups: dict[str | None, list[TimelineOp]] = defaultdict(list)
    for op in ops:
        groups[op.key if by == "key" else op.session].append(op)
    order = sorted(groups, key=lambda g: (not any(o.id in marked for o in groups[g]), -len(groups[g])))
    lanes, y, hidden_ops = [], 0, 0
    for g in order[:MAX_LANES]:
        rows: list[float] = []  # end time of the last bar in each row
        bars = []
        for op in sorted(groups[g], key=lambda o: o.t0):
            row = next((i for i, end in enumerate(rows) if end <= op.t0), None)
            if row is None:
                if len(rows) == MAX_ROWS:
                    hidden_ops += 1
                    continue
                rows.append(op.t1)
                row = len(rows) - 1
            rows[row] = op.t1
            code = marked.get(op.id)
            cls = "bad" if code else {"ok": "ok", "fail": "fail"}.get(op.outcome, "info")
            x0 = x(op.t0)
            bars.append({"x": round(x0, 1), "y": y + row * (ROW_H + ROW_GAP), "w": round(max(x(op.t1) - x0, 1.0), 1),
                         "cls": cls, "title": f"{op.id} {op.kind} {op.outcome} {op.status or ''} "
                                              f"{op.t0 - origin:.3f}-{op.t1 - origin:.3f} s"
                                              + (f" {code}" if code else "")})
        height = max(len(rows), 1) * (ROW_H + ROW_GAP)
        lanes.append({"label": _short(g), "full": g or "", "y": y, "h": height, "bars": bars,
                      "marked": any(b["cls"] == "bad" for b in bars)})
        y += height + LANE_GAP
    hidden_lanes = max(len(order) - MAX_LANES, 0)
    ticks = [{"x": round(LABEL_W + i / 5 * WIDTH, 1), "label": f"{w0 - origin + i / 5 * span:.2f} s"} for i in range(6)]
    return {"width": LABEL_W + WIDTH, "label_w": LABEL_W, "plot_w": WIDTH, "height": y + 20, "axis_y": y + 12, "lanes": lanes, "ticks": ticks,
            "hidden_lanes": hidden_lanes, "hidden_ops": hidden_ops + sum(len(groups[g]) for g in order[MAX_LANES:]),
            "faults": fault_bands(faults, window, x)}


def fault_bands(faults: list[dict[str, Any]], window: tuple[float, float], x: Any) -> list[dict[str, Any]]:
    """Fault events as shaded bands: a fault is on from its event to the next event of that name
    (the nemesis's: ``spec``, ``phase`` start/end, ``began_wall`` when the action began)."""
    bands, open_at = [], {}
    for f in sorted(faults, key=lambda f: f.get("began_wall") or f.get("wall") or 0):
        name = str(f.get("spec") or f.get("name", "fault"))
        if f.get("phase") in ("skipped", "error") or (f.get("phase") == "start" and not f.get("applied", True)):
            continue
        if f.get("active", f.get("phase", "start") == "start"):
            open_at.setdefault(name, f.get("began_wall") or f.get("wall") or window[0])
        elif name in open_at:
            bands.append((name, open_at.pop(name), f.get("wall") or window[1]))
    bands += [(name, t, window[1]) for name, t in open_at.items()]
    return [{"label": name, "x": round(x(t0), 1), "w": round(max(x(t1) - x(t0), 1.0), 1)}
            for name, t0, t1 in bands if t1 >= window[0] and t0 <= window[1]]


def overlap(pair: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Two operations on one small time axis (the crosstalk side-by-side)."""
    spans = [(o.get("invoke_wall"), o.get("complete_wall")) for o in pair]
    if any(a is None or b is None for a, b in spans):
        return None
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    span, width = max(hi - lo, 1e-6), 420
    bars = [{"x": round((a - lo) / span * width, 1), "w": round(max((b - a) / span * width, 1.0), 1),
             "label": f"{(b - a) * 1000:.0f} ms"} for a, b in spans]
    shared = max(0.0, min(b for _, b in spans) - max(a for a, _ in spans))
    return {"width": width, "bars": bars, "overlap_ms": round(shared * 1000, 1), "span_ms": round(span * 1000, 1)}
