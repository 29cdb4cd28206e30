"""The reference target's settings, read from the env the stack sets (docs/architecture.md)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from sessionstorm.errors import ConfigError
from sessionstorm.target.bugs import parse_bugs

MAX_PROMPT_CHARS = 32_000


@dataclass(frozen=True, slots=True)
class Settings:
    postgres_dsn: str
    redis_url: str
    provider_url: str
    admin_token: str
    bugs: frozenset[str]
    session_ttl_s: int = 3600

    def has(self, bug: str) -> bool:
        return bug in self.bugs

    @classmethod
    def from_env(cls) -> Settings:
        def need(var: str, example: str) -> str:
            value = os.environ.get(var, "").strip()
            if not value:
                raise ConfigError(var, "unset", example, f"export {var} (the stack sets it for you)")
            return value
        return cls(
            postgres_dsn=need("SESSIONSTORM_POSTGRES_DSN", "a DSN like postgresql://user:pw@127.0.0.1:5432/db"),
            redis_url=need("SESSIONSTORM_REDIS_URL", "a URL like redis://127.0.0.1:6379/0"),
            provider_url=need("SESSIONSTORM_PROVIDER_URL", "the stub provider's URL, e.g. http://127.0.0.1:8081"),
            admin_token=os.environ.get("SESSIONSTORM_ADMIN_TOKEN", "sessionstorm-admin"),
            bugs=parse_bugs(os.environ.get("SESSIONSTORM_TARGET_BUGS"), "SESSIONSTORM_TARGET_BUGS"),
        )
