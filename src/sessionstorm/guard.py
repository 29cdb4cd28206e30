"""Loopback unless told otherwise, and rails for when remote targets are allowed.

``check_target`` runs before any request: every address the target's host resolves to
(IPv4 and IPv6) must be loopback, else one line naming the address and the switch.
``RemoteRails`` is pure logic over a clock: a rate cap (GCRA token bucket), a request cap
and an error-rate window that says when to abort. Drivers call ``acquire`` (gevent,
threads: blocking with a passed-in sleep) or ``acquire_async`` (asyncio) before each
request and ``record`` after it.

>>> check_target("http://127.0.0.1:8000/")
['127.0.0.1']
>>> rails = RemoteRails(max_rps=10, max_requests=2, clock=lambda: 0.0)
>>> rails.reserve(), rails.reserve(), rails.reserve()
(0.0, 0.1, None)
>>> rails.stop_reason
'request cap reached: 2 requests (--max-requests 2)'
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from sessionstorm import endpoints
from sessionstorm.endpoints import is_loopback
from sessionstorm.errors import ConfigError

ALLOW_ENV = "SESSIONSTORM_ALLOW_REMOTE"
SWITCH = f"pass --allow-remote, set {ALLOW_ENV}=1 or [target] allow_remote = true to allow it"
DEFAULT_MAX_RPS = 50.0
DEFAULT_ABORT_ERROR_RATE = 0.5
WINDOW_S = 30.0
MIN_OPS = 20  # a handful of early failures must not abort a soak

Resolver = Mapping[str, Sequence[str]]


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


def resolve_host(host: str, port: int | None = None, resolve: Resolver | None = None) -> list[str]:
    """Every address of ``host``, both families, in resolver order without duplicates
    (resolution itself is `sessionstorm.endpoints.resolve`'s: one place for it)."""
    host = host.strip("[]")
    if _is_literal(host):
        return [host]  # nothing to look up
    shown = f"[{host}]" if ":" in host else host
    try:
        return [a.ip for a in endpoints.resolve(f"http://{shown}:{port or 80}", resolve, allow_remote=True)]
    except ConfigError as e:
        if e.setting == "target.base_url":  # the name did not resolve
            raise ConfigError("target", host, "a host name that resolves", "check the URL or your DNS") from None
        raise


def check_target(url: str, allow_remote: bool = False, resolve: Resolver | None = None) -> list[str]:
    """The target's addresses; ConfigError (one line) when any is not loopback and remote
    targets are not allowed. Resolves once per call (~tens of µs from /etc/hosts)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:  # a port out of range or a bad IPv6 literal
        raise ConfigError("target", url, "an http(s) URL", f"fix the URL ({e})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError("target", url, "an http(s) URL with a host", "e.g. http://127.0.0.1:8000")
    addresses = resolve_host(host, port, resolve)
    if not allow_remote:
        for a in addresses:
            if not is_loopback(a):
                shown = host if _is_literal(host) else f"{a} (from {host})"
                raise ConfigError("target", shown, "a loopback address (127.0.0.0/8 or ::1)", SWITCH)
    return addresses


def remote_allowed(flag: bool | None = None, env: Mapping[str, str] | None = None,
                   config: bool | None = None) -> bool:
    """The switch: the flag wins, then SESSIONSTORM_ALLOW_REMOTE, then ``[target] allow_remote``."""
    if flag is not None:
        return flag
    raw = (os.environ if env is None else env).get(ALLOW_ENV)
    if raw is not None and raw.strip() != "":
        v = raw.strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
        raise ConfigError(ALLOW_ENV, raw, "1 or 0", f"set {ALLOW_ENV}=1 to allow remote targets, or unset it")
    return bool(config)


class RemoteRails:
    """Rate cap, request cap and abort-on-error-spike for a remote target; thread-,
    greenlet- and asyncio-safe (the lock is never held while sleeping)."""

    def __init__(self, max_rps: float = DEFAULT_MAX_RPS, max_requests: int | None = None,
                 abort_error_rate: float = DEFAULT_ABORT_ERROR_RATE, *, burst: int = 1,
                 window_s: float = WINDOW_S, min_ops: int = MIN_OPS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not max_rps > 0:
            raise ConfigError("max-rps", max_rps, "a number > 0", "pass --max-rps, e.g. --max-rps 20")
        if max_requests is not None and max_requests < 1:
            raise ConfigError("max-requests", max_requests, "an integer >= 1", "pass --max-requests, e.g. 50000")
        if not 0 < abort_error_rate <= 1:
            raise ConfigError("abort-error-rate", abort_error_rate, "a rate in (0, 1]",
                              "pass --abort-error-rate, e.g. 0.5 for 50 %")
        if burst < 1 or min_ops < 1 or not window_s > 0:
            raise ValueError("burst and min_ops must be >= 1, window_s > 0")
        self.max_rps, self.max_requests, self.abort_error_rate = float(max_rps), max_requests, abort_error_rate
        self.window_s, self.min_ops, self.clock = window_s, min_ops, clock
        self._interval = 1.0 / self.max_rps
        self._tolerance = (burst - 1) * self._interval
        self._tat: float | None = None  # GCRA "theoretical arrival time" of the next request
        self.issued = 0
        # One bucket per whole second: memory stays ~window_s entries at any rate.
        self._buckets: deque[list[int]] = deque()  # [second, ops, errors]
        self._ops = self._errors = 0
        self.aborted: str | None = None
        self.capped: str | None = None
        self._lock = threading.Lock()

    # -- rate and request caps --------------------------------------------------------
    def reserve(self) -> float | None:
        """Take the next slot: seconds to wait before sending, or None when the run must
        stop (request cap reached or aborted). Never blocks."""
        with self._lock:
            if self.aborted or self.capped:
                return None
            if self.max_requests is not None and self.issued >= self.max_requests:
                self.capped = f"request cap reached: {self.issued} requests (--max-requests {self.max_requests})"
                return None
            now = self.clock()
            tat = now if self._tat is None else max(self._tat, now)
            wait = max(0.0, tat - self._tolerance - now)
            self._tat = tat + self._interval
            self.issued += 1
            return wait

    def acquire(self, sleep: Callable[[float], object] = time.sleep) -> bool:
        """Block (with ``sleep``: gevent.sleep under Locust) until a request may go; False
        when the run must stop instead."""
        wait = self.reserve()
        if wait is None:
            return False
        if wait > 0:
            sleep(wait)
        return self.aborted is None  # an abort while we waited stops this one too

    async def acquire_async(self) -> bool:
        wait = self.reserve()
        if wait is None:
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        return self.aborted is None

    # -- error-rate window ------------------------------------------------------------
    def record(self, outcome: str | bool) -> str | None:
        """Count a finished request (``ok``/True is a success; ``fail``, ``info`` and False
        are errors: a staging that times out is as down as one that answers 500).
        Returns the abort reason once the window trips; it stays tripped."""
        error = not outcome if isinstance(outcome, bool) else outcome != "ok"
        with self._lock:
            now = self.clock()
            second = int(now)
            if self._buckets and self._buckets[-1][0] == second:
                b = self._buckets[-1]
            else:
                b = [second, 0, 0]
                self._buckets.append(b)
            b[1] += 1
            b[2] += error
            self._ops += 1
            self._errors += error
            self._expire(now)
            if (self.aborted is None and self._ops >= self.min_ops
                    and self._errors / self._ops > self.abort_error_rate):
                self.aborted = (f"error rate {self._errors / self._ops:.0%} over the last {self.window_s:g} s "
                                f"({self._errors} of {self._ops} requests) > --abort-error-rate "
                                f"{self.abort_error_rate:g}")
            return self.aborted

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._buckets and self._buckets[0][0] + 1 <= horizon:  # the whole second is older
            _, ops, errors = self._buckets.popleft()
            self._ops -= ops
            self._errors -= errors

    def error_rate(self) -> tuple[int, int]:
        """(errors, ops) in the current window."""
        with self._lock:
            self._expire(self.clock())
            return self._errors, self._ops

    @property
    def stop_reason(self) -> str | None:
        return self.aborted or self.capped

    def banner(self, url: str, addresses: Sequence[str]) -> str:
        """The line a run prints before load on a remote target."""
        cap = f"{self.max_requests} requests" if self.max_requests is not None else "no request cap"
        return (f"REMOTE TARGET {url} ({', '.join(addresses)}): at most {self.max_rps:g} req/s, {cap}, "
                f"abort when the error rate over {self.window_s:g} s exceeds {self.abort_error_rate:.0%}")
