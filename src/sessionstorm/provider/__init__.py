"""The stub provider: a fast, deterministic stand-in for an upstream LLM provider.

One ASGI app serves both profiles: the plain OpenAI API and the session-router API of
seed 000, including its flaw (no request id: concurrent replies on one session go to
whichever request waits). See docs/architecture.md, "Stub provider".
"""
from sessionstorm.provider.app import create_app
from sessionstorm.provider.settings import DEFAULT_MODELS, Settings

__all__ = ["DEFAULT_MODELS", "Settings", "create_app"]
