"""Split endpoints: one host name, several servers (docs: DESIGN.md "Split endpoints").

A name can resolve to several addresses (``::1`` and ``127.0.0.1`` for ``localhost``) and a
port can be shared by two processes (``SO_REUSEPORT``). A stale server behind one of them
answers part of the traffic -- seed 004's deterministic 25/50 generic 404s. This module:

- `resolve`: every address of a URL's host, or the addresses a ``target.resolve`` override pins;
- `fingerprint` / `preflight`: probe each address over several fresh connections and compare;
- `Spreader` + `SpreadTransport` (httpx) + `spread_geventhttpclient` (Locust's FastHttpUser):
  spread new connections round-robin over the addresses, as real clients do, keeping the
  name for the Host header and TLS SNI; `peer_of` says which address answered.
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import itertools
import secrets
import select
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx

from sessionstorm.errors import ConfigError
from sessionstorm.tls import shared_ssl_context

POLICIES = ("first", "spread")
EXCERPT_CHARS = 80
# What a fingerprint compares; "peer" and "error" describe the probe, not the server.
FIELDS = ("ready", "identity", "server", "not_found", "session_not_found", "openapi")
# SO_REUSEPORT hashes each connection to one listener: with two listeners sharing 50/50, all
# n connections land on the same one with probability 2**(1-n): 25 % at n=3, 0.8 % at n=8.
DEFAULT_CONNECTIONS = 8


class Address(NamedTuple):
    family: int  # socket.AF_INET / AF_INET6
    ip: str

    def hostport(self, port: int) -> str:
        """``127.0.0.1:8000`` / ``[::1]:8000``."""
        return f"[{self.ip}]:{port}" if self.family == socket.AF_INET6 else f"{self.ip}:{port}"


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or a one-line ConfigError."""
    try:
        u = urlsplit(url)
        scheme, host, port = u.scheme, u.hostname, u.port
    except ValueError:
        scheme, host, port = "", None, None
    if scheme not in ("http", "https") or not host:
        raise ConfigError("target.base_url", url, "an http(s) URL with a host, like http://localhost:8000",
                          "fix the URL")
    return scheme, host.lower(), port or (443 if scheme == "https" else 80)


