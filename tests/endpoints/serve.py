"""Serve an app on HOST:PORT from a socket this script binds, optionally with SO_REUSEPORT
(uvicorn has no such option), so that two processes can share one address and port.

    python serve.py HOST PORT APP [--reuse-port] [--tls CERT KEY]

APP: ``new`` / ``old`` (the mini apps below: the old build lacks the observe route) or
``reference`` (the reference target; its env, SESSIONSTORM_TARGET_BUGS included, decides).
"""
from __future__ import annotations

import os
import socket
import sys
import uuid

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def mini(build: str) -> FastAPI:
    """A session service in miniature, answering like the reference target does."""
    app = FastAPI()
    sessions: dict[str, list] = {}
    pid = str(os.getpid())

    @app.middleware("http")
    async def tag(request, call_next):  # which process answered, for the tests' own counts
        response = await call_next(request)
        response.headers["x-test-pid"] = pid
        return response

    @app.get("/healthz")
    async def healthz():
        return {"ok": True}

    @app.get("/whoami")
    async def whoami(request: Request):  # what this process was asked for and by whom
        return {"pid": pid, "host": request.headers.get("host")}

    @app.post("/sessions")
    async def create():
        sid = uuid.uuid4().hex
        sessions[sid] = []
        return {"session_id": sid}

    @app.get("/sessions/{sid}")
    async def read(sid: str):
        if sid not in sessions:
            return JSONResponse({"error": "SESSION_NOT_FOUND", "message": "no such session"}, 404)
        return {"session_id": sid, "observations": sessions[sid]}

    if build == "new":
        @app.post("/sessions/{sid}/observe")
        async def observe(sid: str):
            return {"session_id": sid, "ok": True}
    return app


def main() -> None:
    host, port, which = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if "--reuse-port" in sys.argv:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if which == "reference":
        from sessionstorm.target.app import create_app
        app = create_app()
    else:
        app = mini(which)
    tls = {}
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        tls = {"ssl_certfile": sys.argv[i + 1], "ssl_keyfile": sys.argv[i + 2]}
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="auto", **tls)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
