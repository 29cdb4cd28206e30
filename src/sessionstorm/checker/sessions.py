"""Sessions over time: churn, duplicate fresh sessions, lost conversation context."""
from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sessionstorm.checker.base import Checker, Report, brief, briefs, evidence, op_rows

if TYPE_CHECKING:
    from sessionstorm.columns import Columns

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

    def scan(self, cols: Columns) -> None:
        """What `op` keeps, by SQL: the op count, models asked per owner and 10 s bucket, and the
        first op of each (owner, session), the dicts filled in order of first appearance."""
        kinds = tuple(sorted(self.kinds))
        judged = "true" if self.judged else "kind = 'message'"
        churn_ops = (  # a subquery, not a view: no statement of its own
            "(SELECT * FROM (SELECT seq, session_seen, model_asked, coalesce(invoke_wall, 0.0) AS t, "
            "CASE WHEN kind = 'message' THEN 'user:' || coalesce(\"user\", 'None') ELSE \"key\" END AS owner "
            f"FROM o WHERE kind IN {kinds} AND session_seen <> '' AND outcome = 'ok' AND ({judged})) WHERE owner IS NOT NULL)")
        # int(t // 10) as Python computes it: floor((t - fmod(t, 10)) / 10), rounded (t >= 0)
        bucket = (f"CASE WHEN t >= 0 THEN round((t - fmod(t, {CHURN_WINDOW_S})) / {CHURN_WINDOW_S}) "
                  f"ELSE floor(t / {CHURN_WINDOW_S}) END::BIGINT")
        for owner, b, model in cols.con.execute(
                f"SELECT owner, {bucket} AS b, model_asked FROM {churn_ops} WHERE model_asked <> '' GROUP BY ALL").fetchall():
            self.models[owner][b].add(model)
        firsts = cols.con.execute(f"SELECT owner, session_seen, arg_min(seq, (t, seq)), count(*) FROM {churn_ops} "
                                  "GROUP BY ALL ORDER BY min(seq)").fetchall()
        self.ops += sum(n for *_, n in firsts)  # the op count, from the same pass
        found = briefs(cols, (seq for _, _, seq, _ in firsts))
        for owner, session, seq, _ in firsts:
            self.first_seen[(owner, session)] = found[seq]

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
        self.losses: list[Loss] | None = None  # context losses found by `scan` (SQL); None: found by `finish`

    def op(self, op: dict[str, Any]) -> None:
        if op.get("outcome") != "ok" or op.get("user") is None:
            return
        values = op.get("values")
        self.msgs[str(op["user"])].append((op.get("invoke_wall") or 0.0, op.get("complete_wall") or 0.0,
                                           op.get("value"), op.get("session_seen"), op.get("turn"),
                                           frozenset(values) if isinstance(values, list) else None, brief(op)))

    def scan(self, cols: Columns) -> None:
        """Only first messages (turn 1) reach `op`; context loss is one SQL query: each message's
        CONTEXT_DEPTH latest earlier acknowledged messages, among the 4 x CONTEXT_DEPTH before it,
        whose value its context lacks."""
        acked = "kind = 'message' AND outcome = 'ok' AND \"user\" IS NOT NULL"
        for (user,) in cols.con.execute(f'SELECT "user" FROM o WHERE {acked} GROUP BY 1 ORDER BY min(seq)').fetchall():
            self.msgs[user] = []  # users in order of first appearance, as `op` meets them
        for op in op_rows(cols, f"{acked} AND turn = 1"):
            self.op({**op, "values": None})  # its context is judged below, with every message
        rows = cols.con.execute(f"""
            WITH m AS (
              SELECT seq, "user" AS u, coalesce(invoke_wall, 0.0) AS t0, coalesce(complete_wall, 0.0) AS t1,
                     "value" AS v, "values" AS vs, min(seq) OVER (PARTITION BY "user") AS first,
                     row_number() OVER (PARTITION BY "user" ORDER BY coalesce(invoke_wall, 0.0), seq) AS rn
              FROM o WHERE kind = 'message' AND outcome = 'ok' AND "user" IS NOT NULL),
            pairs AS (
              SELECT a.seq AS mseq, a.first, a.rn, b.seq AS pseq, b.rn AS prn, NOT list_contains(a.vs, b.v) AS miss,
                     row_number() OVER (PARTITION BY a.seq ORDER BY b.rn DESC) AS k
              FROM m a JOIN m b ON b.u = a.u AND b.rn >= a.rn - {4 * CONTEXT_DEPTH} AND b.rn < a.rn
                                AND b.t1 < a.t0 AND b.v <> ''
              WHERE a.vs IS NOT NULL)
            SELECT mseq, arg_max(pseq, prn) FILTER (WHERE miss), count(*) FILTER (WHERE miss) AS n
            FROM pairs WHERE k <= {CONTEXT_DEPTH} GROUP BY mseq, first, rn HAVING n > 0 ORDER BY first, rn""").fetchall()
        found = briefs(cols, (seq for row in rows for seq in row[:2]))
        self.losses = [(found[m], found[last], n) for m, last, n in rows]

    def _losses(self) -> list[Loss]:
        out = []
        for msgs in self.msgs.values():
            for i, m in enumerate(msgs):
                if m[5] is None:
                    continue
                earlier = [p for p in msgs[max(0, i - 4 * CONTEXT_DEPTH):i] if p[1] < m[0] and p[2]][-CONTEXT_DEPTH:]
                missing = [p for p in earlier if p[2] not in m[5]]
                if missing:
                    out.append((m[6], missing[-1][6], len(missing)))
        return out

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
        for m, last, n in self._losses() if self.losses is None else self.losses:
            ok = False
            report("CONTEXT_LOSS", evidence([last, m], f"user {m['user']}: turn {m['turn']} in session "
                                            f"{m['session_seen']} lacks {n} acknowledged earlier message(s), "
                                            f"last from session {last['session_seen']}"))
        return ok


Loss = tuple[dict[str, Any], dict[str, Any], int]  # (message brief, brief of the last missing one, how many missing)
