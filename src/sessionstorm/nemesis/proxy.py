"""A loopback TCP proxy in front of the target, whose connections can be reset on demand.

``drop`` faults go through it: while dropping, every open connection is reset (RST, not
a clean close) and every new one is accepted and reset at once, as a flaky load balancer
or a network partition does. Plain sockets and threads: OS threads beside an asyncio
driver, greenlets under Locust (where gevent patched both), the same code either way.
"""
from __future__ import annotations

import contextlib
import socket
import struct
import threading

_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
CHUNK = 65536
MAX_CONNECTIONS = 2000  # accepted and open at once; more are reset (bounded threads)


def _reset(sock: socket.socket) -> None:
    """Close with RST. Shutting the read side first wakes a thread blocked in recv on it (a
    close from another thread does not, and the socket, still in use, would send nothing
    until the peer's timeout); it sends nothing to the peer, so the close is still a reset."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class DropProxy:
    """``DropProxy(upstream_host, upstream_port).start()`` → ``.url``; ``drop(True/False)``; ``stop()``."""

    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.dropping = False
        self.resets = 0
        self._lock = threading.Lock()
        self._open: dict[socket.socket, socket.socket] = {}  # client side -> upstream side
        self._listener = socket.create_server((host, 0), backlog=512)
        self.port = self._listener.getsockname()[1]
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DropProxy:
        threading.Thread(target=self._accept, name="sessionstorm-drop-proxy", daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            if self.dropping or len(self._open) >= MAX_CONNECTIONS:
                self.resets += 1
                _reset(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
        except OSError:  # the target is down: so is the proxy's answer
            self.resets += 1
            _reset(client)
            return
        with self._lock:
            self._open[client] = upstream
        if self.dropping:  # a drop began while it connected
            self._close_pair(client, upstream)
            return
        pending = [2]  # directions still open; the pair is closed when both are done
        threading.Thread(target=self._pipe, args=(upstream, client, pending), daemon=True).start()
        self._pipe(client, upstream, pending)

    def _pipe(self, src: socket.socket, dst: socket.socket, pending: list[int]) -> None:
        try:
            while data := src.recv(CHUNK):
                dst.sendall(data)
            if self.dropping:  # woken by a drop's reset: no clean end for the other side either
                raise ConnectionResetError
            dst.shutdown(socket.SHUT_WR)
        except OSError:  # reset by a drop, or by either side
            self._close_pair(src, dst)
            return
        with self._lock:
            pending[0] -= 1
            last = pending[0] == 0
            if last:
                self._open.pop(src, None)
                self._open.pop(dst, None)
        if last:
            src.close()
            dst.close()

    def _close_pair(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock:
            self._open.pop(a, None)
            self._open.pop(b, None)
        _reset(a)
        _reset(b)

    def drop(self, on: bool) -> None:
        """Start (reset every open connection) or stop dropping."""
        self.dropping = on
        if on:
            with self._lock:
                pairs, self._open = list(self._open.items()), {}
            self.resets += len(pairs)
            for client, upstream in pairs:  # the client's side first: it gets the RST, never a FIN
                _reset(client)
                _reset(upstream)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop(True)
