"""What every checker shares: the interface and how evidence names operations."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Report = Callable[[str, dict[str, Any]], None]  # (code, evidence)


class Checker:
    """Sees every op (of `kinds`) and event once, in history order, then decides.

    `finish` reports findings and returns True (valid), False (anomalies) or None
    (cannot decide). A checker that raises is unknown, never a pass.
    """

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
