"""What a running stack offers, whatever started it: the seam between backends.

A backend (embedded processes, docker containers, external URLs) starts PostgreSQL,
Redis and the stub provider, makes a fresh database per target, and starts targets.
"""
from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


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

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def template_values(postgres: PostgresInfo | None, redis: RedisInfo | None, provider: ServiceInfo | None,
                    port: int | None = None, host: str = "127.0.0.1") -> dict[str, str]:
    """The names a target's command and env templates may use, e.g. ``{postgres_dsn}``."""
    v: dict[str, str] = {"python": sys.executable, "host": host}
    if port is not None:
        v["port"] = str(port)
    if postgres is not None:
        v.update(postgres_dsn=postgres.dsn, postgres_host=postgres.host, postgres_port=str(postgres.port),
                 postgres_user=postgres.user, postgres_password=postgres.password, postgres_db=postgres.dbname)
    if redis is not None:
        v.update(redis_url=redis.url, redis_host=redis.host, redis_port=str(redis.port), redis_db=str(redis.db))
    if provider is not None:
        v.update(provider_url=provider.url, provider_host=provider.host, provider_port=str(provider.port))
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
    """``str.format_map`` that leaves unknown ``{names}`` as they are (e.g. JSON in a command)."""
    class _Keep(dict):  # type: ignore[type-arg]
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"
    return template.format_map(_Keep(values))


class Backend(ABC):
    """Starts and stops what a stack needs. One subclass a backend, registered by name."""

    name: str
    postgres: PostgresInfo | None = None
    redis: RedisInfo | None = None
    provider: ServiceInfo | None = None

    def __init__(self, workdir: os.PathLike[str] | str, options: dict[str, Any]) -> None:
        self.workdir = workdir
        self.options = options

    @abstractmethod
    def start(self, progress: Any) -> None: ...

    @abstractmethod
    def create_database(self, name: str) -> PostgresInfo: ...

    @abstractmethod
    def start_target(self, name: str, command: list[str], env: dict[str, str], ready_path: str,
                     postgres: PostgresInfo | None, redis: RedisInfo | None, timeout: float) -> TargetHandle: ...

    @abstractmethod
    def stop(self) -> None: ...

    def pids(self) -> list[int]:
        """Every process this backend started and still tracks (for leak checks)."""
        return []
