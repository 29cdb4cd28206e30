"""Starts what a run needs: PostgreSQL, Redis, the stub provider, and targets.

>>> with Stack() as stack:                       # doctest: +SKIP
...     target = stack.start_target(["{python}", "-m", "sessionstorm.target", "serve"])
...     print(target.url, stack.info())

Teardown leaves no process or folder behind: on exit, on an exception, on a failed
start, on Ctrl-C and on SIGTERM.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sessionstorm.errors import ConfigError
from sessionstorm.stack.base import Backend, PostgresInfo, RedisInfo, ServiceInfo, TargetHandle
from sessionstorm.stack.embedded import EmbeddedBackend
from sessionstorm.stack.external import ExternalBackend

__all__ = ["BACKENDS", "PostgresInfo", "RedisInfo", "ServiceInfo", "Stack", "TargetHandle", "resolve_backend"]

BACKENDS: dict[str, type[Backend]] = {"embedded": EmbeddedBackend, "external": ExternalBackend}


def resolve_backend(name: str | None) -> str:
    name = name or os.environ.get("SESSIONSTORM_BACKEND") or "embedded"
    if name not in BACKENDS:
        raise ConfigError("backend", name, f"one of {', '.join(BACKENDS)}",
                          "pass --backend or set SESSIONSTORM_BACKEND to one of them")
    return name


class Stack:
    def __init__(self, backend: str | None = None, *, progress: Callable[[str], None] | None = None,
                 provider_args: list[str] | None = None, start_timeout: float = 60.0, **options: Any) -> None:
        self.backend_name = resolve_backend(backend)
        self.progress = progress or (lambda msg: None)
        self.options = {"provider_args": provider_args or [], "start_timeout": start_timeout, **options}
        self.dir: Path | None = None
        self.backend: Backend | None = None
        self.targets: list[TargetHandle] = []
        self.start_seconds: float | None = None
        self._prev_sigterm: Any = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Stack:
        t0 = time.monotonic()
        self.dir = Path(tempfile.mkdtemp(prefix="sessionstorm-stack-"))
        self.dir.chmod(0o755)  # the postgres system user must reach its data folder
        self.backend = BACKENDS[self.backend_name](self.dir, self.options)
        atexit.register(self.stop)
        self._trap_sigterm()
        try:
            self.backend.start(self.progress)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        backend, self.backend = self.backend, None
        if backend is not None:
            for t in self.targets:
                t.stop()
            self.targets.clear()
            backend.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        atexit.unregister(self.stop)
        if self._prev_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._prev_sigterm)
            self._prev_sigterm = None

    def _trap_sigterm(self) -> None:
        """SIGTERM becomes SystemExit, so `with` blocks and finally clauses tear down."""
        if threading.current_thread() is not threading.main_thread():
            return
        prev = signal.getsignal(signal.SIGTERM)
        if prev not in (signal.SIG_DFL, None):
            return  # the host program (Locust, pytest-xdist) has its own handler: leave it
        self._prev_sigterm = prev

        def on_term(signum: int, frame: Any) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_term)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a run uses ---------------------------------------------------------------
    def _running(self) -> Backend:
        if self.backend is None:
            raise RuntimeError("the stack is not running: call start() or use it in a with block")
        return self.backend

    @property
    def postgres(self) -> PostgresInfo:
        pg = self._running().postgres
        if pg is None:
            raise ConfigError("postgres", "none", "a PostgreSQL in the stack", "set SESSIONSTORM_POSTGRES_DSN")
        return pg

    @property
    def redis(self) -> RedisInfo:
        r = self._running().redis
        if r is None:
            raise ConfigError("redis", "none", "a Redis in the stack", "set SESSIONSTORM_REDIS_URL")
        return r

    @property
    def provider(self) -> ServiceInfo:
        p = self._running().provider
        if p is None:
            raise ConfigError("provider", "none", "a stub provider in the stack", "set SESSIONSTORM_PROVIDER_URL")
        return p

    def create_database(self, name: str) -> str:
        return self._running().create_database(name).dsn

    def start_target(self, command: list[str], env: dict[str, str] | None = None, name: str = "target",
                     ready_path: str = "/healthz", postgres_dsn: str | None = None, timeout: float = 60.0) -> TargetHandle:
        """Start a target with its own fresh database and Redis db (unless given a DSN)."""
        b = self._running()
        env = dict(env or {})
        pg = PostgresInfo.from_dsn(postgres_dsn) if postgres_dsn else (
            b.create_database(name) if b.postgres is not None else None)
        rd = b.next_redis() if isinstance(b, EmbeddedBackend) else b.redis
        t0 = time.monotonic()
        handle = b.start_target(name, command, env, ready_path, pg, rd, timeout)
        self.targets.append(handle)
        self.progress(f"target {name!r} ready on {handle.url} ({time.monotonic() - t0:.1f} s)")
        return handle

    def pids(self) -> list[int]:
        return self.backend.pids() if self.backend is not None else []

    def info(self) -> dict[str, Any]:
        b = self._running()
        out: dict[str, Any] = {"backend": self.backend_name}
        if b.postgres is not None:
            out["postgres_dsn"] = b.postgres.dsn
        if b.redis is not None:
            out["redis_url"] = b.redis.url
        if b.provider is not None:
            out["provider_url"] = b.provider.url
        for t in self.targets:
            out[f"target_{t.name}_url"] = t.url
            if t.postgres is not None:
                out[f"target_{t.name}_postgres_dsn"] = t.postgres.dsn
        return out


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