def is_loopback(address: str) -> bool:
    """127/8 and ::1; also ::ffff:127.x (IPv4-mapped), which ipaddress calls non-loopback."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _address(ip: str, setting: str, shown: str, allow_remote: bool) -> Address:
    try:
        a = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        raise ConfigError(setting, shown, "IP addresses, like [\"::1\", \"127.0.0.1\"] (curl --resolve)",
                          "give addresses, not names; a name belongs in target.base_url") from None
    if not (is_loopback(ip) or allow_remote):
        raise ConfigError(setting, shown, "loopback addresses (127.0.0.0/8, ::1)",
                          "pass --allow-remote (or allow_remote=True) to load a remote host on purpose")
    return Address(socket.AF_INET6 if a.version == 6 else socket.AF_INET, str(a))


def resolve(url: str, overrides: Mapping[str, Sequence[str]] | None = None, *,
            allow_remote: bool = False) -> list[Address]:
    """Every address of ``url``'s host, both families, de-duplicated, in getaddrinfo's order
    (the order a "first" client tries). ``overrides`` pins names to addresses, e.g.
    ``{"localhost": ["::1", "127.0.0.1"]}``; every entry is checked, used or not."""
    _, host, port = split_url(url)
    pinned: dict[str, list[Address]] = {}
    for name, ips in (overrides or {}).items():
        if isinstance(ips, str) or not ips:
            raise ConfigError("target.resolve", f"{name}={ips!r}", "a non-empty list of IP addresses",
                              f'write target.resolve = {{ "{name}" = ["127.0.0.1"] }}')
        pinned[name.lower()] = [_address(str(ip), "target.resolve", f"{name}={ip}", allow_remote) for ip in ips]
    if host in pinned:
        found = pinned[host]
    else:
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise ConfigError("target.base_url", url, f"a host that resolves ({e})",
                              f'fix the name, or pin it: target.resolve = {{ "{host}" = ["127.0.0.1"] }} '
                              f"(doctor: --resolve {host}=127.0.0.1)") from None
        found = [_address(str(info[4][0]), "target.base_url", f"{url} -> {info[4][0]}", allow_remote)
                 for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- spreading connections


class Spreader:
    """The order in which a new connection to ``name`` tries the addresses.

    ``spread``: round-robin (connection k starts at address k mod n), the rest as fallback,
    as aiohttp and browsers do; ``first``: always in resolved order. Share one Spreader by
    every client of a run, so that clients with one connection each still spread.
    """

    def __init__(self, name: str, addresses: Sequence[Address], policy: str = "spread") -> None:
        if policy not in POLICIES:
            raise ConfigError("target.addresses", policy, '"first" or "spread"', 'set target.addresses = "spread"')
        if not addresses:
            raise ValueError("a Spreader needs at least one address")
        self.name, self.addresses, self.policy = name.lower(), list(addresses), policy
        self._next = itertools.count()  # next() is atomic under the GIL and with gevent

    @classmethod
    def for_url(cls, url: str, overrides: Mapping[str, Sequence[str]] | None = None, policy: str = "spread",
                *, allow_remote: bool = False) -> Spreader:
        return cls(split_url(url)[1], resolve(url, overrides, allow_remote=allow_remote), policy)

    def matches(self, host: str | bytes) -> bool:
        return (host.decode() if isinstance(host, bytes) else host).lower().strip("[]") == self.name

    def order(self) -> list[Address]:
        if self.policy == "first":
            return list(self.addresses)
        k = next(self._next) % len(self.addresses)
        return self.addresses[k:] + self.addresses[:k]


def _peer(addr: Any) -> str | None:
    if not addr:
        return None
    ip, port = addr[0], addr[1]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def peer_of(response: httpx.Response) -> str | None:
    """The ip:port the response's connection really reached (``[::1]:8000`` for IPv6)."""
    stream = response.extensions.get("network_stream")
    return _peer(stream.get_extra_info("server_addr")) if stream is not None else None


def readable_now(sock: Any, poll: Any = select.poll) -> bool:
    """Whether an idle keep-alive socket must not carry another request: something to read (the
    peer closed it, or sent stray bytes), hung up, or no socket at all. One poll(0), which never
    waits; ``poll``: the stdlib's (Locust passes it from under gevent's patch)."""
    if sock is None:
        return True
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        p = poll()
        p.register(fd, select.POLLIN | select.POLLPRI)
        return bool(p.poll(0))
    except (OSError, ValueError):
        return True


class _PeerStream:
    """A network stream that remembers its peer: after the connection closes (no keep-alive,
    ``Connection: close``) the socket no longer knows it, but the response is read later.

    It also answers httpcore's ``is_readable`` itself. The pool asks it of every idle connection
    on every request, and anyio builds its attribute table and calls getpeername() each time:
    with a driver's 50 connections that was a fifth of a regression run's CPU."""

    def __init__(self, inner: Any, server_addr: Any = None) -> None:
        self.inner = inner
        self.server_addr = server_addr or inner.get_extra_info("server_addr")
        self.sock = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> Any:
        return _PeerStream(await self.inner.start_tls(ssl_context, server_hostname, timeout), self.server_addr)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return readable_now(self.sock)
        if info == "server_addr":
            return self.server_addr
        return self.sock if info == "socket" else self.inner.get_extra_info(info)


