"""Per-reply anomalies over the whole history, and whose canary reached whom."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionstorm.checker.base import Checker, Report, brief, briefs, evidence, op_rows
from sessionstorm.checker.catalogue import MAX_EVIDENCE
from sessionstorm.checker.online import CHAT_KINDS, check_op

if TYPE_CHECKING:
    from sessionstorm.columns import Columns


class Replies(Checker):
    name = "replies"

    def __init__(self, expect_canary: bool = True, unattributed_fails: bool = True, request_id: str = "forwarded") -> None:
        # request_id "own": the gateway mints its ids; a reply's id is wrong only when it provably
        # belongs to another operation (another op sent it, or another reply carried it too).
        self.request_id = request_id
        self.rids_sent: dict[str, str] = {}            # id sent -> op id (own only)
        self.rids_seen: dict[str, str] = {}            # id seen -> the first op carrying it (own only; ids, not
                                                       # records: a soak keeps one short string per op)
        # Against a real LLM a missing canary is usually the model ignoring the instruction:
        # reported, apart from crosstalk, without failing the run.
        self.expect_canary, self.unattributed_fails = expect_canary, unattributed_fails
        self.findings: list[tuple[str, dict[str, Any], str]] = []  # (code, victim brief, detail), capped per code
        self.counts: dict[str, int] = {}
        self.crosstalk: list[tuple[dict[str, Any], list[str]]] = []  # victims kept for attribution

    def op(self, op: dict[str, Any]) -> None:
        if self.request_id == "own":
            self._own_id(op)
        for code, detail in check_op(op, self.expect_canary, self.request_id):
            n = self.counts[code] = self.counts.get(code, 0) + 1
            if n > MAX_EVIDENCE:
                continue
            if code == "CROSSTALK":
                sent = set(op.get("canaries_sent") or ())
                self.crosstalk.append((brief(op), [c for c in op.get("canaries_seen") or () if c not in sent]))
            else:
                self.findings.append((code, brief(op), detail))

    def scan(self, cols: Columns) -> None:
        """`op` fed only the rows `suspects` selects (failures inside fault windows left out)."""
        for op in op_rows(cols, f"NOT excused AND ({suspects(self.request_id)})"):
            self.op(op)

    def _own_id(self, op: dict[str, Any]) -> None:
        if op.get("request_id_sent"):
            self.rids_sent[op["request_id_sent"]] = op["id"]
        rid = op.get("request_id_seen")
        if not rid or op.get("outcome") != "ok" or rid == op.get("request_id_sent"):
            return
        first = self.rids_seen.setdefault(rid, op["id"])
        if first != op["id"]:
            self._flag(op, f"reply carries request id {rid}, already carried by the reply to op {first}")

    def _flag(self, op: dict[str, Any], detail: str) -> None:
        n = self.counts["REQUEST_ID_MISMATCH"] = self.counts.get("REQUEST_ID_MISMATCH", 0) + 1
        if n <= MAX_EVIDENCE:
            self.findings.append(("REQUEST_ID_MISMATCH", brief(op), detail))

    def _own_sent(self) -> None:
        """Replies answering an id another operation sent (known once the whole history is read)."""
        for rid, first in self.rids_seen.items():
            owner = self.rids_sent.get(rid)
            if owner is not None and owner != first:
                self._flag({"id": first}, f"reply to op {first} carries request id {rid}, which op {owner} sent")

    def wanted(self) -> set[str]:
        """Canaries whose owners the evidence must name (a second, rare pass finds them)."""
        return {c for _, foreign in self.crosstalk for c in foreign}

    def resolve(self, owners: dict[str, dict[str, Any]]) -> None:
        self.owners = owners

    def finish(self, report: Report) -> bool | None:
        owners: dict[str, dict[str, Any]] = getattr(self, "owners", {})
        if self.request_id == "own":
            self._own_sent()
        for code, victim, detail in self.findings:
            report(code, evidence([victim], detail))
        for victim, foreign in self.crosstalk:
            sources = [owners[c] for c in foreign if c in owners]
            names = ", ".join(f"{c} (op {owners[c]['id']})" if c in owners else f"{c} (no op of this run)" for c in foreign)
            overlap = _overlap(victim, sources[0]) if sources else None
            report("CROSSTALK", evidence([victim, *sources], f"op {victim['id']} received the answer to {names}",
                                        victim=victim["id"], sources=[s["id"] for s in sources],
                                        canaries=foreign, overlap_s=overlap))
        for code, n in self.counts.items():  # findings beyond the evidence cap still count
            for _ in range(n - min(n, MAX_EVIDENCE)):
                report(code, {})
        return not any(c != "UNATTRIBUTED" or self.unattributed_fails for c in self.counts)


def suspects(request_id: str = "forwarded") -> str:
    """SQL over view ``o``: a conservative prefilter, true for every op on which `op` could find
    something (``check_op`` or, under request_id "own", an id carried twice or sent by another op).
    Conservative is all it must be: `check_op` judges every row it selects (tests/checker/test_prefilter.py)."""
    reply = ["canaries_seen IS NULL", "len(canaries_seen) = 0", "canaries_seen IS DISTINCT FROM canaries_sent",
             "model_asked IS DISTINCT FROM model_served",
             # some chunk unlike the first (cheaper than counting distinct chunks: 0.25 vs 0.4 s at 1M)
             "len(list_filter(chunk_canaries, lambda c: c IS DISTINCT FROM chunk_canaries[1])) > 0"]
    if request_id == "forwarded":
        reply.append("request_id_sent IS DISTINCT FROM request_id_seen")
    where = (f"(outcome = 'fail' AND (error IS NOT NULL OR status >= 500)) OR (outcome IS DISTINCT FROM 'fail' AND "
             f"outcome IS DISTINCT FROM 'info' AND kind IN {tuple(sorted(CHAT_KINDS))} AND ({' OR '.join(reply)}))")
    if request_id == "own":  # replies whose id is not the one sent, and the ops that sent such an id
        carried = ("outcome = 'ok' AND request_id_seen <> '' AND request_id_seen IS DISTINCT FROM request_id_sent "
                   "AND NOT excused")
        where += (f" OR ({carried}) OR request_id_sent IN (SELECT request_id_seen FROM o WHERE {carried})")
    return where


def owners_of(cols: Columns, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The op that sent each wanted canary (the last in history order, as a pass over the files found)."""
    rows = cols.con.execute("SELECT c, max(seq) FROM (SELECT unnest(canaries_sent) AS c, seq FROM o "
                            "WHERE list_has_any(canaries_sent, $1)) WHERE c IN (SELECT unnest($1)) GROUP BY c",
                            [sorted(wanted)]).fetchall()
    found = briefs(cols, (seq for _, seq in rows))
    return {c: found[seq] for c, seq in rows}


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    try:
        return round(min(a["complete_wall"], b["complete_wall"]) - max(a["invoke_wall"], b["invoke_wall"]), 6)
    except (KeyError, TypeError):
        return None
