"""The anomaly catalogue: stable codes, severities, one-line explanations."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CATALOGUE: dict[str, tuple[str, str]] = {
    "CROSSTALK": ("critical", "a reply carried another request's canary: one user received another user's answer"),
    "UNATTRIBUTED": ("warning", "a reply carried no canary at all, so it cannot be tied to its request"),
    "WRONG_MODEL": ("critical", "the reply was served by a different model than the one asked for"),
    "REQUEST_ID_MISMATCH": ("critical", "the reply answers a different request id than the one sent"),
    "STREAM_INTERLEAVED": ("critical", "the chunks of one stream belong to different requests"),
    "EMPTY_REPLY": ("error", "a successful reply had no content"),
    "DUPLICATE_ACTIVE_SESSION": ("critical", "concurrent get-or-create for one user or key gave out different fresh sessions"),
    "SESSION_CHURN": ("error", "sessions were re-created where one should have been reused"),
    "CONTEXT_LOSS": ("critical", "a conversation lost earlier turns: acknowledged messages are missing from its context"),
    "SPURIOUS_NOT_FOUND": ("critical", "the service answered 'not found' for a session it had created and not deleted"),
    "LOST_WRITE": ("critical", "an acknowledged write is missing from a later read-back"),
    "SERVER_ERROR": ("error", "the service answered 5xx"),
    "SESSION_EXPIRED_IN_FLIGHT": ("error", "a request failed with 'session expired' on a session the client never closed"),
    "INVARIANT_VIOLATED": ("critical", "a database invariant of the target profile does not hold"),
    "SPLIT_ENDPOINT": ("error", "the target's name or port reaches more than one server: their fingerprints differ"),
    "THRESHOLD_BREACHED": ("error", "a latency, error-rate, unknown-rate or reuse threshold was exceeded"),
    "NOT_RECOVERED": ("error", "after a fault ended, an operation kind still failed past the recovery grace"),
    "UNAVAILABLE": ("error", "no operation of a kind succeeded: the service refused, failed or rejected every one"),
}
CODES = tuple(CATALOGUE)
MAX_EVIDENCE = 50  # evidence kept per code; counts stay exact


@dataclass(slots=True)
class Finding:
    code: str
    evidence: dict[str, Any]


@dataclass(slots=True)
class Tally:
    """Findings of one code: an exact count and the first MAX_EVIDENCE pieces of evidence."""

    count: int = 0
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def add(self, evidence: dict[str, Any]) -> None:
        self.count += 1
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append(evidence)


def describe(code: str, tally: Tally) -> dict[str, Any]:
    severity, explanation = CATALOGUE.get(code, ("high", "reported by a checker plugin"))
    return {"code": code, "severity": severity, "explanation": explanation, "count": tally.count,
            "evidence": tally.evidence}