class _SpreadBackend:
    """An httpcore network backend: connects to the Spreader's next address instead of the
    name. httpcore still sends ``Host: name`` and uses the name as TLS server name, because
    both come from the request's origin, not from the connected socket."""

    def __init__(self, spreader: Spreader) -> None:
        import httpcore

        self.spreader, self.inner = spreader, httpcore.AnyIOBackend()  # anyio runs on asyncio and trio
        self._failed = (OSError, httpcore.ConnectError, httpcore.ConnectTimeout)

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> Any:
        if not self.spreader.matches(host):
            return _PeerStream(await self.inner.connect_tcp(host, port, timeout, local_address, socket_options))
        error: Exception | None = None
        for address in self.spreader.order():  # the next address first, the others as fallback
            try:
                return _PeerStream(await self.inner.connect_tcp(address.ip, port, timeout, local_address,
                                                                socket_options))
            except self._failed as e:
                error = error or e
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        return await self.inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class SpreadTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose new connections follow a `Spreader`.

    >>> # client = httpx.AsyncClient(base_url=url, transport=SpreadTransport(Spreader.for_url(url)))
    Takes the keyword arguments of AsyncHTTPTransport except ``proxy`` and ``uds``.
    """

    def __init__(self, spreader: Spreader, **kwargs: Any) -> None:
        if kwargs.get("proxy") or kwargs.get("uds"):
            raise ValueError("SpreadTransport connects directly; proxy/uds cannot be spread")
        kwargs.setdefault("verify", shared_ssl_context())  # httpx would load the CA bundle per transport
        super().__init__(**kwargs)
        self.spreader = spreader
        # httpx builds its pool without a backend argument; the pool reads this attribute
        # for every new connection (httpcore 1.x).
        if not hasattr(self._pool, "_network_backend"):
            raise RuntimeError("this httpcore has no AsyncConnectionPool._network_backend to replace")
        self._pool._network_backend = _SpreadBackend(spreader)


def target_client(url: str, resolve: Mapping[str, Sequence[str]] | None = None, *, allow_remote: bool = False,
                  **kwargs: Any) -> httpx.AsyncClient:
    """A client for the few requests before load (reachability, keys): its connections go
    where ``[target] resolve`` pins the name, the first answering address first."""
    spreader = Spreader.for_url(url, resolve, "first", allow_remote=allow_remote)
    return httpx.AsyncClient(base_url=url, transport=SpreadTransport(spreader), **kwargs)


def spread_connection_pool(pool: Any, spreader: Spreader) -> Any:
    """Make a geventhttpclient ``ConnectionPool`` (``HTTPClient._connection_pool``) open its new
    connections in `Spreader.order`. Its ``_create_socket`` tries what ``_resolve`` returns in
    order, so only ``_resolve`` is replaced; the Host header and SNI stay the name (they come
    from the client's and pool's ``request_host``). A proxied pool is left alone."""
    if getattr(pool, "_use_proxy", False):
        return pool
    port = pool._connection_port

    def _resolve() -> list[tuple[Any, ...]]:
        return [(a.family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (a.ip, port, 0, 0) if a.family == socket.AF_INET6 else (a.ip, port))
                for a in spreader.order()]

    pool._resolve = _resolve
    return pool


def spread_geventhttpclient(client_pool: Any, spreader: Spreader) -> Any:
    """Spread every ``HTTPClient`` that ``client_pool`` (a geventhttpclient ``HTTPClientPool``,
    e.g. a Locust FastHttpUser's ``self.client.client.clientpool``) has or will create for the
    spreader's name. Peers: wrap the pool's ``get_socket`` (sessionstorm.locust.connection)."""
    def spread(client: Any) -> Any:
        if not getattr(client, "_sessionstorm_spread", False) and spreader.matches(client.host):
            spread_connection_pool(client._connection_pool, spreader)
            client._sessionstorm_spread = True
        return client

    for client in list(client_pool.clients.values()):
        spread(client)
    get_client = client_pool.get_client

    def spread_client(url: Any) -> Any:
        return spread(get_client(url))

    client_pool.get_client = spread_client
    return client_pool


# ---------------------------------------------------------------- fingerprints


def _body(r: Any, nonce: str) -> dict[str, Any]:
    text = r.content.decode("utf-8", "replace").replace(nonce, "{nonce}")  # ids we sent are not the server's
    return {"status": r.status, "sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
            "excerpt": text[:EXCERPT_CHARS]}


def _header(r: Any, name: str) -> str | None:
    """A header's value, repeated ones joined with ", " (as httpx does): a proxy's and the app's both count."""
    want = name.lower().encode()
    return ", ".join(v.decode("utf-8", "replace") for k, v in r.headers if k.lower() == want) or None


async def _one_connection(url: str, address: Address, *, nonce: str, ready_path: str, identity_header: str | None,
                          session_path: str | None, openapi_path: str | None, timeout: float,
                          verify: ssl.SSLContext | bool) -> dict[str, Any]:
    """One fresh connection to ``address`` carrying every probe (keep-alive), so all of them
    meet the same process even when two share the port. httpcore's pool of one connection
    directly: a run's preflight is 32 such requests, and httpx's client around them cost as
    much again as the requests."""
    import httpcore

    scheme, host, port = split_url(url)
    netloc = f"[{host}]" if ":" in host else host
    origin = f"{scheme}://{netloc}:{port}"
    default_port = port == (443 if scheme == "https" else 80)
    headers = [(b"Host", (netloc if default_port else f"{netloc}:{port}").encode()),
               (b"Accept", b"*/*"), (b"User-Agent", b"sessionstorm-preflight")]  # what httpx sent
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    tls = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
    fp: dict[str, Any] = {"address": address.hostport(port)}
    async with httpcore.AsyncConnectionPool(ssl_context=tls, max_connections=1,
                                            network_backend=_SpreadBackend(Spreader(host, [address], "first"))) as pool:
        async def get(path: str) -> Any:
            return await pool.request("GET", origin + path, headers=headers, extensions={"timeout": limits})

        try:
            r = await get(ready_path)
            stream = r.extensions.get("network_stream")
            fp["peer"] = _peer(stream.get_extra_info("server_addr")) if stream is not None else None
            fp["ready"] = r.status
            fp["identity"] = _header(r, identity_header) if identity_header else None
            fp["server"] = _header(r, "server")
            fp["not_found"] = _body(await get(f"/sessionstorm-probe-{nonce}"), nonce)
            fp["session_not_found"] = (_body(await get(session_path.replace("{session_id}", nonce)), nonce)
                                       if session_path else None)
            if openapi_path:
                r = await get(openapi_path)
                fp["openapi"] = hashlib.sha256(r.content).hexdigest()[:16] if r.status == 200 else r.status
            else:
                fp["openapi"] = None
        except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError,
                httpcore.UnsupportedProtocol, OSError) as e:
            fp["error"] = f"{type(e).__name__}: {e}"[:200]
    return fp


