"""The session/observe flavor: create a session, append observations, read them back.

Ops: ``create_session`` (session_seen = the id the service acknowledged),
``observe`` (value = the canary written), ``read_session`` (values = canaries read
back, in order), ``delete_session``. A 404 keeps the service's own error code in
``error`` (``SESSION_NOT_FOUND`` vs a routing ``Not Found``), which is what tells a
spurious not-found from a wrong path.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from sessionstorm.canary import find_canaries
from sessionstorm.workload import declared
from sessionstorm.workload.op import (
    Headers,
    Request,
    excerpt,
    new_op,
    read_reply,
)

if TYPE_CHECKING:
    from sessionstorm.profile import Profile
    from sessionstorm.workload.prompts import PromptMaker

FLAVOR = "observe"


def _headers(profile: Profile, key: str | None, op: dict[str, Any], json: bool) -> dict[str, str]:
    h = dict(profile.auth_headers(key))
    if json:
        h["Content-Type"] = "application/json"
    if profile.target.request_id_header:
        h[profile.target.request_id_header] = op["id"]
        op["request_id_sent"] = op["id"]
    return h


def build_create(profile: Profile, *, key: str | None = None, user: str | None = None) -> Request:
    if (spec := profile.op_for("create_session")) is not None:
        return declared.build(spec, profile, key=key, user=user)
    op = new_op("create_session", FLAVOR, key=key, user=user)
    return declared.identified(Request("POST", profile.path("create_session"), _headers(profile, key, op, True), b"{}", op), profile)


def build_observe(profile: Profile, prompts: PromptMaker, session_id: str, *,
                  key: str | None = None, user: str | None = None) -> Request:
    if (spec := profile.op_for("observe")) is not None:
        return declared.build(spec, profile, prompts, key=key, user=user, session_id=session_id)
    op = new_op("observe", FLAVOR, key=key, user=user, session_sent=session_id)
    text = prompts.observation(op["canaries_sent"][0])
    op["value"], op["prompt_excerpt"] = op["canaries_sent"][0], excerpt(text)
    body = orjson.dumps({"observation": text})
    return declared.identified(Request("POST", profile.path("observe", session_id=session_id), _headers(profile, key, op, True), body, op), profile)


def build_read(profile: Profile, session_id: str, *, key: str | None = None, user: str | None = None) -> Request:
    if (spec := profile.op_for("read_session")) is not None:
        return declared.build(spec, profile, key=key, user=user, session_id=session_id)
    op = new_op("read_session", FLAVOR, key=key, user=user, session_sent=session_id)
    return declared.identified(Request("GET", profile.path("read_session", session_id=session_id), _headers(profile, key, op, False), None, op), profile)


def build_delete(profile: Profile, session_id: str, *, key: str | None = None, user: str | None = None) -> Request:
    if (spec := profile.op_for("delete_session")) is not None:
        return declared.build(spec, profile, key=key, user=user, session_id=session_id)
    op = new_op("delete_session", FLAVOR, key=key, user=user, session_sent=session_id)
    return declared.identified(Request("DELETE", profile.path("delete_session", session_id=session_id), _headers(profile, key, op, False), None, op), profile)


def parse(op: dict[str, Any], status: int, headers: Headers | None, body: bytes | str | None) -> dict[str, Any]:
    """Fill any observe-flavor op from its reply."""
    h, doc, text = read_reply(op, status, headers, body)
    if op["outcome"] != "ok":
        return op
    doc = doc if isinstance(doc, dict) else {}
    op["session_seen"] = doc.get("session_id") or h.get("x-session-id") or op.get("session_sent")
    op["canaries_seen"] = find_canaries(text)
    if op["kind"] == "read_session":
        obs = doc.get("observations")
        if not isinstance(obs, list):
            op["error"] = "reply has no observations list"
            return op
        # One entry per observation: its canary (None when it carries none), order kept.
        op["values"] = [(find_canaries(o if isinstance(o, str) else orjson.dumps(o).decode()) or [None])[0] for o in obs]
    elif op["kind"] == "create_session" and not doc.get("session_id"):
        op["error"] = "reply has no session_id"
    return op
