"""The bug zoo: each seeded bug of the reference target, off by default."""
from __future__ import annotations

from sessionstorm.errors import ConfigError

BUGS: dict[str, str] = {
    "no-request-id": "X-Request-ID is not forwarded; the provider cannot tell concurrent requests apart (seed 000)",
    "model-switch-race": "no lock around a model switch (open new, close what is active) (seed 000)",
    "racy-get-or-create": "get-or-create is select-then-insert with no lock; conversations lack their unique index (seed 002)",
    "bad-fallback": "the primary lookup misses the active conversation; the fallback ends all and creates anew (seed 003)",
    "no-unique-index": "the partial unique index on active gateway sessions is absent (seeds 001, 002)",
    "unlocked-lazy-init": "the Redis client is (re)initialised lazily without a lock; readers see it half-made (seed 004)",
    "lost-update-observe": "observe reads the whole session, appends, writes it back, not atomically (seed 004)",
    "model-id-not-forwarded": "model_id is not sent and the key's session is reused whatever model is asked (seed 000)",
    "no-db-reconnect": "a hand-rolled PostgreSQL pool keeps the connections it opened and never replaces a dead one: "
                       "after PostgreSQL restarts, every database call fails (only faults reveal it)",
    "redis-state-loss": "after Redis restarts the service assumes it came back empty, clears its namespace and treats "
                        "a missing session as a new empty one: acknowledged observations vanish (only faults reveal it)",
    "stale-build": "an older build without the observe route, so the framework answers its generic 404 (seed 004)",
}


def parse_bugs(value: str | None, setting: str = "bugs") -> frozenset[str]:
    names = [b.strip() for b in (value or "").split(",") if b.strip()]
    unknown = [b for b in names if b not in BUGS]
    if unknown:
        raise ConfigError(setting, ",".join(unknown), f"bug names from: {', '.join(BUGS)}",
                          "fix --bugs / SESSIONSTORM_TARGET_BUGS (comma-separated)")
    return frozenset(names)
