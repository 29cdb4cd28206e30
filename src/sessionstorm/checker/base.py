"""What every checker shares: the interface and how evidence names operations."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionstorm.columns import Columns

Report = Callable[[str, dict[str, Any]], None]  # (code, evidence)


class Checker:
    """Sees every op (of `kinds`) and event once, in history order, then decides.

    `finish` reports findings and returns True (valid), False (anomalies) or None
    (cannot decide). A checker that raises is unknown, never a pass.

    Built-in checkers also have `scan(cols)`: the same state from SQL over the columnar
    history (`sessionstorm.columns`; view ``o``: the ops, with ``excused`` when a fault window
    excuses the failure), feeding `op` only the rows that can matter. A checker without
    `scan` (a plugin) is fed every record by `op`.
    """

    scan: Callable[[Columns], None] | None = None

    name = "checker"
    kinds: frozenset[str] | None = None  # None: every op

    def op(self, op: dict[str, Any]) -> None:
        pass

    def event(self, ev: dict[str, Any]) -> None:
        pass

    def finish(self, report: Report) -> bool | None:
        raise NotImplementedError


BRIEF_FIELDS = ("id", "kind", "key", "user", "process", "invoke_wall", "complete_wall", "model_asked", "model_served",
                "session_sent", "session_seen", "status", "error", "peer", "server_id", "in_flight", "prompt_excerpt",
                "reply_excerpt", "canaries_sent", "canaries_seen", "turn", "error_body")


def brief(op: dict[str, Any]) -> dict[str, Any]:
    """The few fields of an op that evidence needs (kept instead of the whole record)."""
    return dict(zip(BRIEF_FIELDS, map(op.get, BRIEF_FIELDS)))  # kept for every message: no Python-level loop


def evidence(ops: Iterable[dict[str, Any]], detail: str, **extra: Any) -> dict[str, Any]:
    ops = list(ops)
    return {"ops": [o.get("id") for o in ops],
            "keys": sorted({o["key"] for o in ops if o.get("key")}),
            "sessions": sorted({s for o in ops for s in (o.get("session_seen"), o.get("session_sent")) if s}),
            "times": [[o.get("invoke_wall"), o.get("complete_wall")] for o in ops],
            "detail": detail, "op_details": [brief(o) for o in ops], **extra}


def briefs(cols: Columns, seqs: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The brief of each op named by its ``seq`` (the few rows evidence quotes)."""
    return {r[0]: dict(zip(BRIEF_FIELDS, r[1:])) for r in cols.rows(BRIEF_FIELDS, sorted(set(seqs)))}


OP_FIELDS = ("id", "kind", "outcome", "key", "user", "process", "invoke_wall", "complete_wall", "model_asked",
             "model_served", "session_sent", "session_seen", "request_id_sent", "request_id_seen", "status", "error",
             "peer", "server_id", "transport", "in_flight", "prompt_excerpt", "reply_excerpt", "canaries_sent",
             "canaries_seen", "chunk_canaries", "chunks", "ttft", "turn", "value", "values", "not_found", "error_body",
             "name", "flavor")


def op_rows(cols: Columns, where: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
    """The ops matching ``where`` (SQL over view ``o``) as records, in history order, absent fields left out.
    Two steps: the rows are chosen reading only the columns ``where`` names, and only they are read whole
    (in one step every field of every row was read: 0.6 s of a 1M check for the few rows observe wants)."""
    cur = cols.con.execute(f"SELECT seq FROM o WHERE {where} ORDER BY seq", list(params))
    while batch := cur.fetchmany(4096):
        for row in cols.rows(OP_FIELDS, [s for (s,) in batch]):
            yield {"type": "op", **{k: v for k, v in zip(OP_FIELDS, row[1:]) if v is not None}}
