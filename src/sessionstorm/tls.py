"""One TLS context per process for the harness's own httpx clients.

httpx builds a context, loading certifi's whole CA bundle, for every client it makes, even one
that only ever speaks plain http to 127.0.0.1. A readiness probe made a client every 50 ms
while a service started, and the driver two per run: in a profile of the regression suite,
1 worker sample in 10 was spent there. The context is only read once built, so sharing it
between threads is safe.
"""
from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The context httpx would build by default (certifi's CAs, hostname checks), built once."""
    return httpx.create_ssl_context()
