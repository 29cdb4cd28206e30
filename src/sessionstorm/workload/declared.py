"""Declared operations: requests built from a profile's ``[ops.NAME]`` templates, replies
read with JMESPath. Free of I/O, like every builder and parser here.

The op recorded is the check family's history kind (``create_session``, ``observe``,
``read_session``, ``delete_session``, ``chat``/``chat_stream``, ``message``) with
``name`` = the declared operation's name, so every checker applies unchanged. A reply
field is a JMESPath expression into the JSON reply, or ``header:NAME``. Hooks:
``build = "module:function"`` is called as ``f(spec, values, op)`` and returns a mapping
with any of method, path, headers, body (the rest comes from the spec); ``parse =
"module:function"`` is called as ``f(spec, op, status, headers, body)`` after the status
is applied, and fills the op itself.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

import orjson

from sessionstorm.canary import find_canaries, parse_echo
from sessionstorm.profile.load import resolve_hook
from sessionstorm.profile.templates import base_values, fill, fill_tree
from sessionstorm.workload.op import (
    SERVER_HEADER,
    Headers,
    Request,
    decode_json,
    error_text,
    excerpt,
    lower_headers,
    new_op,
    outcome_for,
    transport_error,
)
from sessionstorm.workload.sse import SSEDecoder, StreamStats

if TYPE_CHECKING:
    from sessionstorm.profile.schema import OpSpec, Profile
    from sessionstorm.workload.prompts import PromptMaker

NOT_FOUND = "SESSION_NOT_FOUND"


@lru_cache(maxsize=256)
def _compiled(expr: str) -> Any:
    import jmespath
    return jmespath.compile(expr)


def pick(expr: str | None, doc: Any, headers: Mapping[str, str]) -> Any:
    """A reply field: ``header:NAME`` or a JMESPath into the decoded JSON (None when absent)."""
    if not expr:
        return None
    if expr.startswith("header:"):
        return headers.get(expr[7:].strip().lower())
    if doc is None:
        return None
    return _compiled(expr).search(doc)


def _prompt(spec: OpSpec, prompts: PromptMaker | None, canary: str) -> str:
    if prompts is None:
        return canary
    return {"chat": prompts.chat, "write": prompts.observation, "message": prompts.message}.get(
        spec.kind, lambda c: c)(canary)


def build(spec: OpSpec, profile: Profile, prompts: PromptMaker | None = None, *, key: str | None = None,
          user: str | None = None, session_id: str | None = None, model: str | None = None,
          stream: bool = False) -> Request:
    """The request of a declared operation, and its op record skeleton."""
    kind = "chat_stream" if stream else spec.history_kind
    fields: dict[str, Any] = {"name": spec.name}
    if session_id is not None:
        fields["session_sent"] = session_id
    if model is not None:
        fields["model_asked"] = model
    op = new_op(kind, spec.flavor, key=key, user=user, **fields)
    canary = op["canaries_sent"][0]
    prompt = _prompt(spec, prompts, canary)
    if spec.kind in ("write", "message"):
        op["value"] = canary
    if prompt != canary:
        op["prompt_excerpt"] = excerpt(prompt)
    values = {**base_values(), **profile.target.vars, "canary": canary, "prompt": prompt, "session_id": session_id,
              "user": user or f"sessionstorm-{op['id'][:8].lower()}", "user_id": user, "key": key, "model": model, "op_id": op["id"], "request_id": op["id"]}
    where = f"ops.{spec.name}"
    method, path = spec.method.upper(), fill(spec.path, values, f"{where}.path", url_quote=True)
    headers = {**profile.auth_headers(key), **{k: fill(v, values, f"{where}.headers.{k}") for k, v in spec.headers.items()}}
    body_tree = spec.body
    if stream and spec.stream is not None and spec.stream.body is not None:
        body_tree = spec.stream.body
    body_tree = fill_tree(body_tree, values, f"{where}.body")
    if stream and isinstance(body_tree, dict) and isinstance(body_tree.get("stream"), bool):
        body_tree["stream"] = True
    if spec.build:
        made = resolve_hook(spec.build, f"{where}.build")(spec, values, op) or {}
        method, path = made.get("method", method), made.get("path", path)
        headers, body_tree = {**headers, **made.get("headers", {})}, made.get("body", body_tree)
    if isinstance(body_tree, (dict, list)):
        body: bytes | None = orjson.dumps(body_tree)
        if not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = "application/json"
    elif isinstance(body_tree, str):
        body = body_tree.encode()
    elif isinstance(body_tree, bytes):
        body = body_tree
    else:
        body = None
    if stream:
        headers.setdefault("Accept", "text/event-stream" if spec.stream is None or spec.stream.format == "sse"
                           else "application/x-ndjson")
    if profile.target.request_id_header:
        headers[profile.target.request_id_header] = op["id"]
        op["request_id_sent"] = op["id"]
    return Request(method, path, headers, body, op, parse=partial(parse, spec, profile.target.identity_header),
                   stream=partial(DeclaredStream, spec, profile.target.identity_header) if stream else None)


def _status(spec: OpSpec, op: dict[str, Any], status: int, h: Mapping[str, str], identity: str) -> None:
    op["status"] = status
    if spec.ok_status:
        op["outcome"] = "ok" if status in spec.ok_status else ("info" if status == 504 else "fail")
    else:
        op["outcome"] = outcome_for(status)
    op["server_id"] = (h.get(identity.lower()) if identity else None) or h.get(SERVER_HEADER)


def _missing(op: dict[str, Any], spec: OpSpec, key: str, expr: str | None) -> dict[str, Any]:
    """A declared field the reply lacks: the op is not verified (fail), and says where it looked."""
    op["error"] = f"reply has no {key} at {expr!r} ([ops.{spec.name}] {key})"
    op["outcome"] = "fail"
    op["missing"] = key
    return op


def parse(spec: OpSpec, identity: str, op: dict[str, Any], status: int, headers: Headers | None,
          body: bytes | str | None) -> dict[str, Any]:
    """Fill ``op`` from a complete reply to a declared operation."""
    h = lower_headers(headers)
    _status(spec, op, status, h, identity)
    doc = decode_json(body)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    op["reply_excerpt"] = excerpt(text)
    if op["outcome"] != "ok":
        op["error"] = error_text(doc, body)
        if 200 <= status < 300:
            op["error"] = f"status {status} not in ok_status {spec.ok_status} ([ops.{spec.name}] ok_status)"
        nf = spec.not_found
        if nf is not None and status in nf.status and (not nf.contains or nf.contains in text):
            op["not_found"] = True
            op["error"] = f"{NOT_FOUND}: {op['error']}"
        return op
    if spec.parse:
        resolve_hook(spec.parse, f"ops.{spec.name}.parse")(spec, op, status, h, body)
        return op
    fill_fields(spec, op, doc, h, text)
    return op


def fill_fields(spec: OpSpec, op: dict[str, Any], doc: Any, h: Mapping[str, str], text: str,
                events: list[Any] | None = None) -> dict[str, Any]:
    """The family's fields from a reply (``events``: a stream's decoded events, searched in turn)."""
    def get(expr: str | None) -> Any:
        if events is None:
            return pick(expr, doc, h)
        for d in events:
            v = pick(expr, d, h)
            if v is not None:
                return v
        return pick(expr, None, h)

    kind = spec.kind
    if kind == "create":
        sid = get(spec.session_id)
        if sid in (None, ""):
            return _missing(op, spec, "session_id", spec.session_id)
        op["session_seen"] = str(sid)
    elif kind in ("write", "delete"):
        sid = get(spec.session_id) if spec.session_id else None
        op["session_seen"] = str(sid) if sid not in (None, "") else op.get("session_sent")
        op["canaries_seen"] = find_canaries(text)
    elif kind == "read_back":
        sid = get(spec.session_id) if spec.session_id else None
        op["session_seen"] = str(sid) if sid not in (None, "") else op.get("session_sent")
        items = get(spec.canaries)
        if not isinstance(items, list):
            return _missing(op, spec, "canaries", spec.canaries)
        op["values"] = [(find_canaries(i if isinstance(i, str) else orjson.dumps(i).decode()) or [None])[0]
                        for i in items]
        op["canaries_seen"] = [v for v in op["values"] if v]
    elif kind == "chat":
        content = text if events is not None or not spec.text else get(spec.text)
        if content is None:
            return _missing(op, spec, "text", spec.text)
        content = content if isinstance(content, str) else orjson.dumps(content).decode()
        echo = parse_echo(content)
        model, sid, rid = get(spec.model), get(spec.session_id), get(spec.request_id)
        op["canaries_seen"] = find_canaries(content)
        op["model_served"] = (echo.model if echo and echo.model else None) or (str(model) if model else None)
        op["session_seen"] = (str(sid) if sid else None) or h.get("x-session-id") or (echo.session if echo else None)
        op["request_id_seen"] = (echo.request_id if echo and echo.request_id else None) or (str(rid) if rid else None) \
            or h.get("x-request-id")
        op["reply_excerpt"] = excerpt(content)
    elif kind == "message":
        sid, turn, context = get(spec.session_id), get(spec.turn), get(spec.context)
        op["session_seen"] = str(sid) if sid else h.get("x-session-id")
        op["turn"] = turn
        op["canaries_seen"] = find_canaries(text)
        if spec.context:
            if not isinstance(context, list):
                return _missing(op, spec, "context", spec.context)
            op["values"] = [c for item in context
                            for c in find_canaries(item if isinstance(item, str) else orjson.dumps(item).decode())]
    return op


def identified(req: Request, profile: Profile) -> Request:
    """A [paths] (short form) request whose reply records ``target.identity_header`` as its server_id."""
    name = profile.target.identity_header.lower()
    if not name:
        return req

    def parse(op: dict[str, Any], status: int, headers: Headers | None, body: bytes | str | None) -> dict[str, Any]:
        from sessionstorm.workload import PARSERS
        PARSERS[op["kind"]](op, status, headers, body)
        op["server_id"] = lower_headers(headers).get(name) or op.get("server_id")
        return op

    def stream(op: dict[str, Any]) -> Any:
        from sessionstorm.workload.gateway import ChatStream

        class Identified(ChatStream):
            def begin(self, status: int, headers: Headers | None) -> None:
                super().begin(status, headers)
                op["server_id"] = self.headers.get(name) or op.get("server_id")
        return Identified(op)

    req.parse = parse
    if req.op["kind"] == "chat_stream":
        req.stream = stream
    return req


class DeclaredStream:
    """A streamed reply of a declared chat operation (SSE or NDJSON), as `gateway.ChatStream`."""

    MAX_ERROR_BODY = 4096

    def __init__(self, spec: OpSpec, identity: str, op: dict[str, Any], t0: float | None = None) -> None:
        self.spec, self.identity, self.op = spec, identity, op
        self.format = spec.stream.format if spec.stream else "sse"
        self.text_expr = spec.stream.text if spec.stream else "choices[0].delta.content"
        self.done_marker = spec.stream.done if spec.stream else "[DONE]"
        self.stats = StreamStats(t0 if t0 is not None else op.get("invoke_mono", 0.0))
        self.decoder = SSEDecoder()
        self.headers: dict[str, str] = {}
        self.events: list[Any] = []
        self.done = False
        self.errors: list[str] = []
        self._raw = b""
        self._line = b""

    def begin(self, status: int, headers: Headers | None) -> None:
        self.headers = lower_headers(headers)
        _status(self.spec, self.op, status, self.headers, self.identity)

    def _decode(self, data: bytes) -> list[str]:
        if self.format == "sse":
            return self.decoder.feed(data)
        self._line += data
        *lines, self._line = self._line.split(b"\n")
        return [ln.decode("utf-8", "replace") for ln in lines if ln.strip()]

    def feed(self, data: bytes, now: float) -> None:
        if self.op["outcome"] != "ok":
            self._raw = (self._raw + data)[: self.MAX_ERROR_BODY]
            return
        for event in self._decode(data):
            self._event(event, now)

    def _event(self, data: str, now: float) -> None:
        if self.done_marker and data.strip() == self.done_marker:
            self.done = True
            return
        doc = decode_json(data)
        if doc is None:
            self.errors.append(f"undecodable event: {data[:60]}")
            return
        if len(self.events) < 64:  # fields (model, session) are looked up in the first events
            self.events.append(doc)
        text = pick(self.text_expr, doc, {})
        if isinstance(text, str) and text:
            self.stats.add(text, now)

    def finish(self, error: BaseException | None = None) -> dict[str, Any]:
        op, stats = self.op, self.stats
        if op["outcome"] != "ok":
            op["error"] = error_text(decode_json(self._raw), self._raw)
            return op
        rest = self.decoder.close() if self.format == "sse" else ([self._line.decode("utf-8", "replace")]
                                                                 if self._line.strip() else [])
        for event in rest:
            self._event(event, stats.times[-1] if stats.times else stats.t0)
        fill_fields(self.spec, op, None, self.headers, stats.texts[0] if stats.texts else "", events=self.events)
        op["canaries_seen"] = find_canaries(stats.text)
        op["reply_excerpt"] = excerpt(stats.text)
        op.update(chunk_canaries=stats.chunk_canaries, chunks=stats.chunks, ttft=stats.ttft, chunk_gaps=stats.gaps)
        if error is not None:
            return transport_error(op, error, sent=True)
        if self.errors:
            op["error"] = "; ".join(self.errors)[:200]
        elif self.done_marker and not self.done:
            op["error"], op["outcome"] = f"stream ended before {self.done_marker}", "info"
        return op
