"""Small misbehaving HTTP servers for the verdict tests: real sockets, standard library only.

    python tests/verdicts/servers.py MODE [--port N]

Binds 127.0.0.1 (``--port 0``, the default: any free port), prints one line
``listening on http://127.0.0.1:PORT`` once it accepts connections, and serves until
killed. ``GET /healthz`` always answers 200; every other request depends on MODE:

- ``unauthorized``: HTTP 401, ``{"error":"invalid api key"}`` (keep-alive kept);
- ``close``: the request is read, then the connection is closed without a reply;
- ``hang``: the request is read and never answered; the socket stays open until the client
  gives up (or the process ends).

Independent of sessionstorm on purpose: the harness under test must not build its own faults.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

MODES = ("unauthorized", "close", "hang")
MAX_HEADER = 64 * 1024


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """One request (method, path) with its body consumed; None when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2:
        return None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
                await reader.readexactly(size + 2)  # data and its CRLF
                if size == 0:
                    break
        elif int(headers.get("content-length", "0") or 0) > 0:
            await reader.readexactly(int(headers["content-length"]))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        return None
    return parts[0], parts[1]


def response(status: int, reason: str, body: bytes, content_type: str) -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode() + body


HEALTHY = response(200, "OK", b"ok", "text/plain")
UNAUTHORIZED = response(401, "Unauthorized", json.dumps({"error": "invalid api key"}).encode(), "application/json")


def handler(mode: str):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    return
                _, path = req
                if path.split("?", 1)[0] == "/healthz":
                    writer.write(HEALTHY)
                    await writer.drain()
                    continue
                if mode == "unauthorized":
                    writer.write(UNAUTHORIZED)
                    await writer.drain()
                    continue
                if mode == "close":
                    return  # read, never answered: the finally closes the connection
                # hang: hold the socket open, answer nothing, until the client goes away
                while await reader.read(65536):
                    pass
                return
        except ConnectionError:
            return
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
    return handle


async def serve(mode: str, port: int) -> None:
    server = await asyncio.start_server(handler(mode), "127.0.0.1", port, limit=MAX_HEADER, backlog=512)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=MODES)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    asyncio.run(serve(args.mode, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
