"""A tiny real gateway for driver tests: echoes canaries like the stub provider.

Served by uvicorn on a loopback port. ``/slow`` paths sleep past any test timeout.
"""
import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from sessionstorm.canary import find_canaries, format_chunk_tag, format_echo

SERVER = f"gateway-test-{os.getpid()}"
SESSIONS: dict[str, list[str]] = {}


def _h(request: Request, session: str | None = None) -> dict[str, str]:
    h = {"X-Sessionstorm-Server": SERVER}
    if rid := request.headers.get("x-request-id"):
        h["X-Request-ID"] = rid
    if session:
        h["X-Session-ID"] = session
    return h


async def healthz(request: Request):
    return PlainTextResponse("ok", headers=_h(request))


async def chat(request: Request):
    if request.headers.get("authorization") != "Bearer sk-good":
        return JSONResponse({"error": {"message": "bad key", "code": "invalid_api_key"}}, 401, headers=_h(request))
    body = await request.json()
    model, rid = body["model"], request.headers.get("x-request-id")
    canaries = find_canaries(body["messages"][-1]["content"])
    session = "0x" + "ab" * 32
    echo = format_echo(model, session, rid, canaries)
    if not body.get("stream"):
        reply = {"id": "c1", "object": "chat.completion", "model": model,
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": echo + "\nQuote \"x\" é ok"}}]}
        return JSONResponse(reply, headers=_h(request, session))

    async def events():
        import json
        yield f"data: {json.dumps({'model': model, 'choices': [{'delta': {'content': echo}}]})}\n\n"
        for i in range(3):
            await asyncio.sleep(0.01)
            text = format_chunk_tag(canaries) + f" token{i} \"q\""
            yield f"data: {json.dumps({'model': model, 'choices': [{'delta': {'content': text}}]})}\r\n\r\n"
        yield "data: [DONE]\n\n"
    return StreamingResponse(events(), media_type="text/event-stream", headers=_h(request, session))


async def slow(request: Request):
    await asyncio.sleep(10)
    return PlainTextResponse("late")


async def create(request: Request):
    sid = f"s{len(SESSIONS) + 1}"
    SESSIONS[sid] = []
    return JSONResponse({"session_id": sid, "ttl_seconds": 60}, headers=_h(request))


async def observe_(request: Request):
    sid = request.path_params["sid"]
    if sid not in SESSIONS:
        return JSONResponse({"error": "SESSION_NOT_FOUND", "session_id": sid}, 404, headers=_h(request))
    SESSIONS[sid].append((await request.json())["observation"])
    return JSONResponse({"length": len(SESSIONS[sid])}, headers=_h(request))


async def read(request: Request):
    sid = request.path_params["sid"]
    if sid not in SESSIONS:
        return JSONResponse({"error": "SESSION_NOT_FOUND"}, 404, headers=_h(request))
    return JSONResponse({"session_id": sid, "observations": SESSIONS[sid]}, headers=_h(request))


app = Starlette(routes=[
    Route("/healthz", healthz), Route("/v1/chat/completions", chat, methods=["POST"]),
    Route("/slow/v1/chat/completions", slow, methods=["POST"]),
    Route("/sessions", create, methods=["POST"]),
    Route("/sessions/{sid}/observe", observe_, methods=["POST"]),
    Route("/sessions/{sid}", read, methods=["GET"]),
])