async def afingerprint(url: str, address: Address, *, connections: int = DEFAULT_CONNECTIONS,
                       ready_path: str = "/healthz", identity_header: str | None = None,
                       session_path: str | None = None, openapi_path: str | None = "/openapi.json",
                       timeout: float = 2.0, nonce: str | None = None,
                       verify: ssl.SSLContext | bool | None = None) -> list[dict[str, Any]]:
    """One fingerprint per fresh connection to ``address`` (see `fingerprint`)."""
    nonce = nonce or secrets.token_hex(16)  # 32 hex digits: a well-formed session id nobody has
    if verify is None:  # one context for all connections: loading the CAs costs ms each time
        verify = ssl.create_default_context() if url.startswith("https") else False
    return list(await asyncio.gather(*(
        _one_connection(url, address, nonce=nonce, ready_path=ready_path, identity_header=identity_header,
                        session_path=session_path, openapi_path=openapi_path, timeout=timeout, verify=verify)
        for _ in range(connections))))


def fingerprint(url: str, address: Address, **kwargs: Any) -> list[dict[str, Any]]:
    """Connect to ``address`` (Host and SNI stay ``url``'s name) over ``connections`` fresh
    connections and record, per connection: ``ready`` (status of GET ready_path),
    ``identity`` (the identity_header's value, if named), ``server`` (Server header),
    ``not_found`` / ``session_not_found`` (status, sha256, excerpt of a 404 for a random
    path / a random session id in session_path, e.g. ``/sessions/{session_id}``), ``openapi``
    (sha256 of openapi_path, or its status when not served), ``peer``; ``error`` if it failed.
    ``verify``: an SSLContext (e.g. with the service's CA) or False; default: the system CAs."""
    return asyncio.run(afingerprint(url, address, **kwargs))


