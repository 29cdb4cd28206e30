"""One request's life, from what happened on the wire to its op record.

The one place that decides an operation's outcome, for every driver (the regression
driver on httpx, the Locust users on geventhttpclient, anything later). Pure: it reads
the clock and nothing else; drivers report events, the exchange decides::

    ex = Exchange(req, in_flight=n)          # invoke: times stamped, in-flight count kept
    ex.connected("127.0.0.1:8000")           # the socket's real peer, never the URL's host
    ex.reply(status, headers, body)          # a complete reply: parser and status decide
    #   or ex.hold(status, headers, body)    # kept as it arrived, parsed by finish() (batches)
    #   or streamed: ex.begin(status, headers); ex.feed(data, now) ...; ex.end_stream()
    #   or below HTTP: ex.transport(exc)     # classified by `classify` and TRANSPORT
    op = ex.finish()                         # never without an outcome

Outcome rules (docs/architecture.md, "Outcomes"):

- the request provably never reached the service (DNS failure, connection refused, TLS
  failure, connect timeout, no connection from the pool) -> ``fail``;
- it may have been processed but no complete reply came back (read timeout, reset or EOF
  after sending, truncated stream, the run's own deadline or interruption) -> ``info``;
- a complete reply -> ``ok`` or ``fail`` by status and by the flavor's checks (504 -> info:
  the server itself does not know).
"""
from __future__ import annotations

import errno
import ssl
from time import monotonic as _monotonic
from time import time as _time
from typing import Any

from sessionstorm.workload import PARSERS, STREAM_KINDS
from sessionstorm.workload.gateway import ChatStream
from sessionstorm.workload.op import EXCERPT, Request, complete

# transport event -> outcome. The first group can only happen before a byte was sent.
TRANSPORT: dict[str, str] = {
    "dns": "fail", "refused": "fail", "unreachable": "fail", "connect_timeout": "fail", "tls": "fail",
    "pool_timeout": "fail",
    "write": "info", "read_timeout": "info", "reset": "info", "eof": "info", "protocol": "info",
    "truncated": "info", "deadline": "info", "cancelled": "info", "unknown": "info",
}
TIMEOUTS = frozenset({"read_timeout", "deadline"})
REDACTED = ("error", "error_body", "reply_excerpt", "prompt_excerpt")  # text a server may have written
ERROR_BODY = 4096

