"""One pass over a run's history for the report.

It gathers what the checker does not keep: per-second series (throughput, errors,
latency samples), stream timings, the operations of one timeline window, and the
fault and snapshot events. Memory stays bounded however long the run: latency is
sampled per second, stream timings by reservoir, the timeline by its window.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionstorm.history import history_files, iter_records

SAMPLES_PER_SECOND = 256  # latency samples kept per wall-clock second
STREAM_SAMPLES = 20_000   # TTFT and inter-chunk gaps kept (reservoir)
TIMELINE_OPS = 3_000      # operations kept in the timeline window


@dataclass(slots=True)
class Second:
    ops: int = 0
    fails: int = 0
    decided: int = 0
    seen: int = 0  # latencies offered, for the reservoir
    latency: list[float] = field(default_factory=list)


@dataclass(slots=True)
class TimelineOp:
    id: str
    kind: str
    key: str | None
    session: str | None
    t0: float
    t1: float
    outcome: str
    status: int | None


@dataclass
class View:
    seconds: dict[int, Second] = field(default_factory=dict)
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)
    timeline: list[TimelineOp] = field(default_factory=list)
    timeline_dropped: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    first: float | None = None
    last: float | None = None
    corrupt: int = 0


def _keep(sample: list[float], value: float, seen: int, cap: int, rng: random.Random) -> None:
    """Reservoir sampling: every value offered so far is kept with equal probability."""
    if len(sample) < cap:
        sample.append(value)
    else:
        j = rng.randrange(seen)
        if j < cap:
            sample[j] = value


def collect(run_path: Path, window: tuple[float, float], progress: bool = False) -> View:
    view = View(window=window)
    rng = random.Random(0)
    w0, w1 = window
    seconds, timeline = view.seconds, view.timeline
    n_ttft = n_gaps = 0
    first = last = None

    def corrupt(*_: object) -> None:
        view.corrupt += 1

    from sessionstorm.progress import for_files
    files = history_files(run_path)
    for rec in iter_records(files, on_corrupt=corrupt, progress=for_files("report", files) if progress else None):
        if rec["type"] != "op":
            kind = rec.get("kind")
            if kind == "fault":
                view.faults.append({"wall": rec.get("wall"), **(rec.get("data") or {})})
            elif kind == "snapshot":
                view.snapshots.append({"wall": rec.get("wall"), **(rec.get("data") or {})})
            continue
        t0, t1 = rec.get("invoke_wall"), rec.get("complete_wall")
        kind = rec.get("kind") or "?"
        view.kinds[kind] += 1
        if t0 is None or t1 is None:
            continue
        first = t0 if first is None or t0 < first else first
        last = t1 if last is None or t1 > last else last
        outcome = rec.get("outcome", "info")
        sec = seconds.get(int(t1))
        if sec is None:
            sec = seconds[int(t1)] = Second()
        sec.ops += 1
        if outcome != "info":
            sec.decided += 1
            if outcome == "fail":
                sec.fails += 1
            sec.seen += 1
            _keep(sec.latency, (t1 - t0) * 1000, sec.seen, SAMPLES_PER_SECOND, rng)
        ttft = rec.get("ttft")
        if ttft is not None:
            n_ttft += 1
            _keep(view.ttft, ttft * 1000, n_ttft, STREAM_SAMPLES, rng)
            for g in rec.get("chunk_gaps") or ():
                n_gaps += 1
                _keep(view.gaps, g * 1000, n_gaps, STREAM_SAMPLES, rng)
        if t1 >= w0 and t0 <= w1:
            if len(timeline) < TIMELINE_OPS:
                timeline.append(TimelineOp(rec.get("id") or "?", kind, rec.get("key") or rec.get("user"),
                                           rec.get("session_seen") or rec.get("session_sent"),
                                           t0, t1, outcome, rec.get("status")))
            else:
                view.timeline_dropped += 1
    view.first, view.last = first, last
    return view
