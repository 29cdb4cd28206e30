"""The proxy-router mode: the Morpheus-Lumerin-Node proxy-router API a gateway uses for chat.

Source: ``proxy-router/docs/swagger.json`` of MorpheusAIs/Morpheus-Lumerin-Node at
24f7e713b96a1b7450eb5283220a20fa7f378173, checked against the router's Go code. What the
router really sends, where it differs from the swagger:

- Model, Bid, ScoredBid and Session are Go structs without JSON tags, so the wire keys are
  the Go field names (``Id``, ``IpfsCID``, ``ModelAgentId``, ``BidID``, ``EndsAt``, ``ClosedAt``,
  ``Provider``; ``ID``/``Bid``/``Score``), not the swagger's camelCase.
- Bid's numbers are ``lib.BigInt``: strings of digits. Model's and Session's are ``*big.Int``:
  JSON numbers.
- gin's defaults: an unknown route (or method) answers plain text ``404 page not found``;
  Basic auth runs after routing, on every route but ``/healthcheck`` (``--basic-auth USER:PASS``,
  default ``admin:sessionstorm``); a bad path id or body answers 400 and a failing service
  call (unknown bid or session, closing twice) 500, both ``{"error": "..."}``.
- Chat (``POST /v1/chat/completions``) reads the ``session_id`` header (and ``model_id``, which
  must name the session's model); without a session, ``model_id`` alone picks the model.
  ``/v1/embeddings`` answers OpenAI's embedding list; the audio routes answer 501.

Chat, latency, faults and the crosstalk of untagged requests on one session are the
`Provider`'s, shared with the openai mode. ``/healthz`` and ``/admin/faults`` stay served
(the stub's own control plane, for the stack and the nemesis); they are not router routes.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from sessionstorm.provider.app import (SERVER_ID, HTTPError, Provider, Send, chat_prompt, lifespan, log, read_json,
                                       request_headers, respond)
from sessionstorm.provider.catalog import HEX32, Model, address, hex_id
from sessionstorm.provider.filler import prompt_hash
from sessionstorm.provider.sessions import ProviderSession

VERSION = "sessionstorm-stub"
BIDS_PER_MODEL = 2
PRICE_PER_SECOND = 10**11  # wei of MOR; only its shape matters to a gateway
USER = address("user")  # the node's own wallet: every session is opened by it
OWNER = address("owner")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
Handler = Callable[..., Awaitable[None]]


@dataclass(slots=True)
class Bid:
    id: str
    model: Model
    provider: str
    score: float
    created: int

    def wire(self) -> dict[str, Any]:
        return {"Id": self.id, "Provider": self.provider, "ModelAgentId": self.model.id,
                "PricePerSecond": str(PRICE_PER_SECOND), "Nonce": "0", "CreatedAt": str(self.created), "DeletedAt": "0"}


@dataclass(slots=True)
class Opened:
    """What the chain knows of a session; whether it is live is the Provider's `ProviderSession`."""
    session: ProviderSession
    bid: Bid
    opened_at: int
    ends_at: int
    closed_at: int = 0

    def wire(self) -> dict[str, Any]:
        duration = self.ends_at - self.opened_at
        return {"Id": self.session.id, "User": USER, "Provider": self.bid.provider, "ModelAgentId": self.bid.model.id,
                "BidID": self.bid.id, "Stake": PRICE_PER_SECOND * duration, "PricePerSecond": PRICE_PER_SECOND,
                "CloseoutReceipt": "", "CloseoutType": 0, "ProviderWithdrawnAmount": 0, "OpenedAt": self.opened_at,
                "EndsAt": self.ends_at, "ClosedAt": self.closed_at}


