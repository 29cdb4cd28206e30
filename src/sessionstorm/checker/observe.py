"""Observe-flavor anomalies: not-found for live sessions, acknowledged writes lost."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sessionstorm.checker.base import Checker, Report, brief, evidence

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
        missed: dict[str, tuple[str, float, str, dict[str, Any], int]] = {}  # write op -> (sid, t, value, read, n)
        for sid, read_at, values, read in self.reads if self.durable else ():
            for t, value, op_id in self.writes.get(sid, ()):
                if t < read_at and value not in values:
                    first = missed.get(op_id)
                    missed[op_id] = (sid, t, value, read, 1) if first is None else (*first[:4], first[4] + 1)
        for op_id, (sid, t, value, read, n) in missed.items():
            ok = False
            report("LOST_WRITE", {**evidence([read], f"observation {value} (op {op_id}) acknowledged "
                                             f"{(read['invoke_wall'] or 0.0) - t:.3f} s before a read-back of session "
                                             f"{sid}, missing from it" + (f" and from {n - 1} later read-back(s)" if n > 1 else "")),
                                  "ops": [op_id, read["id"]], "missed_by": n})
        return ok
