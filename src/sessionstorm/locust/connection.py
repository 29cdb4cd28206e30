"""What a Locust user's HTTP connections need beyond FastHttpUser's defaults.

geventhttpclient gives a response no handle on the socket it used, so each user's
connection pool is wrapped: every socket it hands out records its real peer (``ip:port``
from ``getpeername``, not the URL's host) and that a connection was made, which is what
tells the exchange model "never reached" from "may have been processed". The pool's
timeouts are the profile's ``target.timeout_s``.
"""
from __future__ import annotations

from typing import Any

from geventhttpclient.url import URL

from sessionstorm.endpoints import spread_connection_pool


def peer_of(sock: Any) -> str | None:
    try:
        addr = sock.getpeername()
    except OSError:
        return None
    host = addr[0]
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


class Tap:
    """The connection the user's current request got from its pool (one request at a time)."""

    __slots__ = ("peer", "connected")

    def __init__(self) -> None:
        self.peer: str | None = None
        self.connected = False

    def reset(self) -> None:
        self.peer, self.connected = None, False


def tap_pool(session: Any, base_url: str, timeout_s: float, spreader: Any = None) -> Tap:
    """Wrap the pool of ``session`` (a FastHttpSession) for ``base_url``; returns its Tap.
    With a ``spreader`` (endpoints.Spreader, one per process) new connections spread over
    every address of the name, as real clients' do."""
    client = session.client.clientpool.get_client(URL(base_url))
    pool = client._connection_pool
    if spreader is not None:
        spread_connection_pool(pool, spreader)
    pool.network_timeout = timeout_s
    pool.connection_timeout = min(timeout_s, 5.0)
    tap = Tap()
    get_socket = pool.get_socket
    last: list[Any] = [None, None]  # the socket handed out last and its peer: reused request after request

    def tapped() -> Any:
        sock = get_socket()
        tap.connected = True
        if sock is last[0]:  # a socket's peer never changes; getpeername cost a syscall per request
            tap.peer = last[1]
        else:
            tap.peer = peer = peer_of(sock)
            last[:] = (sock, peer) if peer is not None else (None, None)
        return sock

    pool.get_socket = tapped
    return tap
