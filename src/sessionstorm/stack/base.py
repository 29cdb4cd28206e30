"""What a running stack offers, whatever started it: the seam between backends.

A backend (embedded processes, docker containers, external URLs) starts PostgreSQL,
Redis and the stub provider, makes a fresh database per target, and starts targets.
To add one: subclass `Backend` in its own module and name it in
`sessionstorm.stack.BACKENDS` ("name": "module:attribute"; the attribute is a class or a
factory ``(workdir, options) -> Backend``, which is how ``auto`` can pick one).

`Stack` owns everything around a backend: the temp folder (``workdir``, removed after
``stop``), signal handling, the per-target database and Redis db, progress lines.
"""
from __future__ import annotations

import os
import shutil
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sessionstorm.profile.templates import base_values, dsn_values, url_values
from sessionstorm.profile.templates import fill as _fill


@dataclass(frozen=True, slots=True)
class PostgresInfo:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def with_db(self, dbname: str) -> PostgresInfo:
        return PostgresInfo(self.host, self.port, self.user, self.password, dbname)

    @classmethod
    def from_dsn(cls, dsn: str) -> PostgresInfo:
        u = urlsplit(dsn)
        return cls(u.hostname or "127.0.0.1", u.port or 5432, u.username or "postgres", u.password or "",
                   (u.path or "/postgres").lstrip("/") or "postgres")


@dataclass(frozen=True, slots=True)
class RedisInfo:
    host: str
    port: int
    db: int = 0

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"

    def with_db(self, db: int) -> RedisInfo:
        return RedisInfo(self.host, self.port, db)

    @classmethod
    def from_url(cls, url: str) -> RedisInfo:
        u = urlsplit(url)
        return cls(u.hostname or "127.0.0.1", u.port or 6379, int((u.path or "/0").lstrip("/") or 0))


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    url: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80


@dataclass(slots=True)
class TargetHandle:
    name: str
    url: str
    postgres: PostgresInfo | None
    redis: RedisInfo | None
    env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    _stop: Any = None
    control: Any = None  # what sessionstorm.nemesis kills, pauses and starts again (None: cannot be faulted)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def template_values(postgres: PostgresInfo | None, redis: RedisInfo | None, provider: ServiceInfo | None,
                    port: int | None = None, host: str = "127.0.0.1") -> dict[str, str]:
    """The names a target's command and env templates may use, e.g. ``{postgres_dsn}``
    (the same names as a profile's: `sessionstorm.profile.templates.STACK_NAMES`)."""
    v: dict[str, str] = {**base_values(), "host": host}
    if port is not None:
        v["port"] = str(port)
    if postgres is not None:
        v.update(dsn_values(postgres.dsn))
    if redis is not None:
        v.update(url_values("redis", redis.url))
    if provider is not None:
        v.update(url_values("provider", provider.url))
    return v


def target_env(values: dict[str, str], admin_token: str) -> dict[str, str]:
    """The env every target gets (docs/architecture.md); the target's own env overrides it."""
    env = {"SESSIONSTORM_ADMIN_TOKEN": admin_token, "SESSIONSTORM_TARGET_HOST": values["host"]}
    if "port" in values:
        env.update(SESSIONSTORM_TARGET_PORT=values["port"], PORT=values["port"])
    for var, key in (("SESSIONSTORM_POSTGRES_DSN", "postgres_dsn"), ("SESSIONSTORM_REDIS_URL", "redis_url"),
                     ("SESSIONSTORM_PROVIDER_URL", "provider_url")):
        if key in values:
            env[var] = values[key]
    return env


def fill(template: str, values: dict[str, str]) -> str:
    """Replace ``{name}`` by its value; anything else (unknown names, JSON) stays as it is.
    The profile's one template engine, lenient: a profile's names were checked at load."""
    return _fill(template, values, strict=False)


_NUMBERS = threading.Lock()  # database and Redis db numbers: targets may start from several threads at once
DEFAULT_ADMIN_TOKEN = "sessionstorm-admin"  # unless Stack(admin_token=...)
Progress = Callable[[str], None]  # one human-readable line, e.g. "redis ready on ... (0.1 s)"


class Backend(ABC):
    """Starts and stops what a stack needs. One subclass a backend, registered by name.

    ``options`` holds the `Stack` keyword options: ``provider_args`` (list of provider
    CLI flags), ``start_timeout`` (s, per service), ``admin_token``, plus any
    backend-specific ones (e.g. ``postgres_url`` for external). ``stop`` must be safe to
    call after a partial or failed ``start`` and more than once.
    """

    name: str
    postgres: PostgresInfo | None = None  # set by start(): the admin database
    redis: RedisInfo | None = None        # set by start(): db 0
    provider: ServiceInfo | None = None   # set by start()

    def __init__(self, workdir: os.PathLike[str] | str, options: dict[str, Any]) -> None:
        self.workdir = workdir
        self.options = options
        self._redis_dbs = 0
        self._databases = 0

    @abstractmethod
    def start(self, progress: Progress) -> None:
        """Start PostgreSQL, Redis and the provider; raise StartupError naming what never got ready."""

    @abstractmethod
    def create_database(self, name: str) -> PostgresInfo:
        """A fresh, empty database whose name starts with ``name``."""

    @abstractmethod
    def start_target(self, name: str, command: list[str], env: dict[str, str], ready_path: str,
                     postgres: PostgresInfo | None, redis: RedisInfo | None, timeout: float) -> TargetHandle:
        """Launch ``command`` (templates filled by `fill` from `template_values`, env from
        `target_env` plus ``env``) and wait for ``GET ready_path`` -> 200."""

    @abstractmethod
    def stop(self) -> None:
        """Stop everything started, targets first; leave nothing running."""

    def _database_name(self, name: str) -> str:
        """A new database name: ``name`` made safe, numbered within this stack."""
        with _NUMBERS:
            self._databases += 1
            n = self._databases
        return f"{''.join(c if c.isalnum() else '_' for c in name.lower())}_{n}"

    def _target_setup(self, postgres: PostgresInfo | None, redis: RedisInfo | None, port: int, host: str,
                      env: dict[str, str], **fixed: str) -> tuple[dict[str, str], dict[str, str]]:
        """A target's template values (``fixed`` overrides, e.g. the image's python) and its env:
        `target_env`, then ``env`` filled from those values."""
        values = {**template_values(postgres, redis, self.provider, port, host), **fixed}
        admin = self.options.get("admin_token") or DEFAULT_ADMIN_TOKEN
        values["admin_token"] = admin
        return values, {**target_env(values, admin), **{k: fill(v, values) for k, v in env.items()}}

    def redis_for_target(self) -> RedisInfo | None:
        """The next unused Redis db number (the server needs enough ``databases``)."""
        if self.redis is None:
            return None
        with _NUMBERS:
            self._redis_dbs += 1
            return self.redis.with_db(self._redis_dbs)

    def fault_control(self, component: str) -> Any:
        """The control sessionstorm.nemesis uses on ``postgres``, ``redis`` or ``provider``
        (kill, stop, start again on the same port and data, pause, resume); None: it cannot
        be faulted (an external service)."""
        return None

    def pids(self) -> list[int]:
        """Every process this backend started and still tracks (for leak checks)."""
        return []

    def save_logs(self, dest: Path) -> list[Path]:
        """Copy what each service and target wrote so far into ``dest`` (a run's ``logs/``).
        Processes log to ``<name>.log`` files in the workdir; a backend without them overrides."""
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for log in sorted(Path(self.workdir).glob("*.log")):
            shutil.copyfile(log, dest / log.name)
            out.append(dest / log.name)
        return out
