"""Checks of one reply on its own: what a Locust user can decide the moment it arrives.

`check_op(op)` returns (code, detail) pairs; the offline checker adds what needs the
whole history (whose canary it was, sessions over time, read-backs, invariants).
"""
from __future__ import annotations

from typing import Any

CHAT_KINDS = frozenset({"chat", "chat_stream"})


def is_expired(error: str | None) -> bool:
    return bool(error) and "session expired" in error.lower().replace("_", " ")


def check_op(op: dict[str, Any], expect_canary: bool = True) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    outcome, status, error = op.get("outcome"), op.get("status"), op.get("error")
    if outcome == "info":  # unknown outcome: proves nothing either way
        return found
    if outcome == "fail":
        if is_expired(error):
            found.append(("SESSION_EXPIRED_IN_FLIGHT", f"{error} (session {op.get('session_seen') or op.get('session_sent')})"))
        elif isinstance(status, int) and status >= 500:
            found.append(("SERVER_ERROR", f"HTTP {status}: {error}; {op.get('in_flight')} in flight"))
        return found
    if op.get("kind") not in CHAT_KINDS:
        return found
    sent = set(op.get("canaries_sent") or ())
    seen = op.get("canaries_seen") or []
    foreign = [c for c in seen if c not in sent]
    if foreign:
        found.append(("CROSSTALK", f"reply carried {', '.join(foreign[:3])} (not its own)"))
    elif not seen and expect_canary:
        if not op.get("reply_excerpt") and not op.get("chunks"):
            found.append(("EMPTY_REPLY", "reply had no content"))
        else:
            found.append(("UNATTRIBUTED", "reply carried no canary"))
    asked, served = op.get("model_asked"), op.get("model_served")
    if asked and served and asked != served:
        found.append(("WRONG_MODEL", f"asked {asked}, served by {served}"))
    rid_sent, rid_seen = op.get("request_id_sent"), op.get("request_id_seen")
    if rid_sent and rid_seen and rid_sent != rid_seen:
        found.append(("REQUEST_ID_MISMATCH", f"sent {rid_sent}, reply answers {rid_seen}"))
    chunks = op.get("chunk_canaries")
    if chunks:
        distinct = {tuple(c) for c in chunks if c}
        if len(distinct) > 1:
            found.append(("STREAM_INTERLEAVED", f"{len(distinct)} different canary sets across {len(chunks)} chunks"))
    return found
