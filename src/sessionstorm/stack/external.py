"""The external backend: everything already runs somewhere (a staging stack); we only
take its addresses. Nothing is started, nothing is stopped."""
from __future__ import annotations

import os
from typing import Any

from sessionstorm.errors import ConfigError
from sessionstorm.stack.base import Backend, PostgresInfo, RedisInfo, ServiceInfo, TargetHandle

_VARS = {"postgres": "SESSIONSTORM_POSTGRES_DSN", "redis": "SESSIONSTORM_REDIS_URL",
         "provider": "SESSIONSTORM_PROVIDER_URL", "target": "SESSIONSTORM_TARGET_URL"}


class ExternalBackend(Backend):
    name = "external"

    def start(self, progress: Any) -> None:
        get = lambda k: self.options.get(f"{k}_url") or os.environ.get(_VARS[k])  # noqa: E731
        if get("postgres"):
            self.postgres = PostgresInfo.from_dsn(get("postgres"))
        if get("redis"):
            self.redis = RedisInfo.from_url(get("redis"))
        if get("provider"):
            self.provider = ServiceInfo(get("provider"))
        self.target_url = get("target")
        if not (self.target_url or self.postgres or self.redis or self.provider):
            raise ConfigError("backend", "external", f"at least one of {', '.join(_VARS.values())}",
                              "set the URLs of the running services, or use --backend embedded")
        progress(f"external: using {', '.join(k for k in _VARS if get(k))}")

    def create_database(self, name: str) -> PostgresInfo:
        if self.postgres is None:
            raise ConfigError("SESSIONSTORM_POSTGRES_DSN", "unset", "a DSN", "set it to the staging database")
        return self.postgres  # an external service owns its database: never create or drop one

    def start_target(self, name: str, command: list[str], env: dict[str, str], ready_path: str,
                     postgres: PostgresInfo | None, redis: RedisInfo | None, timeout: float) -> TargetHandle:
        if not self.target_url:
            raise ConfigError("SESSIONSTORM_TARGET_URL", "unset", "the URL of the running target",
                              "set it, or use --backend embedded to launch the target here")
        return TargetHandle(name, self.target_url, postgres, redis)

    def stop(self) -> None:
        pass
