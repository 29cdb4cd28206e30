"""Starts what a run needs: PostgreSQL, Redis, the stub provider, and targets.

>>> with Stack() as stack:                       # doctest: +SKIP
...     target = stack.start_target(["{python}", "-m", "sessionstorm.target", "serve"])
...     print(target.url, stack.info())

Teardown leaves no process or folder behind: on exit, on an exception, on a failed
start, on Ctrl-C, SIGTERM and SIGHUP.
"""
from __future__ import annotations

import atexit
import importlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sessionstorm.errors import ConfigError
from sessionstorm.stack import reaper
from sessionstorm.stack.base import Backend, PostgresInfo, Progress, RedisInfo, ServiceInfo, TargetHandle

__all__ = ["BACKENDS", "PostgresInfo", "RedisInfo", "ServiceInfo", "Stack", "TargetHandle", "resolve_backend"]

# name -> "module:attribute", a Backend subclass or a factory (workdir, options) -> Backend.
# Imported only when chosen, so a pytest plugin or `--help` never pays for docker's imports.
BACKENDS: dict[str, str] = {
    "auto": "",  # docker when an engine answers, else embedded (resolve_backend decides)
    "embedded": "sessionstorm.stack.embedded:EmbeddedBackend",
    "docker": "sessionstorm.stack.docker:DockerBackend",
    "external": "sessionstorm.stack.external:ExternalBackend",
}

_EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # become SystemExit; SIGINT is KeyboardInterrupt already


def resolve_backend(name: str | None, progress: Progress | None = None) -> str:
    """The backend to use: the argument, else SESSIONSTORM_BACKEND, else embedded.
    ``auto`` becomes docker when an engine answers, else embedded, and says which."""
    name = name or os.environ.get("SESSIONSTORM_BACKEND") or "embedded"
    if name not in BACKENDS:
        raise ConfigError("backend", name, f"one of {', '.join(BACKENDS)}",
                          "pass --backend or set SESSIONSTORM_BACKEND to one of them")
    if name == "auto":
        from sessionstorm.stack.docker import engine_answers

        ok, where = engine_answers()
        name = "docker" if ok else "embedded"
        if progress is not None:
            progress(f"backend auto: {name} (docker engine {'at ' + where if ok else 'not usable: ' + where})")
    return name


def _load(name: str) -> Callable[[Path, dict[str, Any]], Backend]:
    module, attr = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def scratch_root() -> str | None:
    """Where a stack's folder goes: /dev/shm when it is a writable tmpfs with room and TMPDIR
    does not say otherwise, else the system's temp folder (None). Everything in the folder
    (PostgreSQL's data and WAL, Redis's AOF, logs) is thrown away at stop, and on a disk it
    costs: beside other work, removing a worker's data folder (a database per target) took
    seconds of the suite's teardown, and initdb/createdb write hundreds of files."""
    if os.environ.get("TMPDIR"):
        return None
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    usable = os.access(shm, os.W_OK | os.X_OK) and not st.f_flag & os.ST_NOEXEC  # staged binaries run from it
    return shm if usable and st.f_bavail * st.f_frsize > 2 << 30 else None


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Stack:
    """A running set of services from one backend; a context manager."""

    def __init__(self, backend: str | None = None, *, progress: Progress | None = None,
                 provider_args: list[str] | None = None, start_timeout: float = 60.0, **options: Any) -> None:
        self.progress = progress or (lambda msg: None)
        self.backend_name = resolve_backend(backend, self.progress)
        self.options = {"provider_args": provider_args or [], "start_timeout": start_timeout, **options}
        self.dir: Path | None = None
        self.backend: Backend | None = None
        self.targets: list[TargetHandle] = []
        self.start_seconds: float | None = None
        self._prev_handlers: dict[int, Any] = {}

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Stack:
        t0 = time.monotonic()
        atexit.register(self.stop)
        self._trap_exit_signals()
        try:
            self.dir = Path(tempfile.mkdtemp(prefix="sessionstorm-stack-", dir=scratch_root()))
            self.dir.chmod(0o755)  # the postgres system user must reach its data folder
            reaper.watch_dir(self.dir)  # and its services' groups (stack.process): gone if we are SIGKILLed
            self.backend = _load(self.backend_name)(self.dir, self.options)
            self.backend.start(self.progress)
        except BaseException:  # also Ctrl-C/SIGTERM mid-start: tear down the part that runs
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop targets, then the services; remove the folder. Safe to call twice."""
        with self._signals_deferred():
            backend, self.backend = self.backend, None
            if backend is not None:
                for t in list(self.targets):
                    t.stop()
                backend.stop()
            self.targets.clear()
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                reaper.unwatch_dir(self.dir)
                self.dir = None
            atexit.unregister(self.stop)
            self._restore_exit_signals()

    def _trap_exit_signals(self) -> None:
        """SIGTERM/SIGHUP become SystemExit, so `with` blocks and finally clauses tear down."""
        if not _on_main_thread():
            return

        def on_signal(signum: int, frame: Any) -> None:
            raise SystemExit(128 + signum)

        for sig in _EXIT_SIGNALS:
            prev = signal.getsignal(sig)
            if prev in (signal.SIG_DFL, None):  # a host program's own handler (Locust, xdist) stays
                self._prev_handlers[sig] = prev
                signal.signal(sig, on_signal)

    def _restore_exit_signals(self) -> None:
        if _on_main_thread():
            for sig, prev in self._prev_handlers.items():
                signal.signal(sig, prev)
        self._prev_handlers.clear()

    @contextmanager
    def _signals_deferred(self) -> Iterator[None]:
        """A second Ctrl-C or SIGTERM during teardown must not cut it short."""
        if not _on_main_thread():
            yield
            return
        sigs = (signal.SIGINT, *_EXIT_SIGNALS)
        saved = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
        try:
            yield
        finally:
            for s, h in saved.items():
                signal.signal(s, h)

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
        """The DSN of a fresh, empty database (its name starts with ``name``)."""
        return self._running().create_database(name).dsn

    def start_target(self, command: list[str], env: dict[str, str] | None = None, name: str = "target",
                     ready_path: str = "/healthz", postgres_dsn: str | None = None,
                     timeout: float = 60.0) -> TargetHandle:
        """Start a target with its own fresh database and Redis db (unless given a DSN);
        return once ``GET ready_path`` answers 200, else raise StartupError."""
        b = self._running()
        pg = PostgresInfo.from_dsn(postgres_dsn) if postgres_dsn else (
            b.create_database(name) if b.postgres is not None else None)
        t0 = time.monotonic()
        handle = b.start_target(name, command, dict(env or {}), ready_path, pg, b.redis_for_target(), timeout)
        backend_stop = handle._stop

        def stop() -> None:  # stopping a target also forgets it
            if backend_stop is not None:
                backend_stop()
            if handle in self.targets:
                self.targets.remove(handle)

        handle._stop = stop
        self.targets.append(handle)
        self.progress(f"target {name!r} ready on {handle.url} ({time.monotonic() - t0:.1f} s)")
        return handle

    def save_logs(self, dest: Path) -> list[Path]:
        """Every service's and target's output so far, as files in ``dest``."""
        return self.backend.save_logs(dest) if self.backend is not None else []

    def pids(self) -> list[int]:
        """The processes the backend started and tracks (not their children)."""
        return self.backend.pids() if self.backend is not None else []

    def info(self) -> dict[str, Any]:
        """Every URL and DSN, by name (what `sessionstorm up` prints)."""
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
            if t.redis is not None:
                out[f"target_{t.name}_redis_url"] = t.redis.url
        return out
