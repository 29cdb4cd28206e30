"""The external backend: everything already runs somewhere (a staging stack); we only
take its addresses. Nothing is started, nothing is stopped, no database is created."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

from sessionstorm.errors import ConfigError
from sessionstorm.stack.base import Backend, PostgresInfo, Progress, RedisInfo, ServiceInfo, TargetHandle

# part -> (Stack option, env var, accepted URL schemes)
_SOURCES = {
    "postgres": ("postgres_dsn", "SESSIONSTORM_POSTGRES_DSN", ("postgresql", "postgres")),
    "redis": ("redis_url", "SESSIONSTORM_REDIS_URL", ("redis", "rediss")),
    "provider": ("provider_url", "SESSIONSTORM_PROVIDER_URL", ("http", "https")),
    "target": ("target_url", "SESSIONSTORM_TARGET_URL", ("http", "https")),
}


class ExternalBackend(Backend):
    name = "external"
    target_url: str | None = None

    def _get(self, part: str) -> str | None:
        option, var, schemes = _SOURCES[part]
        value = self.options.get(option) or os.environ.get(var)
        if value and urlsplit(value).scheme not in schemes:
            raise ConfigError(var, value, f"a URL starting with {' or '.join(s + '://' for s in schemes)}",
                              f"set {var} to the full address, e.g. {schemes[0]}://127.0.0.1:PORT")
        return value or None

    def start(self, progress: Progress) -> None:
        found = {part: self._get(part) for part in _SOURCES}
        if not any(found.values()):
            raise ConfigError("backend", "external", f"at least one of {', '.join(v for _, v, _ in _SOURCES.values())}",
                              "set the addresses of the running services, or use --backend embedded")
        if found["postgres"]:
            self.postgres = PostgresInfo.from_dsn(found["postgres"])
        if found["redis"]:
            self.redis = RedisInfo.from_url(found["redis"])
        if found["provider"]:
            self.provider = ServiceInfo(found["provider"])
        self.target_url = found["target"]
        progress(f"external: using {', '.join(part for part, url in found.items() if url)}")

    def create_database(self, name: str) -> PostgresInfo:
        if self.postgres is None:
            raise ConfigError("SESSIONSTORM_POSTGRES_DSN", "unset", "a DSN", "set it to the staging database")
        return self.postgres  # an external service owns its database: never create or drop one

    def redis_for_target(self) -> RedisInfo | None:
        return self.redis  # the running target already has its Redis: hand out what we were given

    def start_target(self, name: str, command: list[str], env: dict[str, str], ready_path: str,
                     postgres: PostgresInfo | None, redis: RedisInfo | None, timeout: float) -> TargetHandle:
        if not self.target_url:
            raise ConfigError("SESSIONSTORM_TARGET_URL", "unset", "the URL of the running target",
                              "set it, or use --backend embedded to launch the target here")
        return TargetHandle(name, self.target_url.rstrip("/"), postgres, redis)

    def stop(self) -> None:
        pass  # nothing of ours runs
