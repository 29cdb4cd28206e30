"""Hooks a profile names as "target_profile.hooks:function" (tests/ is on the path)."""
from __future__ import annotations

from typing import Any

import orjson


def build_form(spec: Any, values: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    """A body no table can declare: form-encoded."""
    return {"body": f"note={values['canary']}&who={values['user']}",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


def parse_csv(spec: Any, op: dict[str, Any], status: int, headers: Any, body: bytes) -> None:
    """A read-back answering "a,b,c" lines instead of JSON."""
    op["values"] = [v or None for v in body.decode().strip().split(",")]
    op["session_seen"] = op.get("session_sent")
    op["extra"] = orjson.dumps({"n": len(op["values"])}).decode()
