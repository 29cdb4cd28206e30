"""The stub provider's ASGI app: a plain router, because the hot path must stay lean
(it has to outrun a Locust worker at least twice over; see bench/provider.py)."""
from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from sessionstorm.canary import find_canaries, format_chunk_tag, format_echo
from sessionstorm.errors import ConfigError
from sessionstorm.provider.catalog import Model, as_models
from sessionstorm.provider.filler import prompt_hash, words
from sessionstorm.provider.sessions import ProviderSession, Registry, exchange, shared_stream
from sessionstorm.provider.settings import DEFAULT_BASIC_AUTH, DEFAULT_MODELS, Settings, check_mode, parse_basic_auth

Send = Callable[[dict[str, Any]], Awaitable[None]]
log = logging.getLogger("sessionstorm.provider")  # unhandled, so Python's last-resort handler prints warnings
MAX_BODY = 4 * 1024 * 1024
TOKENS_PER_CHUNK = 8  # several chunks per reply, so interleaving shows chunk by chunk
EXPIRED = object()  # what a producer yields when its session ended under it
_CONTENT_TAIL = b'},"finish_reason":null}]}\n\n'  # closes what Reply.content_head opens
SERVER_ID = f"provider-{socket.gethostname()}-{os.getpid()}".encode()
FINGERPRINT = "fp_sessionstorm"
# OpenAI error objects carry a machine-readable code; ours follow the status
_CODES = {400: "invalid_request", 404: "not_found", 409: "conflict", 410: "session_expired", 413: "request_too_large",
          422: "invalid_setting", 500: "internal_error", 501: "not_implemented"}

_SESSION_CREATE = re.compile(r"^/blockchain/models/([^/]+)/session$")
_SESSION_CLOSE = re.compile(r"^/blockchain/sessions/([^/]+)/close$")
_SESSION_GET = re.compile(r"^/blockchain/sessions/([^/]+)$")


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def openai_error(e: HTTPError) -> dict[str, Any]:
    """The error object official OpenAI clients parse."""
    kind = "invalid_request_error" if e.status < 500 else "server_error"
    return {"error": {"message": e.message, "type": kind, "param": None, "code": _CODES.get(e.status)}}


def create_app(settings: Settings | None = None, models: tuple[str | Model, ...] = DEFAULT_MODELS,
               seed: int | None = None, mode: str = "openai", basic_auth: str = DEFAULT_BASIC_AUTH,
               state: str | None = None) -> Any:
    provider = Provider(settings or Settings(), as_models(models), seed)
    if state:  # sessions kept in a file: a restarted stub still knows them
        provider.registry = Registry(state)
    if check_mode(mode) == "proxy-router":
        from sessionstorm.provider.router import ProxyRouter  # here: router imports this module
        return ProxyRouter(provider, parse_basic_auth(basic_auth))
    return provider


async def lifespan(receive: Any, send: Send) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


def request_headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


