"""The provider contract of seed 000 in front of a real model: the stub provider's sessions
and reply routing, with every reply's text written by llama-server.

The reference gateway needs a provider that opens sessions (``/blockchain/...``) and answers
chat on a session; llama-server has neither sessions nor request ids. The seed-000 crosstalk
(``no-request-id``) lives in that contract, not in the gateway: without ``X-Request-ID`` the
provider cannot tell concurrent requests on one session apart, and a finished reply goes to
whichever request on the session has waited longest (`sessionstorm.provider.sessions`). So
this is `Provider` with its text source swapped: the same `exchange` / `shared_stream` route
the model's replies, nothing is added to them (no echo line: a canary comes back only if the
model copied it). Each reply is logged (``--timings``: llama-server's token counts and times,
and whether the reply went to another request than the one that asked) for the bench.

``python -m sessionstorm.llm_upstream --port N --upstream http://127.0.0.1:M --model NAME``
"""
from __future__ import annotations

import itertools
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import click
import httpx
import orjson

from sessionstorm.cli import run_command
from sessionstorm.provider.app import EXPIRED, HTTPError, Provider, Reply, Send, respond
from sessionstorm.provider.catalog import as_models
from sessionstorm.provider.server import serve
from sessionstorm.provider.sessions import ProviderSession, exchange, shared_stream
from sessionstorm.provider.settings import Settings


class ModelProvider(Provider):
    def __init__(self, upstream: str, model: str, timings: str | None, settings: Settings | None = None) -> None:
        super().__init__(settings or Settings(), as_models((model,)), seed=None)
        self.upstream = upstream.rstrip("/")
        self.http: httpx.AsyncClient | None = None  # made on the server's loop
        # open for the server's life, unbuffered: the bench reads it between runs
        self.timings = open(timings, "ab", buffering=0) if timings else None  # noqa: SIM115
        self.seq = itertools.count()

    def client(self) -> httpx.AsyncClient:
        if self.http is None:  # no pool cap below the slots: queueing is llama-server's
            self.http = httpx.AsyncClient(base_url=self.upstream, timeout=httpx.Timeout(180.0, connect=5.0),
                                          limits=httpx.Limits(max_connections=64))
        return self.http

    async def send(self, body: dict[str, Any], stream: bool) -> httpx.Response:
        """POST to llama-server; one retry when it closed a kept-alive connection under us
        (it then sent nothing, so nothing was generated; seen once in 90 streamed requests)."""
        for attempt in (1, 2):
            req = self.client().build_request("POST", "/v1/chat/completions", json=self.upstream_body(body, stream))
            try:
                return await self.client().send(req, stream=stream)
            except httpx.RemoteProtocolError:
                if attempt == 2:
                    raise HTTPError(502, "llama-server closed the connection without a response") from None
            except httpx.HTTPError as e:
                raise HTTPError(502, f"llama-server did not answer: {type(e).__name__}") from None
        raise AssertionError("unreachable")

    def log(self, **rec: Any) -> None:
        if self.timings is not None:
            self.timings.write(orjson.dumps(rec) + b"\n")

    def upstream_body(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if k not in ("session_id", "stream_options")}
        out["stream"] = stream
        if stream:
            out["stream_options"] = {"include_usage": True}
        return out

    async def answer(self, scope: dict[str, Any], send: Send, body: dict[str, Any], prompt: str, model: str,
                     session: ProviderSession | None, rid: str | None) -> None:
        sid = session.id if session is not None else None
        out_headers = [(b"x-session-id", sid.encode())] if sid else []
        shared = session is not None and not rid  # seed 000: untagged requests on a session share its replies
        if body.get("stream"):
            return await self._stream(scope, send, body, prompt, model, session, rid, out_headers, shared)
        mine = next(self.seq)
        t0 = time.time()

        async def produce() -> Any:
            r = await self.send(body, False)
            if r.status_code != 200:
                raise HTTPError(502, f"llama-server answered HTTP {r.status_code}: {r.text[:200]}")
            doc = r.json()
            if session is not None and not session.live():
                return EXPIRED
            return (mine, doc)

        got = await (exchange(session, produce) if shared else produce())
        if got is EXPIRED:
            raise HTTPError(410, "session expired")
        origin, doc = got
        timings = doc.pop("timings", None) or {}
        doc["model"] = model  # the session's model, as the provider names it
        self.log(seq=mine, origin=origin, mixed=origin != mine, stream=False, start=t0, end=time.time(),
                 **{k: timings.get(k) for k in ("prompt_n", "prompt_ms", "predicted_n", "predicted_ms")})
        await respond(send, 200, doc, rid, out_headers)

    async def _stream(self, scope: dict[str, Any], send: Send, body: dict[str, Any], prompt: str, model: str,
                      session: ProviderSession | None, rid: str | None, out_headers: list[tuple[bytes, bytes]],
                      shared: bool) -> None:
        mine, t0 = next(self.seq), time.time()
        first: list[float] = []
        # Opened before our response starts: an upstream error is still a proper 502.
        r = await self.send(body, True)
        if r.status_code != 200:
            text = (await r.aread())[:200].decode("utf-8", "replace")
            await r.aclose()
            raise HTTPError(502, f"llama-server answered HTTP {r.status_code}: {text}")

        async def produce() -> AsyncIterator[Any]:
            timings: dict[str, Any] = {}
            try:
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    doc = orjson.loads(line[6:])
                    timings = doc.get("timings") or timings
                    for choice in doc.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            if not first:
                                first.append(time.time())
                            if session is not None and not session.live():
                                yield EXPIRED
                                return
                            yield text
            finally:
                await r.aclose()
            self.log(seq=mine, stream=True, start=t0, first=first[0] if first else None, end=time.time(),
                     **{k: timings.get(k) for k in ("prompt_n", "prompt_ms", "predicted_n", "predicted_ms")})

        reply = Reply(model, session.id if session is not None else None, rid, [], 0, 0, prompt)
        source = shared_stream(session, produce()) if shared and session is not None else produce()
        await self._send_stream(scope, send, reply, source, out_headers, None, False)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=int, required=True)
@click.option("--upstream", required=True, help="llama-server's URL, e.g. http://127.0.0.1:8080 (loopback)")
@click.option("--model", "model", default="smollm2-135m", show_default=True, help="the model name sessions serve")
@click.option("--timings", default=None, help="JSON-lines file: one line per reply (tokens, times, mixed)")
def main(port: int, upstream: str, model: str, timings: str | None) -> None:
    """The seed-000 provider contract (sessions, untagged replies shared) over llama-server."""
    from sessionstorm.guard import check_target
    check_target(upstream, False)  # loopback only
    serve(ModelProvider(upstream, model, timings, Settings()), "127.0.0.1", port)


if __name__ == "__main__":
    sys.exit(run_command(main, "sessionstorm.llm_upstream"))
