"""Checks of one reply on its own: what a Locust user can decide the moment it arrives.

`check_op(op)` returns (code, detail) pairs; the offline checker adds what needs the
whole history (whose canary it was, sessions over time, read-backs, invariants).
"""
from __future__ import annotations

from typing import Any

from sessionstorm.canary import miscopy_of

CHAT_KINDS = frozenset({"chat", "chat_stream"})


def is_expired(error: str | None) -> bool:
    return bool(error) and "session expired" in error.lower().replace("_", " ")


def check_op(op: dict[str, Any], expect_canary: bool = True, request_id: str = "forwarded") -> list[tuple[str, str]]:
    """``request_id``: the contract's (``forwarded``: the reply must answer the id sent; ``own``
    and ``none``: not judged per reply; `checker.replies.Replies` judges ``own`` over the run)."""
    outcome = op.get("outcome")
    if outcome == "info":  # unknown outcome: proves nothing either way
        return []
    if outcome == "fail":
        return _check_failure(op)
    if op.get("kind") not in CHAT_KINDS:
        return []
    found = _check_canaries(op, expect_canary)
    asked, served = op.get("model_asked"), op.get("model_served")
    if asked and served and asked != served:
        found.append(("WRONG_MODEL", f"asked {asked}, served by {served}"))
    rid_sent, rid_seen = op.get("request_id_sent"), op.get("request_id_seen")
    if request_id == "forwarded" and rid_sent and rid_seen and rid_sent != rid_seen:
        found.append(("REQUEST_ID_MISMATCH", f"sent {rid_sent}, reply answers {rid_seen}"))
    chunks = op.get("chunk_canaries")
    if chunks:
        distinct = set(map(tuple, filter(None, chunks)))  # the canary sets of the non-empty chunks
        if len(distinct) > 1:
            found.append(("STREAM_INTERLEAVED", f"{len(distinct)} different canary sets across {len(chunks)} chunks"))
    return found


def _check_failure(op: dict[str, Any]) -> list[tuple[str, str]]:
    status, error = op.get("status"), op.get("error")
    if is_expired(error):
        sid = op.get("session_seen") or op.get("session_sent")
        return [("SESSION_EXPIRED_IN_FLIGHT", f"{error} ({f'session {sid}' if sid else 'no session id in the reply'})")]
    if isinstance(status, int) and status >= 500:
        return [("SERVER_ERROR", f"HTTP {status}: {error}; {op.get('in_flight')} in flight")]
    return []


def _check_canaries(op: dict[str, Any], expect_canary: bool) -> list[tuple[str, str]]:
    sent = op.get("canaries_sent") or ()
    seen = op.get("canaries_seen") or []
    sent_set = set(sent)  # also for its TypeError on unhashable canaries, as ever
    if seen and seen == sent:  # the common case: exactly its own canaries came back
        return []
    foreign = [c for c in seen if c not in sent_set]
    if foreign:
        garbled = [c for c in foreign if any(miscopy_of(s, c) for s in sent)]  # a model's typo, not another's
        if len(garbled) < len(foreign):
            return [("CROSSTALK", f"reply carried {', '.join([c for c in foreign if c not in garbled][:3])} (not its own)")]
        if not any(c in sent_set for c in seen) and expect_canary:
            return [("UNATTRIBUTED", f"reply carried only a garbled copy of its canary ({garbled[0]})")]
        return []
    if not seen and expect_canary:
        if not op.get("reply_excerpt") and not op.get("chunks"):
            return [("EMPTY_REPLY", "reply had no content")]
        return [("UNATTRIBUTED", "reply carried no canary")]
    return []
