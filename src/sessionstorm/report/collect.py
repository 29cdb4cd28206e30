"""What the report needs of a run's history, as SQL over its columns (`sessionstorm.columns`).

It gathers what the checker does not keep: per-second series (throughput, errors,
latency samples), stream timings, the operations of one timeline window, and the
fault and snapshot events. Memory stays bounded however long the run: latency is
sampled per second, stream timings by a fixed pseudo-random sample, the timeline by its window.
"""
from __future__ import annotations

import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from sessionstorm.columns import lit

if TYPE_CHECKING:
    from sessionstorm.columns import Columns

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


def collect(run_path: Path, window: tuple[float, float], progress: bool = False, cols: Columns | None = None) -> View:
    """SQL over the run's columnar history (`sessionstorm.columns`: converted by the check, or here);
    ``cols``: the columns the check used, still open (`Run.finish`)."""
    from sessionstorm.columns import Columns
    from sessionstorm.history import history_files
    from sessionstorm.progress import for_files

    view = View(window=window)
    files = history_files(run_path) if progress else []
    update = for_files("report", files) if progress else None
    total = sum(f.stat().st_size for f in files) if update else 0
    # the bar: the first half converts (if the check has not), the second runs the queries (steps 1..4)
    half = (lambda done: update(done // 2)) if update else None
    step = (lambda k: update(total // 2 + total * k // 8)) if update else (lambda k: None)
    with Columns(run_path, progress=half) if cols is None else contextlib.nullcontext(cols) as cols:  # noqa: PLR1704
        step(0)
        view.corrupt = len(cols.corrupt)
        con = cols.con
        for kind, wall, data in con.execute("SELECT kind, wall, data FROM h WHERE type = 'event' AND kind IN "
                                            "('fault', 'snapshot') ORDER BY seq").fetchall():
            (view.faults if kind == "fault" else view.snapshots).append({"wall": wall, **(orjson.loads(data) if data else {})})
        view.kinds.update(dict(con.execute("SELECT coalesce(nullif(kind, ''), '?'), count(*) FROM h WHERE type = 'op' "
                                           "GROUP BY ALL ORDER BY min(seq)").fetchall()))
        # t: the timed ops, with the fields read below (not `o`: the check's, when it shares these columns)
        cols.derive("t", "SELECT seq, id, kind, \"key\", \"user\", session_seen, session_sent, invoke_wall, complete_wall, "
                    "outcome, status, ttft, chunk_gaps FROM h WHERE type = 'op' AND invoke_wall IS NOT NULL "
                    "AND complete_wall IS NOT NULL")
        step(1)
        decided = "coalesce(outcome, 'info') <> 'info'"
        firsts, lasts = [], []
        for sec, ops, dec, fails, first, last in con.execute(
                f"SELECT trunc(complete_wall)::BIGINT AS s, count(*), count(*) FILTER (WHERE {decided}), "
                "count(*) FILTER (WHERE outcome = 'fail'), min(invoke_wall), max(complete_wall) FROM t GROUP BY s").fetchall():
            view.seconds[sec] = Second(ops=ops, fails=fails, decided=dec, seen=dec)
            firsts.append(first)
            lasts.append(last)
        view.first, view.last = min(firsts, default=None), max(lasts, default=None)
        # latency: SAMPLES_PER_SECOND per second, a fixed pseudo-random choice (hash of the record's place)
        for sec, lat in con.execute(
                f"SELECT s, lat FROM (SELECT trunc(complete_wall)::BIGINT AS s, (complete_wall - invoke_wall) * 1000 AS lat, "
                f"row_number() OVER (PARTITION BY s ORDER BY hash(seq)) AS i FROM t WHERE {decided}) "
                f"WHERE i <= {SAMPLES_PER_SECOND}").fetchall():
            view.seconds[sec].latency.append(lat)
        step(2)
        # TTFT and gaps in one query (each a sample; their order does not matter: the page sorts them)
        for gap, v in con.execute(
                f"SELECT false, ttft * 1000 FROM (SELECT ttft FROM t WHERE ttft IS NOT NULL ORDER BY hash(seq) "
                f"LIMIT {STREAM_SAMPLES}) UNION ALL SELECT true, g * 1000 FROM (SELECT g FROM (SELECT unnest(chunk_gaps) "
                f"AS g, seq FROM t WHERE ttft IS NOT NULL) WHERE g IS NOT NULL ORDER BY hash(seq), g "
                f"LIMIT {STREAM_SAMPLES})").fetchall():
            (view.gaps if gap else view.ttft).append(v)
        step(3)
        w0, w1 = window
        rows = con.execute(f"SELECT id, coalesce(nullif(kind, ''), '?'), coalesce(nullif(\"key\", ''), \"user\"), "
                           "coalesce(nullif(session_seen, ''), session_sent), invoke_wall, complete_wall, "
                           "coalesce(outcome, 'info'), status, count(*) OVER () "
                           f"FROM t WHERE complete_wall >= {lit(w0)} AND invoke_wall <= {lit(w1)} "
                           f"ORDER BY seq LIMIT {TIMELINE_OPS}").fetchall()
        view.timeline = [TimelineOp(i or "?", *rest) for i, *rest, _ in rows]
        view.timeline_dropped = max(0, rows[0][-1] - TIMELINE_OPS) if rows else 0
        step(4)
    return view
