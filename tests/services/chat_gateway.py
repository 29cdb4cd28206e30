"""A chat gateway with its own request ids and a pool of provider sessions, written
against its own API only.

    POST /api/generate  {"model_name": str, "input": str, "stream": bool}   (Authorization: Bearer KEY)
        -> {"output": {"text": str}, "served_by": model, "meta": {"session": sid, "request": "gen-..."}}
        stream: SSE events {"delta": {"text": str}, "served_by", "meta"} then "data: [DONE]"
    GET /healthz

Each (key, model) gets a pool of up to POOL_SIZE provider sessions, opened on demand at
the provider (``POST /blockchain/models/{model}/session``). The gateway mints its own
request id per request (returned in ``X-Request-ID`` and ``meta.request``) and sends no
request id upstream: it relies on a session serving one request at a time.

``GATEWAY_BUG=shared-session``: a request takes the next pooled session round-robin
without checking it out, so two concurrent requests can share one provider session,
and the provider, unable to tell them apart, may hand each the other's answer.

    python chat_gateway.py --port 8000     (PROVIDER_URL, POOL_SIZE, GATEWAY_BUG from the environment)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

BUG = os.environ.get("GATEWAY_BUG", "none")
POOL_SIZE = int(os.environ.get("POOL_SIZE", "4"))
app = FastAPI()
_http: list[httpx.AsyncClient] = []


def upstream() -> httpx.AsyncClient:
    if not _http:
        _http.append(httpx.AsyncClient(base_url=os.environ["PROVIDER_URL"], timeout=30.0))
    return _http[0]


class Pool:
    """Provider sessions of one (key, model)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.sessions: list[str] = []
        self.free: list[str] = []
        self.opening = 0
        self.turn = 0
        self.cond = asyncio.Condition()

    async def _open(self) -> str:
        r = await upstream().post(f"/blockchain/models/{self.model}/session", json={"sessionDuration": 3600})
        r.raise_for_status()
        return str(r.json()["sessionID"])

    async def checkout(self) -> str:
        if BUG == "shared-session":  # round-robin, not checked out: sessions get shared
            for _ in range(2000):  # the pool is full of sessions still opening: wait for one (<= 10 s)
                if self.sessions or len(self.sessions) + self.opening < POOL_SIZE:
                    break
                await asyncio.sleep(0.005)
            if len(self.sessions) + self.opening < POOL_SIZE:
                self.opening += 1
                try:
                    self.sessions.append(await self._open())
                finally:
                    self.opening -= 1
            self.turn += 1
            return self.sessions[self.turn % len(self.sessions)]
        async with self.cond:
            while not self.free:
                if len(self.sessions) + self.opening < POOL_SIZE:
                    self.opening += 1
                    break
                await self.cond.wait()
            else:
                return self.free.pop()
        try:
            sid = await self._open()
        finally:
            async with self.cond:
                self.opening -= 1
        async with self.cond:
            self.sessions.append(sid)
        return sid

    async def checkin(self, sid: str) -> None:
        if BUG == "shared-session":
            return
        async with self.cond:
            self.free.append(sid)
            self.cond.notify()


pools: dict[tuple[str, str], Pool] = defaultdict(lambda: None)  # type: ignore[arg-type]


def pool_for(key: str, model: str) -> Pool:
    p = pools.get((key, model))
    if p is None:
        p = pools[(key, model)] = Pool(model)
    return p


@app.get("/healthz")
async def healthz() -> dict:
    return {"ok": True, "bug": BUG}


@app.post("/api/generate")
async def generate(request: Request):
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer ") or len(auth) < 8:
        return JSONResponse({"error": "missing API key"}, status_code=401)
    doc = await request.json()
    model, text = doc.get("model_name"), doc.get("input")
    if not isinstance(model, str) or not isinstance(text, str):
        return JSONResponse({"error": "model_name and input are required"}, status_code=422)
    rid = "gen-" + secrets.token_hex(8)
    pool = pool_for(auth[7:], model)
    sid = await pool.checkout()
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": bool(doc.get("stream"))}
    headers = {"session_id": sid}
    meta = {"session": sid, "request": rid}
    if not doc.get("stream"):
        try:
            r = await upstream().post("/v1/chat/completions", json=body, headers=headers)
        finally:
            await pool.checkin(sid)
        if r.status_code != 200:
            return JSONResponse({"error": f"provider: {r.text[:200]}"}, status_code=502, headers={"X-Request-ID": rid})
        reply = r.json()
        return JSONResponse({"output": {"text": reply["choices"][0]["message"]["content"]}, "served_by": reply.get("model"),
                             "meta": meta}, headers={"X-Request-ID": rid})

    async def events() -> AsyncIterator[bytes]:
        try:
            async with upstream().stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data.strip() == "[DONE]":
                        break
                    chunk = json.loads(data)
                    choices = chunk.get("choices") or []
                    piece = (choices[0].get("delta") or {}).get("content") if choices else None
                    if piece:
                        out = {"delta": {"text": piece}, "served_by": chunk.get("model"), "meta": meta}
                        yield b"data: " + json.dumps(out).encode() + b"\n\n"
        finally:
            await pool.checkin(sid)
        yield b"data: [DONE]\n\n"
    return StreamingResponse(events(), media_type="text/event-stream", headers={"X-Request-ID": rid})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
