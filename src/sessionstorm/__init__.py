"""sessionstorm: finds the concurrency bugs of session-backed API gateways, with evidence.

The Locust user classes are exported lazily: importing Locust patches the process for
gevent, which only a Locust run should pay for.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LOCUST = ("ConversationUser", "GatewayUser", "ModelSwitchStreamUser", "ModelSwitchUser", "ObserveUser",
           "SessionstormUser", "SharedKeyStreamUser", "SharedKeyUser")

__all__ = ["__version__", *_LOCUST]


def __getattr__(name: str) -> Any:
    if name in _LOCUST:
        import sessionstorm.locust as _locust
        return getattr(_locust, name)
    raise AttributeError(f"module 'sessionstorm' has no attribute {name!r}")