class Provider:
    """The openai mode's app, and the engine (sessions, replies, latency, faults) of every mode."""

    def __init__(self, settings: Settings, models: tuple[Model, ...], seed: int | None) -> None:
        self.settings = settings
        self.catalog = models
        self.models = tuple(m.name for m in models)
        self.registry = Registry()
        self.rng = random.Random(seed)
        self.openai_errors = True  # the proxy-router answers {"error": "..."} on every route

    # -- ASGI -----------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        if scope["type"] != "http":
            return
        headers = request_headers(scope)
        try:
            await self._route(scope, receive, send, headers)
        except HTTPError as e:
            await respond(send, e.status, self.error_doc(scope["path"], e), headers.get("x-request-id"))

    def error_doc(self, path: str, e: HTTPError) -> dict[str, Any]:
        """OpenAI's error object on the OpenAI routes, the session-router's plain one elsewhere."""
        return openai_error(e) if self.openai_errors and path.startswith("/v1/") else {"error": e.message}

    async def _route(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str]) -> None:
        method, path = scope["method"], scope["path"]
        if method == "POST" and path == "/v1/chat/completions":
            return await self.chat(scope, await read_json(receive, headers), send, headers)
        if await self.control(method, path, receive, send, headers):
            return
        if method == "GET" and path == "/v1/models":
            return await respond(send, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "sessionstorm-stub"} for m in self.models]})
        if method == "POST" and (m := _SESSION_CREATE.match(path)):
            return await self.open_session(m[1], await read_json(receive, headers), send)
        if method == "POST" and (m := _SESSION_CLOSE.match(path)):
            s = self.registry.close(m[1])
            if s is None:
                raise HTTPError(404, f"unknown session {m[1]!r}")
            return await respond(send, 200, {"sessionID": s.id, "closed": True})
        if method == "GET" and (m := _SESSION_GET.match(path)):
            s = self.registry.get(m[1])
            if s is None:
                raise HTTPError(404, f"unknown session {m[1]!r}")
            return await respond(send, 200, s.as_dict())
        log.warning("stub provider: no route %s %s, answered 404", method, path)
        raise HTTPError(404, f"no route {method} {path}")

    async def control(self, method: str, path: str, receive: Any, send: Send, headers: dict[str, str]) -> bool:
        """The stub's own routes, in every mode: readiness and run-time faults. True when served."""
        if method == "GET" and path == "/healthz":
            await respond(send, 200, {"ok": True, "sessions": len(self.registry)})
            return True
        if path == "/admin/faults" and method in ("GET", "POST"):
            if method == "POST":
                try:
                    self.settings = self.settings.update(await read_json(receive, headers))
                except (ConfigError, TypeError) as e:
                    raise HTTPError(422, str(e)) from None
            await respond(send, 200, self.settings.as_dict())
            return True
        return False

    # -- session-router -----------------------------------------------------------
    async def open_session(self, model: str, body: Any, send: Send) -> None:
        self._check_model(model)
        duration = body.get("sessionDuration") if isinstance(body, dict) else None
        if isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0:
            raise HTTPError(400, f"sessionDuration={duration!r}: expected a whole number of seconds > 0")
        if self.settings.session_open_ms:  # a real open is slow: the window a racy get-or-create leaves
            await asyncio.sleep(self.settings.session_open_ms / 1000)
        ttl = self.settings.session_ttl_s
        s = self.registry.create(model, min(duration, ttl) if ttl else duration)
        await respond(send, 200, {"sessionID": s.id})

    def _check_model(self, model: Any) -> str:
        if not isinstance(model, str) or not model:
            raise HTTPError(400, "missing 'model': name one of " + ", ".join(self.models))
        if model not in self.models:
            raise HTTPError(404, f"unknown model {model!r}: expected one of {', '.join(self.models)}")
        return model

    # -- chat -----------------------------------------------------------------------
    async def chat(self, scope: dict[str, Any], body: Any, send: Send, headers: dict[str, str]) -> None:
        prompt = chat_prompt(body)
        sid = headers.get("session_id") or headers.get("x-session-id")
        if sid:
            session: ProviderSession | None = self.session_for(sid, headers.get("model_id"))
            model = session.model
        else:
            session, model = None, self._check_model(body.get("model"))
        await self.answer(scope, send, body, prompt, model, session, headers.get("x-request-id"))

    def session_for(self, sid: str, asked_model: str | None) -> ProviderSession:
        """The live session `sid`; `asked_model` (when sent) must be the one it serves."""
        session = self.registry.get(sid)
        if session is None:
            raise HTTPError(404, f"unknown session {sid!r}")
        if not session.live():
            raise HTTPError(410, "session expired")
        if asked_model and asked_model != session.model:
            raise HTTPError(409, f"model_id {asked_model!r} does not match session model {session.model!r}")
        return session

    def inject_faults(self, scope: dict[str, Any]) -> bool:
        """The request-level faults: raises the injected 500; True when the connection was dropped."""
        st = self.settings
        if st.fault_500 and self.rng.random() < st.fault_500:
            raise HTTPError(500, "injected fault: internal error")
        if st.fault_drop and self.rng.random() < st.fault_drop:
            transport = scope.get("extensions", {}).get("sessionstorm.transport")
            if transport is not None:
                transport.abort()  # closed without sending data, as a crashed node does
                return True
        return False

    def first_token_wait(self) -> float:
        st = self.settings
        return (st.ttft_ms + st.delay_ms + self.rng.random() * st.jitter_ms) / 1000

    async def answer(self, scope: dict[str, Any], send: Send, body: dict[str, Any], prompt: str, model: str,
                     session: ProviderSession | None, rid: str | None) -> None:
        """Reply to a validated chat request: the echo, the latency model, the faults, the crosstalk."""
        if self.inject_faults(scope):
            return
        st = self.settings
        sid = session.id if session is not None else None
        h = prompt_hash(prompt)
        n_tokens = st.min_tokens + h % (st.max_tokens - st.min_tokens + 1)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        reply = Reply(model, sid, rid, find_canaries(prompt), n_tokens, h, prompt, include_usage)
        wait_s = self.first_token_wait()
        out_headers = [(b"x-session-id", sid.encode())] if sid else []
        if body.get("stream"):
            cut_after = n_tokens // (2 * TOKENS_PER_CHUNK) if st.fault_cut and self.rng.random() < st.fault_cut else None
            produce = self._stream_chunks(reply, session, wait_s)
            source = shared_stream(session, produce) if session is not None and not rid else produce
            batch = st.token_ms == 0 and source is produce
            return await self._send_stream(scope, send, reply, source, out_headers, cut_after, batch)
        per_token = st.token_ms / 1000

        async def produce_json() -> Any:
            if wait_s or per_token:
                await asyncio.sleep(wait_s + n_tokens * per_token)
            if session is not None and not session.live():
                return EXPIRED
            return reply

        got = await (exchange(session, produce_json) if session is not None and not rid else produce_json())
        if got is EXPIRED:
            raise HTTPError(410, "session expired")
        await respond(send, 200, got.completion(), rid, out_headers)

    def expired_event(self, path: str) -> bytes:
        return b"data: " + orjson.dumps(self.error_doc(path, HTTPError(410, "session expired"))) + b"\n\n"

    async def _stream_chunks(self, reply: Reply, session: ProviderSession | None, wait_s: float) -> AsyncIterator[Any]:
        if wait_s:
            await asyncio.sleep(wait_s)
        yield reply.echo + "\n"
        tag = format_chunk_tag(reply.canaries)
        per_chunk = self.settings.token_ms * TOKENS_PER_CHUNK / 1000
        for i in range(0, reply.n_tokens, TOKENS_PER_CHUNK):
            if per_chunk:
                await asyncio.sleep(per_chunk)
            if session is not None and not session.live():
                yield EXPIRED
                return
            yield f"{tag} {' '.join(reply.words[i:i + TOKENS_PER_CHUNK])} "

    async def _send_stream(self, scope: dict[str, Any], send: Send, reply: Reply, source: AsyncIterator[Any],
                           out_headers: list[tuple[bytes, bytes]], cut_after: int | None, batch: bool) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
            (b"x-sessionstorm-server", SERVER_ID), *_rid_header(reply.request_id), *out_headers]})
        # With no delay between tokens, events made back to back share one write; with a
        # delay (or a shared session channel), each event is written when it is made.
        pending: list[bytes] = []

        async def emit(data: bytes) -> None:
            if batch:
                pending.append(data)
            else:
                await send({"type": "http.response.body", "body": data, "more_body": True})

        sent = 0
        async for item in source:
            if item is EXPIRED:
                await emit(self.expired_event(scope["path"]))
                break
            if cut_after is not None and sent > cut_after:
                transport = scope.get("extensions", {}).get("sessionstorm.transport")
                if transport is not None:
                    if pending:
                        await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
                    transport.abort()  # the stream ends mid-way, no [DONE]
                    return
            await emit(reply.content_head + orjson.dumps(item) + _CONTENT_TAIL)
            sent += 1
        else:
            await emit(b"data: " + orjson.dumps(reply.chunk({}, "stop")) + b"\n\n")
            if reply.include_usage:  # as OpenAI: the usage event only when stream_options asks for it
                await emit(b"data: " + orjson.dumps({**reply.chunk_head(), "choices": [], "usage": reply.usage()}) + b"\n\n")
        await send({"type": "http.response.body", "body": b"".join(pending) + b"data: [DONE]\n\n", "more_body": False})