def _key(fp: dict[str, Any]) -> tuple[str, ...]:
    return tuple(repr(fp.get(f)) for f in FIELDS)


def label_variants(fingerprints: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], str]:
    """Distinct servers among answering fingerprints, labelled A, B, ... in order of appearance."""
    labels: dict[tuple[str, ...], str] = {}
    for fp in fingerprints:
        if "error" not in fp:
            labels.setdefault(_key(fp), chr(ord("A") + min(len(labels), 25)))
    return labels


def variant_of(fp: dict[str, Any], labels: dict[tuple[str, ...], str]) -> str:
    return labels[_key(fp)]


def unwell(fp: dict[str, Any]) -> bool:
    """Readiness answered 5xx or 429: a server under stress or a fault, which says nothing of
    which build it is (under load one server can answer 200 and 503 a moment apart)."""
    return isinstance(fp.get("ready"), int) and (fp["ready"] >= 500 or fp["ready"] == 429)


def compare(url: str, fingerprints: Sequence[dict[str, Any]], skip_unwell: bool = False) -> list[dict[str, Any]]:
    """A SPLIT_ENDPOINT finding if the answering connections saw more than one server.
    Connections that failed are not a split (clients fall back to the next address);
    ``skip_unwell`` (probes during load): neither are connections whose readiness was unwell."""
    _, host, port = split_url(url)
    ok = [fp for fp in fingerprints if "error" not in fp and not (skip_unwell and unwell(fp))]
    variants = label_variants(ok)
    if len(variants) < 2:
        return []
    first = {label: next(fp for fp in ok if variants[_key(fp)] == label) for label in variants.values()}
    differs = [f for f in FIELDS if len({repr(fp.get(f)) for fp in first.values()}) > 1]
    addresses: dict[str, dict[str, int]] = {}
    for fp in ok:
        seen = addresses.setdefault(fp["address"], {})
        seen[variants[_key(fp)]] = seen.get(variants[_key(fp)], 0) + 1
    per_address = "; ".join(f"{a} -> " + ", ".join(f"{v} on {n} of {sum(seen.values())} connections"
                                                  for v, n in sorted(seen.items()))
                            for a, seen in addresses.items())
    return [{
        "code": "SPLIT_ENDPOINT", "severity": "error",
        "detail": f"{len(variants)} different servers answer {host}:{port}: {per_address}; they differ in "
                  f"{', '.join(differs)}",
        "addresses": addresses,
        "variants": {label: {f: fp.get(f) for f in FIELDS} for label, fp in first.items()},
        "differs": differs,
        "fix": f"ss -ltnp 'sport = :{port}' / lsof -i :{port} to find the second process",
    }]


async def asurvey(url: str, addresses: Sequence[Address], **kwargs: Any) -> list[dict[str, Any]]:
    """Fingerprints of every address x connection, all at once (one nonce for all)."""
    kwargs.setdefault("nonce", secrets.token_hex(16))
    per_address = await asyncio.gather(*(afingerprint(url, a, **kwargs) for a in addresses))
    return [fp for fps in per_address for fp in fps]


def survey(url: str, overrides: Mapping[str, Sequence[str]] | None = None, *, allow_remote: bool = False,
           **kwargs: Any) -> list[dict[str, Any]]:
    """Every address's fingerprints (what `preflight` compares), for a caller that keeps them."""
    return asyncio.run(asurvey(url, resolve(url, overrides, allow_remote=allow_remote), **kwargs))


def preflight(url: str, overrides: Mapping[str, Sequence[str]] | None = None, *,
              allow_remote: bool = False, skip_unwell: bool = False, **kwargs: Any) -> list[dict[str, Any]]:
    """Resolve ``url``, fingerprint every address over several fresh connections, compare:
    ``[]`` or one SPLIT_ENDPOINT finding. Keyword arguments as for `fingerprint`. Bad input
    (unresolvable host, non-IP or remote override) raises ConfigError before any probe.
    ``skip_unwell``: see `compare` (the re-probes during a run use it)."""
    return compare(url, survey(url, overrides, allow_remote=allow_remote, **kwargs), skip_unwell=skip_unwell)
