"""The conversation flavor: ``POST /v1/conversations/{user_id}/messages``.

A ``message`` op sends one turn; value = its canary. The reply's ``turn`` and
``session_id`` are recorded, and ``values`` = the canaries of the context the
service says it holds, in order: a turn missing from it is context loss, another
user's canary in it is crosstalk.
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

FLAVOR = "conversation"


def build_message(profile: Profile, prompts: PromptMaker, user_id: str, *, key: str | None = None) -> Request:
    if (spec := profile.op_for("message")) is not None:
        return declared.build(spec, profile, prompts, key=key, user=user_id)
    op = new_op("message", FLAVOR, key=key, user=user_id)
    text = prompts.message(op["canaries_sent"][0])
    op["value"], op["prompt_excerpt"] = op["canaries_sent"][0], excerpt(text)
    headers = {"Content-Type": "application/json", **profile.auth_headers(key)}
    if profile.target.request_id_header:
        headers[profile.target.request_id_header] = op["id"]
        op["request_id_sent"] = op["id"]
    body = orjson.dumps({"content": text})
    return declared.identified(Request("POST", profile.path("message", user_id=user_id), headers, body, op), profile)


def parse(op: dict[str, Any], status: int, headers: Headers | None, body: bytes | str | None) -> dict[str, Any]:
    h, doc, text = read_reply(op, status, headers, body)
    if op["outcome"] != "ok":
        return op
    if not isinstance(doc, dict):
        op["error"] = "reply is not a JSON object"
        return op
    op["session_seen"] = doc.get("session_id") or h.get("x-session-id")
    op["turn"] = doc.get("turn")
    op["canaries_seen"] = find_canaries(text)
    context = doc.get("context")
    if isinstance(context, list):
        op["values"] = [c for item in context
                        for c in find_canaries(item if isinstance(item, str) else orjson.dumps(item).decode())]
    else:
        op["error"] = "reply has no context list"
    return op