# Library exceptions by class name (so this module imports no HTTP client): httpx/httpcore
# and geventhttpclient. Anything unnamed falls through to the stdlib types below.
_BY_NAME = {
    "ConnectTimeout": "connect_timeout", "PoolTimeout": "pool_timeout", "ConnectError": "refused",
    "ReadTimeout": "read_timeout", "WriteTimeout": "write", "WriteError": "write", "ReadError": "reset",
    "RemoteProtocolError": "eof", "HTTPConnectionClosed": "eof", "HTTPProtocolViolationError": "protocol",
    "HTTPParseError": "protocol", "LocalProtocolError": "protocol", "ProxyError": "refused",
    "GreenletExit": "cancelled", "CancelledError": "cancelled", "KeyboardInterrupt": "cancelled",
    "SystemExit": "cancelled", "Timeout": "deadline",  # gevent.Timeout: the op's own deadline
}
_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (httpx wraps httpcore wraps OSError)."""
    out, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def classify(exc: BaseException, connected: bool | None = None) -> str:
    """The transport event an exception stands for. ``connected``: whether the driver knows a
    connection was made (False turns a bare timeout into a connect timeout)."""
    for e in _chain(exc):  # the innermost OS error is the most precise
        if isinstance(e, OSError) and not isinstance(e, TimeoutError):
            import socket
            if isinstance(e, socket.gaierror):
                return "dns"
            if isinstance(e, ssl.SSLError):
                return "tls"
            if isinstance(e, ConnectionRefusedError):
                return "refused"
            if e.errno in _UNREACHABLE:
                return "unreachable"
    name = type(exc).__name__
    event = _BY_NAME.get(name)
    if event is None:
        if isinstance(exc, TimeoutError):
            event = "read_timeout"
        elif isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            event = "reset"
        elif isinstance(exc, ssl.SSLError):
            event = "tls"
        else:
            event = "unknown"
    if event == "refused" and name == "ConnectError" and any("ssl" in type(e).__name__.lower() for e in _chain(exc)):
        event = "tls"
    if connected is False and event in TIMEOUTS:
        return "connect_timeout"
    return event


class Exchange:
    """The op of one request while it is on the wire (see the module docstring)."""

    __slots__ = ("_done", "_held", "_redact", "_req", "_stream", "op", "streamed")

    def __init__(self, req: Request, in_flight: int | None = None, redact: Any = None) -> None:
        self.op = op = req.op
        self.streamed: bool = op["kind"] in STREAM_KINDS  # read the reply as a stream
        self._req = req  # a declared operation brings its own parser and stream reader
        self._stream: ChatStream | None = None
        self._done = False
        self._held: tuple[int, Any, bytes | str | None] | None = None
        self._redact = redact  # a Redactor: secrets a reply echoes never reach the record
        op["invoke_wall"], op["invoke_mono"] = _time(), _monotonic()  # as op.start: stamped right before sending
        if in_flight is not None:
            op["in_flight"] = in_flight

    def connected(self, peer: str | None) -> None:
        if peer:
            self.op["peer"] = peer

    def reply(self, status: int, headers: Any, body: bytes | str | None) -> None:
        """A complete, non-streamed reply."""
        parse = self._req.parse or PARSERS.get(self.op["kind"])
        if parse is None:
            raise KeyError(f"no reply parser for op kind {self.op['kind']!r}: declare the operation in the profile's "
                           "[ops] (kind = a check family) or give the Request a parse function")
        parse(self.op, status, headers, body)
        if status >= 500 and body:  # the whole error, for the evidence (excerpts cut it at EXCERPT)
            self.op["error_body"] = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body)[:ERROR_BODY]
        self._end()

    def hold(self, status: int, headers: Any, body: bytes | str | None) -> None:
        """A complete, non-streamed reply, kept to be parsed by `finish`: its completion is stamped
        now, so a driver can judge replies later (in batches) with the times of their arrival."""
        self._held = (status, headers, body)
        complete(self.op)

    @property
    def held(self) -> bool:
        return self._held is not None

    def begin(self, status: int, headers: Any) -> None:
        self._stream = (self._req.stream or ChatStream)(self.op)
        self._stream.begin(status, headers)

    def feed(self, data: bytes, now: float) -> None:
        assert self._stream is not None, "begin() before feed()"
        self._stream.feed(data, now)

    def end_stream(self, exc: BaseException | None = None) -> None:
        """The stream ended: cleanly, or cut by ``exc`` (the chunks that did arrive are kept)."""
        assert self._stream is not None, "begin() before end_stream()"
        self._stream.finish(exc)
        if exc is not None:
            self.op["transport"] = "truncated"
        self._end()

    def transport(self, exc: BaseException, connected: bool | None = None, event: str | None = None) -> None:
        """Nothing complete came back: the exception decides fail (never sent) or info."""
        if self._stream is not None and not self._done:  # mid-stream: what arrived is kept
            self.end_stream(exc)
            return
        event = event or classify(exc, connected if connected is not None else (True if self.op.get("peer") else None))
        text = str(exc)
        self.op["error"] = (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:EXCERPT]
        self.op["transport"] = event
        self.op["outcome"] = TRANSPORT[event]
        self._end()

    def _end(self) -> None:
        self._done = True
        if self._redact is not None:  # Wire.redact is None when there is no secret to hide
            op, text = self.op, self._redact.text
            for name in REDACTED:
                v = op.get(name)
                if v:
                    op[name] = text(v)

    def finish(self) -> dict[str, Any]:
        """Stamp completion; an exchange that never ended is unknown (``info``). A held reply is
        parsed here, keeping the completion stamped when it arrived."""
        op = self.op
        held = self._held
        if held is not None:
            self._held = None
            self.reply(*held)
            return op
        if "outcome" not in op:
            op["outcome"] = "info"
            op.setdefault("error", "no reply recorded")
            op.setdefault("transport", "unknown")
        return complete(op)