class Reply:
    """Everything one request's answer says, computed once from its prompt."""

    __slots__ = ("model", "session", "request_id", "canaries", "n_tokens", "words", "echo", "prompt_tokens", "id",
                 "include_usage", "_head")

    def __init__(self, model: str, session: str | None, request_id: str | None, canaries: list[str],
                 n_tokens: int, h: int, prompt: str, include_usage: bool = False) -> None:
        self.model, self.session, self.request_id, self.canaries = model, session, request_id, canaries
        self.n_tokens, self.include_usage = n_tokens, include_usage
        self.words = words(h, n_tokens)
        self.echo = format_echo(model, session, request_id, canaries)
        self.prompt_tokens = prompt.count(" ") + 1
        self.id = f"chatcmpl-{h:08x}{n_tokens:04x}"
        self._head: bytes | None = None

    @property
    def content_head(self) -> bytes:
        """A content chunk's bytes up to the content itself (the same for every chunk)."""
        if self._head is None:
            head = orjson.dumps(self.chunk({"content": ""}, None))
            self._head = b"data: " + head[:head.index(b'"content":') + len(b'"content":')]
        return self._head

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.n_tokens,
                "total_tokens": self.prompt_tokens + self.n_tokens}

    def completion(self) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion", "created": int(time.time()), "model": self.model,
                "system_fingerprint": FINGERPRINT,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
                    "role": "assistant", "content": self.echo + "\n" + " ".join(self.words)}}],
                "usage": self.usage()}

    def chunk_head(self) -> dict[str, Any]:
        head = {"id": self.id, "object": "chat.completion.chunk", "created": int(time.time()), "model": self.model,
                "system_fingerprint": FINGERPRINT}
        if self.include_usage:  # OpenAI: every chunk but the last says usage null
            head["usage"] = None
        return head

    def chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {**self.chunk_head(), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def chat_prompt(body: Any) -> str:
    """The prompt of an OpenAI chat body: its messages' text, one per line."""
    if not isinstance(body, dict):
        raise HTTPError(400, "request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HTTPError(400, "missing 'messages': a non-empty list of {role, content}")
    return "\n".join(_text(m) for m in messages)


def _text(message: Any) -> str:
    if not isinstance(message, dict):
        raise HTTPError(400, "each message must be an object with 'role' and 'content'")
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise HTTPError(400, "message 'content' must be a string or a list of text parts")
    return content


def _rid_header(rid: str | None) -> list[tuple[bytes, bytes]]:
    return [(b"x-request-id", rid.encode())] if rid else []


async def read_json(receive: Any, headers: dict[str, str]) -> Any:
    chunks, size = [], 0
    while True:
        msg = await receive()
        part = msg.get("body", b"")
        size += len(part)
        if size > MAX_BODY:
            raise HTTPError(413, f"request body over {MAX_BODY} bytes")
        chunks.append(part)
        if not msg.get("more_body"):
            break
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise HTTPError(400, f"malformed JSON body: {e}") from None


async def respond(send: Send, status: int, doc: Any, rid: str | None = None,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps(doc)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-sessionstorm-server", SERVER_ID), *_rid_header(rid), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
