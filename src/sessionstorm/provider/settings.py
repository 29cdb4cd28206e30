"""Latency model and faults of the stub provider, validated where they are set."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sessionstorm.errors import ConfigError

DEFAULT_MODELS = ("qwen3-235b", "llama-70b", "mistral-7b")
MODES = ("openai", "proxy-router")  # openai also serves the session-router routes of seed 000
DEFAULT_BASIC_AUTH = "admin:sessionstorm"  # proxy-router mode only; the real node's user is admin too

# name -> (lowest allowed, highest allowed, what it means)
_LIMITS: dict[str, tuple[float, float, str]] = {
    "ttft_ms": (0, 60_000, "time to first token, ms"),
    "token_ms": (0, 10_000, "delay per generated token, ms"),
    "jitter_ms": (0, 60_000, "random extra latency per request, up to this many ms"),
    "min_tokens": (1, 100_000, "fewest tokens in a reply"),
    "max_tokens": (1, 100_000, "most tokens in a reply"),
    "fault_500": (0, 1, "probability of an HTTP 500"),
    "fault_drop": (0, 1, "probability of closing the connection without sending data"),
    "fault_cut": (0, 1, "probability of cutting a stream mid-way"),
    "delay_ms": (0, 600_000, "fixed delay added to every chat request, ms"),
    "session_open_ms": (0, 60_000, "time to open a session (seed 000: a blockchain transaction), ms"),
    "session_ttl_s": (0, 86_400 * 365, "expire sessions after this many seconds (0: their own duration)"),
}


@dataclass(frozen=True, slots=True)
class Settings:
    ttft_ms: float = 20.0
    token_ms: float = 1.0
    jitter_ms: float = 20.0
    min_tokens: int = 24
    max_tokens: int = 96
    fault_500: float = 0.0
    fault_drop: float = 0.0
    fault_cut: float = 0.0
    delay_ms: float = 0.0
    session_open_ms: float = 20.0
    session_ttl_s: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            lo, hi, meaning = _LIMITS[f.name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ConfigError(f.name.replace("_", "-"), value, f"a number from {lo:g} to {hi:g} ({meaning})",
                                  f"pass --{f.name.replace('_', '-')} within that range")
        if self.min_tokens > self.max_tokens:
            raise ConfigError("min-tokens", self.min_tokens, f"at most max-tokens ({self.max_tokens})",
                              "lower --min-tokens or raise --max-tokens")

    def update(self, changes: dict[str, Any]) -> Settings:
        """A copy with `changes` applied; unknown names and bad values are ConfigErrors."""
        known = {f.name for f in fields(self)}
        for name in changes:
            if name not in known:
                raise ConfigError(name, changes[name], f"one of {', '.join(sorted(known))}", "fix the setting's name")
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def describe(name: str) -> str:
        return _LIMITS[name][2]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError("mode", mode, f"one of {', '.join(MODES)}", "pass --mode openai or --mode proxy-router")
    return mode


def parse_basic_auth(value: str) -> tuple[str, str]:
    """``USER:PASS`` → (user, password); the real router refuses an empty user or password."""
    user, sep, password = value.partition(":")
    if not (sep and user and password):
        raise ConfigError("basic-auth", value, "USER:PASS with neither part empty",
                          f"pass --basic-auth {DEFAULT_BASIC_AUTH}")
    return user, password
