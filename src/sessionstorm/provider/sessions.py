"""Provider sessions and how replies find their way back to requests.

With a request id, a reply goes to the request that asked for it. Without one, the
provider cannot tell concurrent requests on a session apart (seed 000): a finished reply
goes to whichever request on that session has waited longest, and stream chunks go to
whichever stream of that session asks for the next chunk. Overlapping requests with
different latencies so receive each other's replies: the crosstalk the harness must catch.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

END = object()  # a stream producer's last item


@dataclass(slots=True)
class ProviderSession:
    id: str
    model: str
    created: float
    expires_at: float
    closed: bool = False
    waiters: deque[asyncio.Future[Any]] = field(default_factory=deque)
    chunks: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    readers: int = 0

    def live(self, now: float | None = None) -> bool:
        return not self.closed and (now if now is not None else time.monotonic()) < self.expires_at

    def as_dict(self) -> dict[str, Any]:
        return {"sessionID": self.id, "model": self.model, "closed": self.closed,
                "expired": not self.live(), "expiresIn": max(0.0, round(self.expires_at - time.monotonic(), 3))}


class Registry:
    """Sessions by id. With a ``state`` file they outlive the process, as a real provider's
    do (seed 000's sessions are blockchain transactions): a restarted stub knows them."""

    def __init__(self, state: str | os.PathLike[str] | None = None) -> None:
        self._sessions: dict[str, ProviderSession] = {}
        self.state = Path(state) if state else None
        if self.state is not None and self.state.exists():
            self._load(self.state)

    def _load(self, path: Path) -> None:
        try:
            rows = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return  # a torn file: start empty, as a node that lost its state would
        now, wall = time.monotonic(), time.time()
        for r in rows:
            self._sessions[r["id"]] = ProviderSession(r["id"], r["model"], now, now + (r["expires_wall"] - wall),
                                                      closed=r["closed"])

    def _save(self) -> None:
        if self.state is None:
            return
        now, wall = time.monotonic(), time.time()
        rows = [{"id": s.id, "model": s.model, "closed": s.closed, "expires_wall": wall + (s.expires_at - now)}
                for s in self._sessions.values()]
        tmp = self.state.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(rows))
        os.replace(tmp, self.state)

    def create(self, model: str, duration_s: float) -> ProviderSession:
        now = time.monotonic()
        s = ProviderSession("0x" + secrets.token_hex(32), model, now, now + duration_s)
        self._sessions[s.id] = s
        self._save()
        return s

    def get(self, session_id: str) -> ProviderSession | None:
        return self._sessions.get(session_id)

    def close(self, session_id: str) -> ProviderSession | None:
        s = self._sessions.get(session_id)
        if s is not None:
            s.closed = True
            self._save()
        return s

    def __len__(self) -> int:
        return len(self._sessions)


async def exchange(session: ProviderSession, produce: Any) -> Any:
    """Untagged JSON request: produce our reply, hand it to the longest waiter, take ours."""
    mine: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    session.waiters.append(mine)
    try:
        reply = await produce()
    except BaseException:
        if not mine.done():  # we leave: nobody may hand our slot a reply
            session.waiters.remove(mine)
        raise
    session.waiters.popleft().set_result(reply)
    return await mine


async def shared_stream(session: ProviderSession, producer: Any) -> Any:
    """Untagged stream: our producer feeds the session's channel; we read whatever comes next.

    Every producer ends with END and every reader stops at the first END it reads, so
    readers and producers stay balanced however their chunks interleave.
    """
    task = asyncio.create_task(_feed(session.chunks, producer))
    session.readers += 1
    try:
        while True:
            item = await session.chunks.get()
            if item is END:
                return
            yield item
    finally:
        session.readers -= 1
        if session.readers == 0 and task.done():
            while not session.chunks.empty():  # leftovers of departed readers
                session.chunks.get_nowait()


async def _feed(queue: asyncio.Queue[Any], producer: Any) -> None:
    try:
        async for item in producer:
            await queue.put(item)
    finally:
        await queue.put(END)
