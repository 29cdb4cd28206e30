"""The stub provider: a fast, deterministic stand-in for an upstream LLM provider.

Two modes (``--mode``): ``openai`` serves the plain OpenAI API and the session-router API
of seed 000; ``proxy-router`` serves the Morpheus-Lumerin-Node proxy-router API a gateway
uses for chat (`router`). Both share one engine, including seed 000's flaw (no request id:
concurrent replies on one session go to whichever request waits). ``--models`` takes names
or a count of generated 0x-hex ids (`catalog`). See docs/architecture.md, "Stub provider".
"""
from sessionstorm.provider.app import create_app
from sessionstorm.provider.settings import DEFAULT_MODELS, Settings

__all__ = ["DEFAULT_MODELS", "Settings", "create_app"]
