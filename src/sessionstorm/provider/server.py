"""Serving an ASGI app with uvicorn, on loopback, with the transport in reach.

Uvicorn answers 500 for an app that fails before responding; a provider node that dies
sends nothing. The protocol below puts the connection's transport into the ASGI scope
(``scope["extensions"]["sessionstorm.transport"]``) so a fault can really close it.
"""
from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class TransportExposingProtocol(HttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"sessionstorm.transport": self.transport}  # type: ignore[typeddict-unknown-key]


def serve(app: Any, host: str, port: int, log_level: str = "warning") -> None:
    config = uvicorn.Config(app, host=host, port=port, loop="uvloop", http=TransportExposingProtocol,
                            lifespan="on", access_log=False, log_level=log_level, timeout_graceful_shutdown=2,
                            # longer than clients keep idle connections (httpx: 5 s): uvicorn's default of
                            # 5 s raced them, and a request on a just-closed connection failed (ReadError)
                            timeout_keep_alive=30)
    uvicorn.Server(config).run()
