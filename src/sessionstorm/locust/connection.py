"""What a Locust user's HTTP connections need beyond FastHttpUser's defaults.

geventhttpclient gives a response no handle on the socket it used, so each user's
connection pool is wrapped: every socket it hands out records its real peer (``ip:port``
from ``getpeername``, not the URL's host) and that a connection was made, which is what
tells the exchange model "never reached" from "may have been processed". The pool's
timeouts are the profile's ``target.timeout_s``.
"""
from __future__ import annotations

from http.cookiejar import CookieJar
from typing import Any

from gevent.monkey import get_original
from geventhttpclient.url import URL

from sessionstorm.endpoints import readable_now, spread_connection_pool


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
    pool._is_socket_alive = _idle_and_open
    return tap


_poll = get_original("select", "poll")  # the stdlib's, also where gevent patched it: poll(0) never waits


def _idle_and_open(sock: Any) -> bool:
    """geventhttpclient's check of a pooled keep-alive socket before reuse, made with one poll(2)
    instead of gevent's select(), which builds watchers and goes through the hub for a check
    that never waits (4.4 -> 2.0 µs a request, measured). No FD_SETSIZE limit, as with gevent's."""
    return not readable_now(sock, _poll)


class FixedURL(URL):
    """geventhttpclient's URL (immutable) with what a request reads of it computed once: every
    request read its host three times, its port twice, its path three times and its string once,
    each through urllib's parse-result properties again (~2 µs a request in Locust, measured).
    Same values as URL's; a redirect from it is a FixedURL too (URL.redirect builds ``type(self)``)."""

    __slots__ = ("_host", "_port", "_quoted_uri", "_request_uri", "_str")

    def __init__(self, url: Any = "", params: Any = None) -> None:
        super().__init__(url, params)
        self._str = URL.__str__(self)
        self._host = URL.hostname.fget(self)  # type: ignore[attr-defined]
        self._port = URL.port.fget(self)  # type: ignore[attr-defined]
        self._request_uri = URL.request_uri.fget(self)  # type: ignore[attr-defined]
        self._quoted_uri = URL.quoted_uri.fget(self)  # type: ignore[attr-defined]

    def __str__(self) -> str:
        return self._str

    @property
    def hostname(self) -> str:
        return self._host

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def request_uri(self) -> str:
        return self._request_uri

    @property
    def quoted_uri(self) -> str:
        return self._quoted_uri


class LazyCookieJar(CookieJar):
    """Locust's cookie jar, minus its per-request work while there is nothing to do: with no
    cookie held there is no Cookie header to add, and a reply without Set-Cookie sets none.
    Otherwise the stdlib's own code runs, so cookies behave exactly as in any FastHttpUser."""

    def add_cookie_header(self, request: Any) -> None:
        if self._cookies:  # type: ignore[attr-defined]
            super().add_cookie_header(request)

    def extract_cookies(self, response: Any, request: Any) -> None:
        h = response.info()
        if h is None or "set-cookie" in h or "set-cookie2" in h:
            super().extract_cookies(response, request)


def lazy_cookies(session: Any) -> None:
    """Give ``session`` (a FastHttpSession, before its first request) a LazyCookieJar."""
    jar = LazyCookieJar()
    session.cookiejar = session.client.cookiejar = jar
