"""Did the run verify anything? Outcomes per operation kind, and what a down service looks like.

A run is CLEAN only if every operation kind it ran has verified ``ok`` operations. A kind
with none is either a finding (``UNAVAILABLE``: the service answered, or refused, and
nothing succeeded: a 401 to everything, a dead port) or unknown (every outcome was
``info``: the service never answered in time, so nothing was proved either way).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from sessionstorm.checker.base import Checker, Report, briefs, evidence

if TYPE_CHECKING:
    from sessionstorm.columns import Columns


class Availability(Checker):
    name = "availability"

    def __init__(self) -> None:
        self.outcomes: dict[str, Counter[str]] = defaultdict(Counter)   # kind -> outcome -> n
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)   # kind -> "HTTP 401" / "refused" -> n
        self.samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.reasons: list[str] = []
        self.peers: dict[str, Counter[str]] = defaultdict(Counter)  # real peer -> outcome / "HTTP 404" -> n

    def scan(self, cols: Columns) -> None:
        """Counts per kind, peer and status (failures inside fault windows left out); Counters filled in
        order of first appearance, so ties rank as they did when ops were fed one by one."""
        rows = cols.con.execute(
            "SELECT coalesce(nullif(kind, ''), '?'), coalesce(outcome, 'info') AS oc, coalesce(nullif(peer, ''), 'not connected'), "
            "CASE WHEN oc <> 'ok' THEN CASE WHEN status IS NOT NULL AND status <> 0 THEN 'HTTP ' || status "
            "ELSE coalesce(nullif(transport, ''), 'no reply') END END, count(*) "
            "FROM o WHERE NOT excused GROUP BY ALL ORDER BY min(seq)").fetchall()
        for kind, outcome, peer_name, what, n in rows:
            self.outcomes[kind][outcome] += n
            peer = self.peers[peer_name]
            peer[outcome] += n
            if what is not None:
                self.statuses[kind][what] += n
                peer[what] += n
        first = cols.con.execute(
            "SELECT k, seq FROM (SELECT coalesce(nullif(kind, ''), '?') AS k, seq, row_number() OVER (PARTITION BY k ORDER BY seq) AS i "
            "FROM o WHERE NOT excused AND coalesce(outcome, 'info') <> 'ok') WHERE i <= 3 ORDER BY seq").fetchall()
        found = briefs(cols, (seq for _, seq in first))
        for kind, seq in first:
            self.samples[kind].append(found[seq])

    def by_peer(self) -> dict[str, dict[str, Any]]:
        """Outcomes per real peer: a second server behind one name shows as its own row."""
        return {p: {"ok": c["ok"], "fail": c["fail"], "info": c["info"],
                    "statuses": ", ".join(f"{n} {s}" for s, n in c.most_common() if s not in ("ok", "fail", "info"))}
                for p, c in sorted(self.peers.items())}

    def verified(self) -> int:
        return sum(c["ok"] for c in self.outcomes.values())

    def finish(self, report: Report) -> bool | None:
        if not self.outcomes:
            self.reasons.append("no operation was recorded")
            return None
        ok: bool | None = True
        for kind, counts in sorted(self.outcomes.items()):
            if counts["ok"]:
                continue
            what = ", ".join(f"{n} {s}" for s, n in self.statuses[kind].most_common(4))
            if counts["fail"]:
                report("UNAVAILABLE", evidence(self.samples[kind], f"no {kind} operation succeeded: {what}",
                                               kind=kind, outcomes=dict(counts), statuses=dict(self.statuses[kind])))
                ok = False
            else:
                self.reasons.append(f"no {kind} operation was verified: all {counts['info']} had an unknown outcome ({what})")
                ok = None if ok is True else ok
        return ok
