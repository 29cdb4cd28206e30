"""Locust integration: user classes, and (on import) the listeners that run the harness."""
from sessionstorm.locust import plugin  # noqa: F401  (registers options and listeners)
from sessionstorm.locust.users import (
    ConversationUser, GatewayUser, ModelSwitchStreamUser, ModelSwitchUser, ObserveUser, SessionstormUser,
    SharedKeyStreamUser, SharedKeyUser,
)

__all__ = ["ConversationUser", "GatewayUser", "ModelSwitchStreamUser", "ModelSwitchUser", "ObserveUser",
           "SessionstormUser", "SharedKeyStreamUser", "SharedKeyUser"]
