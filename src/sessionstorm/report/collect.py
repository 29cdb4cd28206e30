"""What the report needs of a run's history, as SQL over its columns (`sessionstorm.columns`).

It gathers what the checker does not keep: per-second series (throughput, errors,
latency samples), stream timings, the operations of one timeline window, and the
fault and snapshot events. Memory stays bounded however long the run: latency is
sampled per second, stream timings by a fixed pseudo-random sample, the timeline by its window.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sessionstorm.columns import lit

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
    """SQL over the run's columnar history (`sessionstorm.columns`: converted by the check, or here)."""
    from sessionstorm.columns import Columns
    from sessionstorm.history import history_files
    from sessionstorm.progress import for_files

    view = View(window=window)
    files = history_files(run_path)
    update = for_files("report", files) if progress else None
    total = sum(f.stat().st_size for f in files) if update else 0
    # the bar: the first half converts (if the check has not), the second runs the queries (steps 1..4)
    half = (lambda done: update(done // 2)) if update else None
    step = (lambda k: update(total // 2 + total * k // 8)) if update else (lambda k: None)
    with Columns(run_path, progress=half) as cols:
        step(0)
        view.corrupt = len(cols.corrupt)
        con = cols.con
        for kind, wall, data in con.execute("SELECT kind, wall, data FROM h WHERE type = 'event' AND kind IN "
                                            "('fault', 'snapshot') ORDER BY seq").fetchall():
            (view.faults if kind == "fault" else view.snapshots).append({"wall": wall, **(orjson.loads(data) if data else {})})
        con.execute("CREATE TEMP VIEW o AS SELECT * FROM h WHERE type = 'op'")
        view.kinds.update(dict(con.execute("SELECT coalesce(nullif(kind, ''), '?'), count(*) FROM o "
                                           "GROUP BY ALL ORDER BY min(seq)").fetchall()))
        con.execute("CREATE TEMP VIEW t AS SELECT * FROM o WHERE invoke_wall IS NOT NULL AND complete_wall IS NOT NULL")
        view.first, view.last = con.execute("SELECT min(invoke_wall), max(complete_wall) FROM t").fetchone()
        step(1)
        decided = "coalesce(outcome, 'info') <> 'info'"
        for sec, ops, dec, fails in con.execute(
                f"SELECT trunc(complete_wall)::BIGINT AS s, count(*), count(*) FILTER (WHERE {decided}), "
                "count(*) FILTER (WHERE outcome = 'fail') FROM t GROUP BY s").fetchall():
            view.seconds[sec] = Second(ops=ops, fails=fails, decided=dec, seen=dec)
        # latency: SAMPLES_PER_SECOND per second, a fixed pseudo-random choice (hash of the record's place)
        for sec, lat in con.execute(
                f"SELECT s, lat FROM (SELECT trunc(complete_wall)::BIGINT AS s, (complete_wall - invoke_wall) * 1000 AS lat, "
                f"row_number() OVER (PARTITION BY s ORDER BY hash(seq)) AS i FROM t WHERE {decided}) "
                f"WHERE i <= {SAMPLES_PER_SECOND}").fetchall():
            view.seconds[sec].latency.append(lat)
        step(2)
        view.ttft = [v for (v,) in con.execute(f"SELECT ttft * 1000 FROM t WHERE ttft IS NOT NULL "
                                               f"ORDER BY hash(seq) LIMIT {STREAM_SAMPLES}").fetchall()]
        view.gaps = [v for (v,) in con.execute(f"SELECT g * 1000 FROM (SELECT unnest(chunk_gaps) AS g, seq FROM t "
                                               f"WHERE ttft IS NOT NULL) WHERE g IS NOT NULL "
                                               f"ORDER BY hash(seq), g LIMIT {STREAM_SAMPLES}").fetchall()]
        step(3)
        w0, w1 = window
        inside = f"FROM t WHERE complete_wall >= {lit(w0)} AND invoke_wall <= {lit(w1)}"
        view.timeline = [TimelineOp(i or "?", k, key, session, t0, t1, outcome, status) for i, k, key, session, t0, t1, outcome, status
                         in con.execute(f"SELECT id, coalesce(nullif(kind, ''), '?'), coalesce(nullif(\"key\", ''), \"user\"), "
                                        "coalesce(nullif(session_seen, ''), session_sent), invoke_wall, complete_wall, "
                                        f"coalesce(outcome, 'info'), status {inside} ORDER BY seq LIMIT {TIMELINE_OPS}").fetchall()]
        view.timeline_dropped = max(0, con.execute(f"SELECT count(*) {inside}").fetchone()[0] - TIMELINE_OPS)
        step(4)
    return view
