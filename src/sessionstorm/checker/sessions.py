"""Sessions over time: churn, duplicate fresh sessions, lost conversation context."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sessionstorm.checker.base import Checker, Report, brief, evidence

CHURN_WINDOW_S = 10.0
CONTEXT_DEPTH = 20  # earlier messages checked against each reply's context


class Churn(Checker):
    """More than one session per key (gateway) or user (conversation) within 10 s.

    A new gateway session is expected when the key asked for another model within
    10 s of it (a model switch), so only sessions no switch explains count. The reuse
    ratio is the share of ops that did not need an unexplained new session.
    """

    name = "churn"
    kinds = frozenset({"chat", "chat_stream", "message"})

    def __init__(self, contract: dict[str, Any] | None = None) -> None:
        """``contract``: the profile's [contract] (provider_sessions, max_new_sessions_per_key,
        session_window_s, min_reuse_ratio); a key's provider sessions are judged against it.
        Conversations (per user) keep one session per user within 10 s."""
        from sessionstorm.profile.schema import ContractSection
        known = {k: v for k, v in (contract or {}).items() if k in ContractSection.__dataclass_fields__}
        c = ContractSection(**known)
        self.judged = c.provider_sessions != "per-request"
        self.max_new = c.max_new() or 0      # 0: any number of sessions (pooled without a limit)
        self.window = c.session_window_s
        self.min_reuse = c.min_reuse_ratio
        self.first_seen: dict[tuple[str, str], dict[str, Any]] = {}  # (owner, session) -> brief of first op
        self.models: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.ops = 0

    def op(self, op: dict[str, Any]) -> None:
        session = op.get("session_seen")
        if not session or op.get("outcome") != "ok":
            return
        owner = op.get("key") if op["kind"] != "message" else "user:" + str(op.get("user"))
        if owner is None or not self.judged and op["kind"] != "message":
            return
        self.ops += 1
        t = op.get("invoke_wall") or 0.0
        model = op.get("model_asked")
        if model:
            self.models[owner][int(t // CHURN_WINDOW_S)].add(model)
        k = (owner, session)
        prev = self.first_seen.get(k)
        if prev is None or t < (prev.get("invoke_wall") or 0.0):
            self.first_seen[k] = brief(op)

    def _switching(self, owner: str, t: float) -> bool:
        b = int(t // CHURN_WINDOW_S)
        return len(set().union(*(self.models[owner].get(i, set()) for i in (b - 1, b, b + 1)))) > 1

    def finish(self, report: Report) -> bool | None:
        by_owner: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (owner, _), first in self.first_seen.items():
            by_owner[owner].append(first)
        self.unexplained = 0
        found = False
        for owner, firsts in by_owner.items():
            firsts.sort(key=lambda o: o.get("invoke_wall") or 0.0)
            user = owner.startswith("user:")
            limit, window = (1, CHURN_WINDOW_S) if user else (self.max_new, self.window)
            for i, cur in enumerate(firsts[1:], 1):
                t = cur.get("invoke_wall") or 0.0
                if self._switching(owner, t):
                    continue
                if limit == 1:
                    self.unexplained += 1  # one session per owner: any unexplained new one is invalid
                    found = True
                    prev = firsts[i - 1]
                    if t - (prev.get("invoke_wall") or 0.0) > window:
                        continue
                else:  # more than `limit` sessions first seen within the window
                    recent = [f for f in firsts[:i] if t - (f.get("invoke_wall") or 0.0) <= window]
                    if not limit or len(recent) + 1 <= limit:
                        continue
                    self.unexplained += 1
                    prev = recent[0]
                found = True
                who = owner if user else f"key {owner}"
                allowed = "" if limit == 1 else f" ({len(firsts[:i]) + 1} sessions, the contract allows {limit} per {window:g} s)"
                report("SESSION_CHURN", evidence([prev, cur], f"{who}: new session {cur.get('session_seen')} "
                                                 f"{t - (prev.get('invoke_wall') or 0.0):.2f} s after "
                                                 f"{prev.get('session_seen')}, with no model switch{allowed}"))
        ratio = self.reuse_ratio()
        if self.min_reuse is not None and ratio is not None and ratio < self.min_reuse:
            found = True
            report("SESSION_CHURN", {"ops": [], "detail": f"session reuse ratio {ratio} below the contract's "
                                     f"min_reuse_ratio {self.min_reuse}"})
        return not found

    def reuse_ratio(self) -> float | None:
        return None if not self.ops else round(1 - getattr(self, "unexplained", 0) / self.ops, 4)


class Conversations(Checker):
    """Duplicate fresh sessions among overlapping first messages; context loss across turns."""

    name = "conversations"
    kinds = frozenset({"message"})

    def __init__(self) -> None:
        self.msgs: dict[str, list[tuple[float, float, str, str, int | None, frozenset[str] | None, dict[str, Any]]]] = defaultdict(list)

    def op(self, op: dict[str, Any]) -> None:
        if op.get("outcome") != "ok" or op.get("user") is None:
            return
        values = op.get("values")
        self.msgs[str(op["user"])].append((op.get("invoke_wall") or 0.0, op.get("complete_wall") or 0.0,
                                           op.get("value"), op.get("session_seen"), op.get("turn"),
                                           frozenset(values) if isinstance(values, list) else None, brief(op)))

    def finish(self, report: Report) -> bool | None:
        ok = True
        for user, msgs in self.msgs.items():
            msgs.sort(key=lambda m: m[0])
            fresh = [m for m in msgs if m[4] == 1]
            for i, a in enumerate(fresh):  # two overlapping requests each told "turn 1" of a different session
                for b in fresh[i + 1:]:
                    if b[0] > a[1]:
                        break
                    if a[3] != b[3]:
                        ok = False
                        report("DUPLICATE_ACTIVE_SESSION", evidence([a[6], b[6]], f"user {user}: overlapping first "
                                                                    f"messages got sessions {a[3]} and {b[3]}"))
            for i, m in enumerate(msgs):
                if m[5] is None:
                    continue
                earlier = [p for p in msgs[max(0, i - 4 * CONTEXT_DEPTH):i] if p[1] < m[0] and p[2]][-CONTEXT_DEPTH:]
                missing = [p for p in earlier if p[2] not in m[5]]
                if missing:
                    ok = False
                    report("CONTEXT_LOSS", evidence([missing[-1][6], m[6]], f"user {user}: turn {m[4]} in session "
                                                    f"{m[3]} lacks {len(missing)} acknowledged earlier message(s), "
                                                    f"last from session {missing[-1][3]}"))
        return ok
