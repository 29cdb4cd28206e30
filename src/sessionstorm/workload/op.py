"""A request as data, the op record skeleton it starts, and how a reply ends it.

Free of any I/O library: a driver (httpx, Locust's FastHttpUser, ...) sends
``Request.method/path/headers/body``, stamps times and the peer address on ``op``,
then hands status, headers and body bytes to the flavor's parser.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sessionstorm.canary import canary_for, new_op_id
from sessionstorm.history import fingerprint

EXCERPT = 160
SERVER_HEADER = "x-sessionstorm-server"

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(slots=True)
class Request:
    """What to send, and the op record (a dict in the history schema) it fills."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    op: dict[str, Any]
    # A declared operation's own reply parser (op, status, headers, body) and stream reader
    # factory (op) -> object with begin/feed/finish; None: the kind's (workload.PARSERS).
    parse: Any = None
    stream: Any = None

    @property
    def canary(self) -> str:
        return self.op["canaries_sent"][0]


def new_op(kind: str, flavor: str, *, key: str | None = None, user: str | None = None, **fields: Any) -> dict[str, Any]:
    """The skeleton of an op record: its id, its canary, and what the builder knows."""
    op_id = new_op_id()
    return {"id": op_id, "kind": kind, "flavor": flavor, "key": fingerprint(key), "user": user,
            "canaries_sent": [canary_for(op_id)], **fields}


def start(op: dict[str, Any], in_flight: int | None = None) -> None:
    """Stamp the invoke times (call right before sending)."""
    op["invoke_wall"], op["invoke_mono"] = time.time(), time.monotonic()
    if in_flight is not None:
        op["in_flight"] = in_flight


def complete(op: dict[str, Any]) -> dict[str, Any]:
    op["complete_wall"], op["complete_mono"] = time.time(), time.monotonic()
    return op


class Lowered(dict):  # type: ignore[type-arg]
    """Headers already keyed by lower-cased name (what a driver read them into): `lower_headers`
    copies them as they are (a plain dict: lookups in a dict subclass cost more than the copy)."""

    __slots__ = ()


def lower_headers(headers: Headers | None) -> dict[str, str]:
    """Header names lower-cased, whatever mapping type the HTTP client returns."""
    if headers is None:
        return {}
    if type(headers) is Lowered:
        return dict(headers)
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k).lower(): str(v) for k, v in items}


def outcome_for(status: int) -> str:
    """2xx ok, 4xx/5xx fail (the server answered: definite), except 504, which says the
    server itself does not know whether the work happened."""
    if 200 <= status < 300:
        return "ok"
    return "info" if status == 504 else "fail"


def apply_status(op: dict[str, Any], status: int, headers: Mapping[str, str]) -> None:
    """Fields every flavor fills the same way from the status line and headers."""
    op["status"] = status
    op["outcome"] = outcome_for(status)
    op["server_id"] = headers.get(SERVER_HEADER)


def decode_json(body: bytes | str | None) -> Any:
    """The body as JSON, or None when it is empty or not JSON."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def error_text(doc: Any, body: bytes | str | None) -> str:
    """The server's own error words: ``error`` / ``detail`` / ``message`` of a JSON body, else the raw text."""
    if isinstance(doc, dict):
        for name in ("error", "detail", "message"):
            v = doc.get(name)
            if isinstance(v, dict):  # OpenAI: {"error": {"message": ..., "code": ...}}
                v = v.get("code") or v.get("message")
            if v:
                return str(v)[:EXCERPT]
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    return text.strip()[:EXCERPT] or "empty body"


def transport_error(op: dict[str, Any], exc: BaseException, *, sent: bool) -> dict[str, Any]:
    """Record a failure below HTTP. ``sent=False`` (never connected) is a definite fail;
    once the request may have reached the server (timeout, reset) the outcome is info."""
    op["error"] = f"{type(exc).__name__}: {exc}"[:EXCERPT] if str(exc) else type(exc).__name__
    op["outcome"] = "info" if sent else "fail"
    return op


def excerpt(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def read_reply(op: dict[str, Any], status: int, headers: Headers | None,
               body: bytes | str | None) -> tuple[dict[str, str], Any, str]:
    """What every JSON flavor's parser starts with: status fields, the decoded body, its
    text and excerpt; on a failed status the server's error words go into ``op["error"]``."""
    h = lower_headers(headers)
    apply_status(op, status, h)
    doc = decode_json(body)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    op["reply_excerpt"] = excerpt(text)
    if op["outcome"] != "ok":
        op["error"] = error_text(doc, body)
    return h, doc, text
