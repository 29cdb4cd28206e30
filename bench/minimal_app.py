"""The baseline for bench/provider.py: the smallest ASGI app answering a JSON body,
served by the same server stack as the stub (uvicorn + uvloop + httptools)."""
from __future__ import annotations

import sys

from sessionstorm.provider.server import serve

BODY = b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}'


async def app(scope, receive, send):  # noqa: ANN001
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    serve(app, "127.0.0.1", int(sys.argv[1]))
