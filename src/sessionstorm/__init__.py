"""sessionstorm: finds the concurrency bugs of session-backed API gateways, with evidence."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
