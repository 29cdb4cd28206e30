"""Verdicts relative to the nemesis's faults (Jepsen: safety always, availability relative
to the faults).

The nemesis writes a ``fault`` event when a fault starts and when it ends (the component
answers again). An operation that did not succeed and overlaps a fault window plus the
grace (``[thresholds] recovery_s``, default 10 s) is availability under the fault: it is
counted here, apart, and kept out of the error and unknown rates and of ``UNAVAILABLE``.
Safety findings (crosstalk, lost writes, duplicate sessions, wrong model, invariants) are
judged whenever they happen. For each fault and operation kind, the recovery time is the
time from the fault's end to the first verified ``ok`` invoked after it. A kind that still
fails after the grace, before any success, is ``NOT_RECOVERED``. A fault that could not be
applied (or was never started) makes the run unknown: nothing was tested.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionstorm.checker.base import Checker, Report, brief, briefs, evidence
from sessionstorm.columns import lit
from sessionstorm.history import iter_records

if TYPE_CHECKING:
    from sessionstorm.columns import Columns

DEFAULT_RECOVERY_S = 10.0
SAMPLES = 3


def fault_events(files: Iterable[Path]) -> list[dict[str, Any]]:
    """The fault events of a run (only the nemesis's files are read: they are small)."""
    nemesis = [f for f in files if f.name.endswith("-nemesis.jsonl")]
    out = []
    for rec in iter_records(nemesis, on_corrupt=lambda *a: None) if nemesis else ():
        if rec.get("type") == "event" and rec.get("kind") == "fault":
            out.append({**rec["data"], "wall": rec["wall"]})
    return out


class Window:
    __slots__ = (
        "action",
        "applied",
        "attempted",
        "component",
        "cut_short",
        "end",
        "errors",
        "excused",
        "first_ok",
        "late_fails",
        "late_samples",
        "spec",
        "start",
    )

    def __init__(self, spec: str, action: str, component: str) -> None:
        self.spec, self.action, self.component = spec, action, component
        self.start: float | None = None
        self.end: float | None = None
        self.applied = True
        self.cut_short = False
        self.errors: list[str] = []
        self.excused: Counter[str] = Counter()                       # outcome -> n
        self.first_ok: dict[str, tuple[float, float, str]] = {}      # kind -> (invoke, complete, op id)
        self.late_fails: dict[str, list[float]] = defaultdict(list)  # kind -> invokes after end + grace
        self.late_samples: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        self.attempted: Counter[str] = Counter()                     # kind -> ops invoked after the end


class Faults(Checker):
    name = "faults"

    def __init__(self, events: list[dict[str, Any]], grace_s: float | None = None) -> None:
        self.grace = DEFAULT_RECOVERY_S if grace_s is None else float(grace_s)
        self.windows: dict[str, Window] = {}
        for ev in events:
            w = self.windows.get(ev["id"])
            if w is None:
                w = self.windows[ev["id"]] = Window(ev["id"], ev.get("action", "?"), ev.get("component", "?"))
            phase = ev.get("phase")
            if phase == "start":
                w.start = ev.get("began_wall") or ev["wall"]
            elif phase == "end":
                w.end = ev["wall"]
                w.cut_short = bool(ev.get("cut_short"))
            if not ev.get("applied", False):
                w.applied = False
                w.errors.append(f"{phase}: {ev.get('error')}")
        # the span in which a failure is excused: (start, end + grace); an unfinished fault never ends
        self.spans = [(w.start, (w.end if w.end is not None else float("inf")) + self.grace, w)
                      for w in self.windows.values() if w.start is not None]
        self.reasons: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.windows)

    def excuse(self, op: dict[str, Any]) -> bool:
        """True when a failed op overlaps a fault window plus the grace (counted here, apart)."""
        t0, t1 = op.get("invoke_wall"), op.get("complete_wall")
        if t0 is None:
            return False
        t1 = t1 if t1 is not None else t0
        hit = False
        for start, until, w in self.spans:
            if t0 <= until and t1 >= start:
                w.excused[op.get("outcome", "info")] += 1
                hit = True
        return hit

    def excused_sql(self) -> str:
        """`excuse` as an SQL condition on a history row (view ``h``): a failed op overlapping a window + grace."""
        spans = [f"(invoke_wall <= {lit(until)} AND coalesce(complete_wall, invoke_wall) >= {lit(start)})"
                 for start, until, _ in self.spans]
        if not spans:
            return "false"
        return f"(outcome IS DISTINCT FROM 'ok' AND invoke_wall IS NOT NULL AND ({' OR '.join(spans)}))"

    def scan(self, cols: Columns) -> None:
        """`excuse`'s tallies and `op`'s state per window, by SQL over every op."""
        for start, until, w in self.spans:
            for outcome, n in cols.con.execute(
                    f"SELECT coalesce(outcome, 'info'), count(*) FROM o WHERE outcome IS DISTINCT FROM 'ok' AND "
                    f"invoke_wall <= {lit(until)} AND coalesce(complete_wall, invoke_wall) >= {lit(start)} "
                    "AND invoke_wall IS NOT NULL GROUP BY 1 ORDER BY min(seq)").fetchall():
                w.excused[outcome] += n
        for w in self.windows.values():
            if w.end is None:
                continue
            after = f"FROM o WHERE invoke_wall IS NOT NULL AND invoke_wall >= {lit(w.end)}"
            for kind, n, t0, t1, op_id in cols.con.execute(
                    "SELECT coalesce(nullif(kind, ''), '?') AS k, count(*), min(invoke_wall) FILTER (WHERE outcome = 'ok'), "
                    "arg_min(coalesce(complete_wall, invoke_wall), (invoke_wall, seq)) FILTER (WHERE outcome = 'ok'), "
                    f"arg_min(coalesce(id, '?'), (invoke_wall, seq)) FILTER (WHERE outcome = 'ok') {after} "
                    "GROUP BY k ORDER BY min(seq)").fetchall():
                w.attempted[kind] += n
                if t0 is not None:
                    w.first_ok[kind] = (t0, t1, op_id)
            late = (f"{after} AND outcome IS DISTINCT FROM 'ok' AND invoke_wall > {lit(w.end + self.grace)}")
            for kind, t0 in cols.con.execute(f"SELECT coalesce(nullif(kind, ''), '?'), invoke_wall {late} ORDER BY seq").fetchall():
                w.late_fails[kind].append(t0)
            first = cols.con.execute(
                "SELECT k, seq, t FROM (SELECT coalesce(nullif(kind, ''), '?') AS k, seq, invoke_wall AS t, row_number() OVER "
                f"(PARTITION BY k ORDER BY invoke_wall, seq) AS i {late}) WHERE i <= {SAMPLES} ORDER BY t, seq").fetchall()
            found = briefs(cols, (seq for _, seq, _ in first))
            for kind, seq, t0 in first:
                w.late_samples[kind].append((t0, found[seq]))

    def excuse_event(self, ev: dict[str, Any]) -> bool:
        """True for an invariant snapshot that failed inside a fault window (+ grace): the
        database could not be asked, which is availability, not an unknown verdict."""
        if ev.get("kind") != "snapshot" or not (ev.get("data") or {}).get("error"):
            return False
        t = ev.get("wall") or 0.0
        hits = [w for start, until, w in self.spans if start <= t <= until]
        for w in hits:
            w.excused["snapshot"] += 1
        return bool(hits)

    def op(self, op: dict[str, Any]) -> None:
        t0 = op.get("invoke_wall")
        if t0 is None:
            return
        kind, ok = op.get("kind") or "?", op.get("outcome") == "ok"
        for w in self.windows.values():
            if w.end is None or t0 < w.end:
                continue
            w.attempted[kind] += 1
            if ok:
                t1 = op.get("complete_wall") or t0
                if kind not in w.first_ok or t0 < w.first_ok[kind][0]:
                    w.first_ok[kind] = (t0, t1, op.get("id") or "?")
            elif t0 > w.end + self.grace:
                w.late_fails[kind].append(t0)
                samples = w.late_samples[kind]
                if len(samples) < SAMPLES or t0 < samples[-1][0]:
                    samples.append((t0, brief(op)))
                    samples.sort(key=lambda s: s[0])
                    del samples[SAMPLES:]

    def finish(self, report: Report) -> bool | None:
        ok: bool | None = True
        for w in self.windows.values():
            if not w.applied or w.start is None:
                self.reasons.append(f"fault {w.spec} could not be applied ({'; '.join(w.errors) or 'never started'}): "
                                    "the run did not test what it was asked to")
                ok = None if ok is True else ok
                continue
            if w.end is None:
                self.reasons.append(f"fault {w.spec} has no end record: its recovery cannot be judged")
                ok = None if ok is True else ok
                continue
            for kind in sorted(w.attempted):
                first = w.first_ok.get(kind)
                before = [t for t in w.late_fails.get(kind, ()) if first is None or t < first[0]]
                if not before:
                    if first is None:  # it never worked again, but the run ended inside the grace
                        self.reasons.append(f"{kind}: no verified ok after {w.spec} ended, and the run ended "
                                            f"within the {self.grace:g} s grace: recovery not observed")
                        ok = None if ok is True else ok
                    continue
                samples = [s for t, s in w.late_samples[kind] if first is None or t < first[0]]
                after = (f"first verified ok {first[1] - w.end:.1f} s after it" if first
                         else "no verified ok until the run ended")
                report("NOT_RECOVERED", evidence(
                    samples, f"{kind}: {len(before)} op(s) still failed more than {self.grace:g} s after {w.spec} "
                             f"ended; {after}",
                    fault=w.spec, kind=kind, failed_after_grace=len(before), grace_s=self.grace,
                    recovery_s=round(first[1] - w.end, 3) if first else None))
                ok = False
        if self.windows and not any(w.attempted for w in self.windows.values() if w.end is not None) and ok is True:
            self.reasons.append("no operation ran after the faults ended: recovery was not observed")
            ok = None
        return ok

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for w in self.windows.values():
            rec = {kind: round(v[1] - w.end, 3) for kind, v in sorted(w.first_ok.items())} if w.end else {}
            out.append({"spec": w.spec, "action": w.action, "component": w.component, "start": w.start,
                        "end": w.end, "applied": w.applied, "errors": w.errors, "cut_short": w.cut_short,
                        "excused": dict(w.excused), "grace_s": self.grace, "recovery_s": rec,
                        "recovery_max_s": max(rec.values()) if rec else None})
        return out
