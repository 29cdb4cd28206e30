"""Observe-flavor anomalies: not-found for live sessions, acknowledged writes lost."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from sessionstorm.checker.base import Checker, Report, brief, briefs, evidence, op_rows

if TYPE_CHECKING:
    from sessionstorm.columns import Columns

NOT_FOUND = "SESSION_NOT_FOUND"


class Observe(Checker):
    name = "observe"
    kinds = frozenset({"create_session", "observe", "read_session", "delete_session"})

    def __init__(self, observe: str = "durable") -> None:
        self.durable = observe == "durable"  # the contract: every acknowledged write must be read back
        self.created: dict[str, float] = {}        # session -> when its create was acknowledged
        self.deleted: dict[str, float] = {}        # session -> when a delete was first sent
        self.not_found: list[tuple[dict[str, Any], str]] = []  # 404 ops, "own" or "generic" body
        self.answered: set[str] = set()  # op kinds that succeeded at least once: their route exists
        self.writes: dict[str, list[tuple[float, str, str]]] = defaultdict(list)  # (acked at, value, op id)
        self.reads: list[tuple[str, float, frozenset[str], dict[str, Any]]] = []
        self.missed: dict[str, tuple[str, float, str, dict[str, Any], int]] | None = None  # found by `scan` (SQL)

    def op(self, op: dict[str, Any]) -> None:
        kind, outcome = op["kind"], op.get("outcome")
        sid = op.get("session_sent") or op.get("session_seen")
        if outcome == "ok":
            self.answered.add(kind)
        if kind == "create_session" and outcome == "ok" and op.get("session_seen"):
            self.created[op["session_seen"]] = op.get("complete_wall") or 0.0
        elif kind == "delete_session" and sid:
            t = op.get("invoke_wall") or 0.0
            self.deleted[sid] = min(t, self.deleted.get(sid, t))
        if outcome == "fail" and (op.get("not_found") or op.get("status") == 404):
            # The service's own "no such session" vs a framework's routing 404 (a route that
            # is missing: another build answered, seed 004).
            own = op.get("not_found") or NOT_FOUND in str(op.get("error") or "")
            self.not_found.append((brief(op), "own" if own else "generic"))
        elif kind == "observe" and outcome == "ok" and sid and op.get("value"):
            self.writes[sid].append((op.get("complete_wall") or 0.0, op["value"], op["id"]))
        elif kind == "read_session" and outcome == "ok" and sid and isinstance(op.get("values"), list):
            self.reads.append((sid, op.get("invoke_wall") or 0.0, frozenset(v for v in op["values"] if v), brief(op)))

    def scan(self, cols: Columns) -> None:
        """`op` fed every row but the bulk (acknowledged writes and read-backs: reads answered at all
        are counted by SQL); lost writes are one SQL anti-join, read-back values against earlier writes."""
        kinds = tuple(sorted(self.kinds))
        sid = "coalesce(nullif(session_sent, ''), session_seen)"
        bulk = "outcome = 'ok' AND kind IN ('observe', 'read_session')"
        for op in op_rows(cols, f"kind IN {kinds} AND NOT ({bulk})"):
            self.op(op)
        self.answered.update(k for (k,) in cols.con.execute(
            f"SELECT DISTINCT kind FROM o WHERE kind IN {kinds} AND outcome = 'ok'").fetchall())
        if not self.durable:
            self.missed = {}
            return
        rows = cols.con.execute(f"""
            WITH w AS (SELECT seq, id, {sid} AS sid, coalesce(complete_wall, 0.0) AS t, "value" AS v FROM o
                       WHERE kind = 'observe' AND outcome = 'ok' AND {sid} <> '' AND "value" <> ''),
                 r AS (SELECT seq, {sid} AS sid, coalesce(invoke_wall, 0.0) AS t, "values" AS vs FROM o
                       WHERE kind = 'read_session' AND outcome = 'ok' AND {sid} <> '' AND "values" IS NOT NULL),
                 rv AS (SELECT seq AS rseq, unnest(vs) AS v FROM r),
                 miss AS (SELECT w.id, w.seq AS wseq, w.sid, w.t, w.v, r.seq AS rseq FROM w JOIN r ON w.sid = r.sid AND w.t < r.t
                          WHERE NOT EXISTS (SELECT 1 FROM rv WHERE rv.rseq = r.seq AND rv.v = w.v))
            SELECT id, arg_min(sid, (rseq, wseq)), arg_min(t, (rseq, wseq)), arg_min(v, (rseq, wseq)),
                   arg_min(rseq, (rseq, wseq)), count(*) FROM miss GROUP BY id ORDER BY min((rseq, wseq))""").fetchall()
        found = briefs(cols, (row[4] for row in rows))
        self.missed = {op_id: (sid, t, value, found[read], n) for op_id, sid, t, value, read, n in rows}

    def _lost(self) -> dict[str, tuple[str, float, str, dict[str, Any], int]]:
        """Write op id -> (session, acknowledged at, value, the first read-back missing it, how many missed it)."""
        missed: dict[str, tuple[str, float, str, dict[str, Any], int]] = {}
        for sid, read_at, values, read in self.reads if self.durable else ():
            for t, value, op_id in self.writes.get(sid, ()):
                if t < read_at and value not in values:
                    first = missed.get(op_id)
                    missed[op_id] = (sid, t, value, read, 1) if first is None else (*first[:4], first[4] + 1)
        return missed

    def finish(self, report: Report) -> bool | None:
        ok = True
        spurious = []
        for op, body in self.not_found:
            sid = op.get("session_sent")
            made = self.created.get(sid) if sid else None
            if made is None or made > (op.get("invoke_wall") or 0.0):
                continue  # never acknowledged before this request: a 404 is fair
            if sid in self.deleted and self.deleted[sid] <= (op.get("complete_wall") or 0.0):
                continue
            if body == "generic" and op.get("kind") not in self.answered:
                continue  # the route answered nowhere: a wrong path (UNAVAILABLE), not a second server
            spurious.append((op, body, made))
        # Evidence by the real peer and the kind of 404: "all 25 came from [::1]:8000, a
        # framework's 404" points at a second server at once.
        groups = Counter((op.get("peer") or "unknown peer", body) for op, body, _ in spurious)
        where = "; ".join(f"{n} from {peer} ({'the service' + chr(39) + 's own 404' if body == 'own' else 'a framework 404: route missing'})"
                          for (peer, body), n in groups.most_common())
        for op, body, made in spurious:
            ok = False
            what = NOT_FOUND if body == "own" else f"a framework's generic 404 ({op.get('error')})"
            report("SPURIOUS_NOT_FOUND", evidence([op], f"session {op.get('session_sent')} created "
                                                  f"{op['invoke_wall'] - made:.3f} s earlier answered {what}; reached "
                                                  f"{op.get('peer')} ({op.get('server_id')}). All: {where}",
                                                  peer=op.get("peer"), body=body, by_peer=dict(
                                                      (f"{p} {b}", n) for (p, b), n in groups.items())))
        # One finding per distinct lost write (not per write x read-back): its first read that
        # missed it is the evidence, the later ones are counted.
        missed = self._lost() if self.missed is None else self.missed
        for op_id, (sid, t, value, read, n) in missed.items():
            ok = False
            report("LOST_WRITE", {**evidence([read], f"observation {value} (op {op_id}) acknowledged "
                                             f"{(read['invoke_wall'] or 0.0) - t:.3f} s before a read-back of session "
                                             f"{sid}, missing from it" + (f" and from {n - 1} later read-back(s)" if n > 1 else "")),
                                  "ops": [op_id, read["id"]], "missed_by": n})
        return ok
