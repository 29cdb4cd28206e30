"""Observe-flavor anomalies: not-found for live sessions, acknowledged writes lost."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sessionstorm.checker.base import Checker, Report, brief, evidence

NOT_FOUND = "SESSION_NOT_FOUND"


class Observe(Checker):
    name = "observe"
    kinds = frozenset({"create_session", "observe", "read_session", "delete_session"})

    def __init__(self) -> None:
        self.created: dict[str, float] = {}        # session -> when its create was acknowledged
        self.deleted: dict[str, float] = {}        # session -> when a delete was first sent
        self.not_found: list[dict[str, Any]] = []  # 404 SESSION_NOT_FOUND ops
        self.writes: dict[str, list[tuple[float, str, str]]] = defaultdict(list)  # (acked at, value, op id)
        self.reads: list[tuple[str, float, frozenset[str], dict[str, Any]]] = []

    def op(self, op: dict[str, Any]) -> None:
        kind, outcome = op["kind"], op.get("outcome")
        sid = op.get("session_sent") or op.get("session_seen")
        if kind == "create_session" and outcome == "ok" and op.get("session_seen"):
            self.created[op["session_seen"]] = op.get("complete_wall") or 0.0
        elif kind == "delete_session" and sid:
            t = op.get("invoke_wall") or 0.0
            self.deleted[sid] = min(t, self.deleted.get(sid, t))
        if outcome == "fail" and op.get("status") == 404 and NOT_FOUND in str(op.get("error") or ""):
            self.not_found.append(brief(op))
        elif kind == "observe" and outcome == "ok" and sid and op.get("value"):
            self.writes[sid].append((op.get("complete_wall") or 0.0, op["value"], op["id"]))
        elif kind == "read_session" and outcome == "ok" and sid and isinstance(op.get("values"), list):
            self.reads.append((sid, op.get("invoke_wall") or 0.0, frozenset(v for v in op["values"] if v), brief(op)))

    def finish(self, report: Report) -> bool | None:
        ok = True
        for op in self.not_found:
            sid = op.get("session_sent")
            made = self.created.get(sid) if sid else None
            if made is None or made > (op.get("invoke_wall") or 0.0):
                continue  # never acknowledged before this request: a 404 is fair
            if sid in self.deleted and self.deleted[sid] <= (op.get("complete_wall") or 0.0):
                continue
            ok = False
            report("SPURIOUS_NOT_FOUND", evidence([op], f"session {sid} created {op['invoke_wall'] - made:.3f} s "
                                                  f"earlier answered 404 {NOT_FOUND}; reached {op.get('peer')} "
                                                  f"({op.get('server_id')})"))
        for sid, read_at, values, read in self.reads:
            lost = [(t, v, i) for t, v, i in self.writes.get(sid, ()) if t < read_at and v not in values]
            for t, value, op_id in lost:
                ok = False
                report("LOST_WRITE", {**evidence([read], f"observation {value} (op {op_id}) acknowledged "
                                                 f"{read_at - t:.3f} s before the read-back of session {sid}, "
                                                 f"missing from it"), "ops": [op_id, read["id"]]})
        return ok
