"""The OpenAI-compatible chat gateway flavor: ``POST /v1/chat/completions``, JSON and SSE.

What the reply proves is read from the content first (the stub provider's echo line
names the model, session and request it really served), then from headers
(``X-Session-ID``, ``X-Request-ID``) and the JSON ``model`` field.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from sessionstorm.canary import Echo, canary_for, find_canaries, new_op_id, parse_echo
from sessionstorm.history import fingerprint
from sessionstorm.workload import declared
from sessionstorm.workload.op import (
    Headers,
    Lowered,
    Request,
    apply_status,
    decode_json,
    error_text,
    excerpt,
    lower_headers,
    transport_error,
)
from sessionstorm.workload.sse import SSEDecoder, StreamStats

if TYPE_CHECKING:
    from sessionstorm.profile import Profile
    from sessionstorm.workload.prompts import PromptMaker

FLAVOR = "gateway"


def build_chat(profile: Profile, prompts: PromptMaker, *, key: str | None, model: str,
               user: str | None = None, stream: bool = False, max_tokens: int = 64) -> Request:
    t = _template(profile, key, model, stream, max_tokens)
    if t.spec is not None:  # a declared [ops.*] operation
        return declared.build(t.spec, profile, prompts, key=key, user=user, model=model, stream=stream)
    op_id = new_op_id()
    canary = canary_for(op_id)
    parts = getattr(prompts, "chat_parts", None)
    if parts is not None:
        prompt, prompt_j = parts(canary)
    else:  # any other prompt maker: its text, encoded here
        prompt = prompts.chat(canary)
        prompt_j = orjson.dumps(prompt)[1:-1]
    op = {"id": op_id, "kind": t.kind, "flavor": FLAVOR, "key": t.key, "user": user, "canaries_sent": [canary],
          "model_asked": model, "prompt_excerpt": excerpt(prompt)}
    headers = t.headers.copy()
    if t.request_id_header:
        headers[t.request_id_header] = op_id
        op["request_id_sent"] = op_id
    # The body: orjson.dumps({"model", "messages": [{"role", "content": prompt}], "max_tokens", "stream"}),
    # byte for byte, spliced around the prompt's escape (tests/workload/test_request_template.py holds them equal).
    req = Request("POST", t.path, headers, t.head + prompt_j + t.tail, op)
    return declared.identified(req, profile) if t.identified else req


class _Template:
    """What every chat request of one (profile, key, model, stream, max_tokens) shares."""

    __slots__ = ("head", "headers", "identified", "key", "kind", "path", "profile", "request_id_header", "spec", "tail")

    def __init__(self, profile: Profile, key: str | None, model: str, stream: bool, max_tokens: int) -> None:
        self.profile = profile  # held: the cache is keyed by its id
        self.spec = profile.op_for("chat")
        self.kind = "chat_stream" if stream else "chat"
        self.key = fingerprint(key)
        headers = {"Content-Type": "application/json", **profile.auth_headers(key)}
        if stream:
            headers["Accept"] = "text/event-stream"
        self.headers = headers
        self.request_id_header = profile.target.request_id_header
        self.path = profile.path("chat")
        mark = "\x00prompt\x00"
        body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": mark}],
                             "max_tokens": max_tokens, "stream": stream})
        self.head, found, self.tail = body.partition(orjson.dumps(mark)[1:-1])
        assert found, "the prompt's place in the request body"
        self.identified = bool(profile.target.identity_header)


_TEMPLATES: dict[tuple[int, str | None, str, bool, int], _Template] = {}


def _template(profile: Profile, key: str | None, model: str, stream: bool, max_tokens: int) -> _Template:
    k = (id(profile), key, model, stream, max_tokens)
    t = _TEMPLATES.get(k)
    if t is None or t.profile is not profile:
        if len(_TEMPLATES) >= 4096:  # a long-lived process with ever new profiles or keys: start over
            _TEMPLATES.clear()
        t = _TEMPLATES[k] = _Template(profile, key, model, stream, max_tokens)
    return t


def _content(doc: Any) -> str | None:
    """``choices[0].message.content`` (or ``.delta.content`` of a chunk), if any."""
    try:
        choice = doc["choices"][0]
        part = choice.get("message") or choice.get("delta") or {}
        return part.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _fill_reply(op: dict[str, Any], h: dict[str, str], text: str, echo: Echo | None, json_model: Any) -> None:
    op["canaries_seen"] = find_canaries(text)
    op["model_served"] = (echo.model if echo and echo.model else None) or (json_model if isinstance(json_model, str) else None)
    op["session_seen"] = h.get("x-session-id") or (echo.session if echo else None)
    # The echo names the request the provider answered: what the user really got.
    op["request_id_seen"] = (echo.request_id if echo and echo.request_id else None) or h.get("x-request-id")
    op["reply_excerpt"] = excerpt(text)


def parse_chat(op: dict[str, Any], status: int, headers: Headers | None, body: bytes | str | None) -> dict[str, Any]:
    """Fill ``op`` from a complete (non-streamed) reply."""
    h = headers if type(headers) is Lowered else lower_headers(headers)  # a driver's own lowered copy: read as is
    apply_status(op, status, h)
    doc = decode_json(body)
    if op["outcome"] != "ok":
        op["error"] = error_text(doc, body)
        op["session_seen"] = h.get("x-session-id")
        return op
    content = _content(doc)
    if content is None:  # not an OpenAI reply: still look for canaries in what came back
        content = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
        op["error"] = "reply has no choices[0].message.content"
    _fill_reply(op, h, content, parse_echo(content), doc.get("model") if isinstance(doc, dict) else None)
    return op


class ChatStream:
    """Accumulates one streamed reply. ``begin`` with the status and headers, ``feed``
    body pieces with their arrival time (monotonic), ``finish`` once (with the transport
    error, if the stream broke)."""

    MAX_ERROR_BODY = 4096

    def __init__(self, op: dict[str, Any], t0: float | None = None) -> None:
        self.op = op
        self.stats = StreamStats(t0 if t0 is not None else op.get("invoke_mono", 0.0))
        self.decoder = SSEDecoder()
        self.headers: dict[str, str] = {}
        self.done = False
        self.model: str | None = None
        self.errors: list[str] = []
        self._raw = b""

    def begin(self, status: int, headers: Headers | None) -> None:
        self.headers = lower_headers(headers)
        apply_status(self.op, status, self.headers)

    def feed(self, data: bytes, now: float) -> None:
        if self.op["outcome"] != "ok":
            self._raw = (self._raw + data)[: self.MAX_ERROR_BODY]
            return
        for event in self.decoder.feed(data):
            self._event(event, now)

    def _event(self, data: str, now: float) -> None:
        if data.strip() == "[DONE]":
            self.done = True
            return
        doc = decode_json(data)
        if not isinstance(doc, dict):
            self.errors.append(f"undecodable event: {data[:60]}")
            return
        if "error" in doc:
            self.errors.append(error_text(doc, data))
        self.model = self.model or doc.get("model")
        text = _content(doc)
        if text:
            self.stats.add(text, now)

    def finish(self, error: BaseException | None = None) -> dict[str, Any]:
        op, stats = self.op, self.stats
        if op["outcome"] != "ok":
            op["error"] = error_text(decode_json(self._raw), self._raw)
            op["session_seen"] = self.headers.get("x-session-id")
            return op
        for event in self.decoder.close():
            self._event(event, stats.times[-1] if stats.times else stats.t0)
        text = stats.text
        _fill_reply(op, self.headers, text, parse_echo(stats.texts[0]) if stats.texts else None, self.model)
        op.update(chunk_canaries=stats.chunk_canaries, chunks=stats.chunks, ttft=stats.ttft, chunk_gaps=stats.gaps)
        if error is not None:
            return transport_error(op, error, sent=True)
        if self.errors:
            op["error"] = "; ".join(self.errors)[:200]
        elif not self.done:
            op["error"], op["outcome"] = "stream ended before data: [DONE]", "info"
        return op


def parse_chat_stream(op: dict[str, Any], status: int, headers: Headers | None,
                      pieces: Any, t0: float | None = None) -> dict[str, Any]:
    """Parse a whole stream from an iterable of ``(bytes, monotonic_time)`` pieces."""
    s = ChatStream(op, t0)
    s.begin(status, headers)
    for data, now in pieces:
        s.feed(data, now)
    return s.finish()