class ProxyRouter:
    def __init__(self, provider: Provider, auth: tuple[str, str]) -> None:
        self.provider = provider
        provider.openai_errors = False
        self.auth = auth
        self.started = time.monotonic()
        self.created = int(time.time())
        self.models = {m.id: m for m in provider.catalog}
        self.bids = {b.id: b for m in provider.catalog for b in self._bids_of(m)}
        self.opened: dict[str, Opened] = {}
        self.guards: dict[str, asyncio.Lock] = {}  # rejectExisting opens, one at a time per model (as the router)
        self.routes: list[tuple[str, re.Pattern[str], Handler, bool]] = [
            (method, re.compile("^" + path.replace("{id}", "([^/]+)") + "$"), handler, path != "/healthcheck")
            for method, path, handler in (
                ("POST", "/v1/chat/completions", self.chat),  # first: the hot path
                ("GET", "/healthcheck", self.healthcheck),
                ("GET", "/blockchain/models", self.list_models),
                ("GET", "/blockchain/models/{id}/bids/rated", self.rated_bids),
                ("GET", "/blockchain/bids/{id}", self.get_bid),
                ("POST", "/blockchain/bids/{id}/session", self.open_by_bid),
                ("POST", "/blockchain/models/{id}/session", self.open_by_model),
                ("POST", "/blockchain/sessions/{id}/close", self.close_session),
                ("GET", "/blockchain/sessions/{id}", self.get_session),
                ("POST", "/blockchain/approve", self.approve),
                ("POST", "/v1/embeddings", self.embeddings),
                ("POST", "/v1/audio/speech", self.audio),
                ("POST", "/v1/audio/transcriptions", self.audio),
            )]

    def _bids_of(self, model: Model) -> list[Bid]:
        return [Bid(hex_id("bid", model.id, i), model, address("provider", i), round(0.9 - 0.2 * i, 2), self.created)
                for i in range(BIDS_PER_MODEL)]

    # -- ASGI -----------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        if scope["type"] != "http":
            return
        headers = request_headers(scope)
        method, path = scope["method"], scope["path"]
        try:
            for m, pattern, handler, auth in self.routes:
                if m == method and (match := pattern.match(path)):
                    if auth:
                        self._check_auth(headers.get("authorization"))
                    return await handler(scope, receive, send, headers, *match.groups())
            if not await self.provider.control(method, path, receive, send, headers):
                log.warning("proxy-router stub: no route %s %s, answered 404 page not found", method, path)
                await send({"type": "http.response.start", "status": 404, "headers": [
                    (b"content-type", b"text/plain"), (b"content-length", b"18"), (b"x-sessionstorm-server", SERVER_ID)]})
                await send({"type": "http.response.body", "body": b"404 page not found"})
        except HTTPError as e:
            await respond(send, e.status, {"error": e.message}, headers.get("x-request-id"))

    def _check_auth(self, header: str | None) -> None:
        """The router's CheckAuth, its three messages included."""
        if not header:
            raise HTTPError(401, "no basic auth provided")
        user, password = _basic_credentials(header)
        if not user or not password:
            raise HTTPError(401, "invalid basic auth provided")
        ok_user = hmac.compare_digest(user.encode(), self.auth[0].encode())
        if not (hmac.compare_digest(password.encode(), self.auth[1].encode()) and ok_user):
            raise HTTPError(401, "invalid username or password")

    # -- system and models ------------------------------------------------------------
    async def healthcheck(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str]) -> None:
        await respond(send, 200, {"status": "healthy", "version": VERSION,
                                  "uptime": _go_duration(time.monotonic() - self.started)})

    async def list_models(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str]) -> None:
        query = _query(scope)
        limit, offset = _int_query(query, "limit", 0), _int_query(query, "offset", 0)
        order = query.get("order", "asc")
        if order not in ("asc", "desc"):
            raise HTTPError(400, f"order={order!r}: expected asc or desc")
        models = list(self.models.values())[::-1 if order == "desc" else 1]
        if limit:  # without a limit the router returns every model
            models = models[offset:offset + limit]
        await respond(send, 200, {"models": [
            {"Id": m.id, "IpfsCID": hex_id("ipfs", m.id), "Fee": 0, "Stake": 0, "Owner": OWNER, "Name": m.name,
             "Tags": ["LLM"], "CreatedAt": self.created, "IsDeleted": False, "ModelType": "LLM"} for m in models]})

    async def rated_bids(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str],
                         model_id: str) -> None:
        _hex32("id", model_id)
        bids = sorted((b for b in self.bids.values() if b.model.id == model_id), key=lambda b: -b.score)
        await respond(send, 200, {"bids": [{"ID": b.id, "Bid": b.wire(), "Score": b.score} for b in bids]})

    async def get_bid(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str],
                      bid_id: str) -> None:
        await respond(send, 200, {"bid": self._bid(bid_id).wire()})

    def _bid(self, bid_id: str) -> Bid:
        bid = self.bids.get(_hex32("id", bid_id))
        if bid is None:
            raise HTTPError(500, f"bid {bid_id} not found")
        return bid

    async def approve(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str]) -> None:
        query = _query(scope)
        spender, amount = query.get("spender", ""), query.get("amount", "")
        if not _ADDRESS.match(spender):
            raise HTTPError(400, f"spender={spender!r}: expected a 0x-prefixed 20-byte address")
        if not amount.isdigit():
            raise HTTPError(400, f"amount={amount!r}: expected a whole number of wei")
        await respond(send, 200, {"tx": hex_id("approve", spender, amount, time.time_ns())})

    # -- sessions ---------------------------------------------------------------------
    async def open_by_bid(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str],
                          bid_id: str) -> None:
        body = await _json_object(receive, headers)
        duration = _duration(body)
        await respond(send, 200, {"sessionID": await self._open(self._bid(bid_id), duration)})

    async def open_by_model(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str],
                            model_id: str) -> None:
        body = await _json_object(receive, headers)
        duration = _duration(body)
        for flag in ("directPayment", "failover", "rejectExisting"):
            if not isinstance(body.get(flag, False), bool):
                raise HTTPError(400, f"{flag}={body[flag]!r}: expected true or false")
        omit = body.get("omitProvider") or ""
        if omit and not (isinstance(omit, str) and _ADDRESS.match(omit)):
            raise HTTPError(400, f"omitProvider={omit!r}: expected a 0x-prefixed 20-byte address")
        _hex32("id", model_id)
        bids = sorted((b for b in self.bids.values() if b.model.id == model_id and b.provider.lower() != omit.lower()),
                      key=lambda b: -b.score)
        if not bids:
            raise HTTPError(500, f"no bids available for model {model_id}")
        if not body.get("rejectExisting"):
            return await respond(send, 200, {"sessionID": await self._open(bids[0], duration)})
        async with self.guards.setdefault(model_id, asyncio.Lock()):
            live = [o for o in self.opened.values() if o.bid.model.id == model_id and o.session.live()]
            if live:
                sid = live[-1].session.id  # the newest, as the router resumes the latest
                return await respond(send, 409, {"error": f"a live session already exists for this model: {sid}",
                                                 "existingSessionID": sid})
            await respond(send, 200, {"sessionID": await self._open(bids[0], duration)})

    async def _open(self, bid: Bid, duration: int) -> str:
        st = self.provider.settings
        if st.session_open_ms:  # a blockchain transaction: the window a racy get-or-create leaves
            await asyncio.sleep(st.session_open_ms / 1000)
        seconds = min(float(duration), st.session_ttl_s) if st.session_ttl_s else float(duration)
        session = self.provider.registry.create(bid.model.name, seconds)
        now = int(time.time())
        self.opened[session.id] = Opened(session, bid, now, now + int(seconds))
        return session.id

    def _opened(self, sid: str) -> Opened:
        opened = self.opened.get(_hex32("id", sid))
        if opened is None:
            raise HTTPError(500, f"session {sid} not found")
        return opened

    async def close_session(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str],
                            sid: str) -> None:
        opened = self._opened(sid)
        if opened.closed_at:
            raise HTTPError(500, f"session {sid} already closed")
        self.provider.registry.close(sid)
        opened.closed_at = int(time.time())
        await respond(send, 200, {"tx": hex_id("close", sid)})

    async def get_session(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str],
                          sid: str) -> None:
        await respond(send, 200, {"session": self._opened(sid).wire()})

    # -- inference --------------------------------------------------------------------
    def _target(self, headers: dict[str, str]) -> tuple[ProviderSession | None, str]:
        """Session and model name from the ``session_id`` / ``model_id`` headers, as the router reads them."""
        for name in ("session_id", "model_id", "chat_id"):
            if headers.get(name):
                _hex32(f"header {name}", headers[name])
        sid, mid = headers.get("session_id"), headers.get("model_id")
        asked = None
        if mid:
            model = self.models.get(mid)
            if model is None:
                raise HTTPError(404, f"unknown model_id {mid}")
            asked = model.name
        if sid:
            session = self.provider.session_for(sid, asked)
            return session, session.model
        if asked:
            return None, asked
        raise HTTPError(400, "missing session_id header: open a session first (POST /blockchain/models/{id}/session)")

    async def chat(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str]) -> None:
        body = await read_json(receive, headers)
        prompt = chat_prompt(body)
        session, model = self._target(headers)
        await self.provider.answer(scope, send, body, prompt, model, session, headers.get("x-request-id"))

    async def embeddings(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str]) -> None:
        body = await _json_object(receive, headers)
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise HTTPError(400, "missing 'input': a string or a non-empty list of strings")
        dims = body.get("dimensions", 16)
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= 4096:
            raise HTTPError(400, f"dimensions={dims!r}: expected a whole number from 1 to 4096")
        _, model = self._target(headers)
        if self.provider.inject_faults(scope):
            return
        if wait := self.provider.first_token_wait():
            await asyncio.sleep(wait)
        tokens = sum(t.count(" ") + 1 for t in texts)
        data = [{"object": "embedding", "index": i, "embedding": _vector(t, dims)} for i, t in enumerate(texts)]
        await respond(send, 200, {"object": "list", "model": model, "data": data,
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def audio(self, scope: dict[str, Any], receive: Any, send: Send, headers: dict[str, str]) -> None:
        raise HTTPError(501, f"{scope['path']} is not served by the sessionstorm stub: use /v1/chat/completions")


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, token = header.partition(" ")
    if scheme != "Basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password


def _hex32(name: str, value: str) -> str:
    if not HEX32.match(value):
        raise HTTPError(400, f"{name}={value!r}: expected a 0x-prefixed 32-byte hex id")
    return value


def _query(scope: dict[str, Any]) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}


def _int_query(query: dict[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise HTTPError(400, f"{name}={value!r}: expected a whole number >= 0")
    return int(value)


async def _json_object(receive: Any, headers: dict[str, str]) -> dict[str, Any]:
    body = await read_json(receive, headers)
    if not isinstance(body, dict):
        raise HTTPError(400, "request body must be a JSON object")
    return body


def _duration(body: dict[str, Any]) -> int:
    """``sessionDuration`` in seconds; a lib.BigInt, so a number or a string of digits."""
    v = body.get("sessionDuration")
    if isinstance(v, str) and v.isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise HTTPError(400, f"sessionDuration={v!r}: expected a whole number of seconds > 0")
    return v


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic unit-range vector per text: same input, same embedding."""
    h = prompt_hash(text)
    return [round(((h * (i + 1) * 2654435761) % 2**32) / 2**31 - 1, 6) for i in range(dims)]


def _go_duration(seconds: float) -> str:
    """Go's time.Duration String of whole seconds, as the router's uptime: 4s, 2m5s, 1h0m3s."""
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m}m{s}s" if h else f"{m}m{s}s" if m else f"{s}s"
