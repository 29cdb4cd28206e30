"""A thread/items session service on Redis, written against its own API only.

    POST /v2/threads            {"owner": str, "labels": [str]}          -> 201 {"thread": {"id", "owner", "labels"}}
    POST /v2/threads/{id}/items {"item": {"text": str, "kind": str}}     -> 202 {"accepted": true, "position": n}
    GET  /v2/threads/{id}                                                -> {"id", "owner", "labels", "items": [...]}
    GET  /health
    unknown thread: 404 {"message": "thread ... not found"}

``THREADS_BUG=lost-update``: an item is appended by reading the thread document, adding
to it and writing it back, so two concurrent appends can overwrite each other (each
acknowledged). The clean twin appends to a Redis list atomically.

    python threads_service.py --port 8000      (REDIS_URL, THREADS_BUG from the environment)
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

BUG = os.environ.get("THREADS_BUG", "none")
app = FastAPI(title="threads")
_client: list[aioredis.Redis] = []


class NewThread(BaseModel):
    owner: str
    labels: list[str] = []


class Thread(BaseModel):
    id: str
    owner: str
    labels: list[str]


class Created(BaseModel):
    thread: Thread


class Item(BaseModel):
    text: str
    kind: str = "note"


class NewItem(BaseModel):
    item: Item


class Accepted(BaseModel):
    accepted: bool
    position: int


class ThreadView(Thread):
    items: list[Item]


def db() -> aioredis.Redis:
    if not _client:
        _client.append(aioredis.from_url(os.environ["REDIS_URL"], decode_responses=True))
    return _client[0]


def missing(tid: str) -> JSONResponse:
    return JSONResponse({"message": f"thread {tid} not found"}, status_code=404)


@app.get("/health")
async def health() -> dict:
    await db().ping()
    return {"ok": True, "bug": BUG}


@app.post("/v2/threads", status_code=201, response_model=Created)
async def create(new: NewThread) -> dict:
    thread = {"id": "th_" + secrets.token_hex(8), "owner": new.owner, "labels": new.labels}
    await db().set(f"thread:{thread['id']}", json.dumps({**thread, "items": []}), ex=3600)
    return {"thread": thread}


@app.post("/v2/threads/{tid}/items", status_code=202, response_model=Accepted, responses={404: {}})
async def add_item(tid: str, new: NewItem) -> Any:
    r = db()
    raw = await r.get(f"thread:{tid}")
    if raw is None:
        return missing(tid)
    item = new.item.model_dump()
    if BUG == "lost-update":  # read, modify, write back: a concurrent append in between is lost
        thread = json.loads(raw)
        thread["items"].append(item)
        await r.set(f"thread:{tid}", json.dumps(thread), ex=3600)
        position = len(thread["items"])
    else:
        position = await r.rpush(f"thread:{tid}:items", json.dumps(item))
        await r.expire(f"thread:{tid}:items", 3600)
    return {"accepted": True, "position": position}


@app.get("/v2/threads/{tid}", response_model=ThreadView, responses={404: {}})
async def read(tid: str) -> Any:
    r = db()
    raw = await r.get(f"thread:{tid}")
    if raw is None:
        return missing(tid)
    thread = json.loads(raw)
    if BUG != "lost-update":
        thread["items"] = [json.loads(x) for x in await r.lrange(f"thread:{tid}:items", 0, -1)]
    return thread


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
