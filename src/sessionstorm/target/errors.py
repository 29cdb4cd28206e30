"""The target's own error replies: ``{"error": CODE, "message": ...}`` with a 4xx/5xx status.

The framework's routing 404 keeps its own body (``{"detail": "Not Found"}``), so a client
can tell "no such session" from "no such route".
"""
from __future__ import annotations


class AppError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
