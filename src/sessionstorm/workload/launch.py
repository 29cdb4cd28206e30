"""A profile made real: a running target (launched by the stack, or already running).

`launch(profile, stack)` fills the profile's templates from the stack, runs its setup
commands, starts the service through ``stack.start_target`` and returns a
`RunningTarget`; `attach(profile)` wraps a service given by ``target.base_url``.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from sessionstorm.errors import StartupError
from sessionstorm.workload.profile import PLACEHOLDER, Profile, fill, with_base_url

# Filled by the stack itself when the target starts: its port is chosen then, and the
# python that runs it is the host's (embedded) or the app image's (docker).
STACK_FILLS = ("port", "python")
SETUP_TIMEOUT_S = 300


@dataclass
class RunningTarget:
    """Where the service under test answers, and what the harness needs to talk to it."""

    profile: Profile                     # with target.base_url = url
    url: str
    dsn: str | None = None               # its database, for invariants and keys.sql
    values: dict[str, str] = field(default_factory=dict)  # template values (admin_token, ...)
    handle: Any = None                   # the stack's handle, when launched

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()
            self.handle = None


def _dsn_parts(dsn: str) -> dict[str, str]:
    u = urlsplit(dsn)
    return {"postgres_dsn": dsn, "postgres_host": u.hostname or "", "postgres_port": str(u.port or 5432),
            "postgres_user": unquote(u.username or ""), "postgres_password": unquote(u.password or ""),
            "postgres_db": u.path.lstrip("/")}


def stack_values(stack: Any, dsn: str | None = None) -> dict[str, str]:
    """Template values from a started stack (``dsn``: the target's own database)."""
    v: dict[str, str] = {"python": sys.executable}
    if getattr(stack, "postgres", None) is not None:
        v.update(_dsn_parts(dsn or stack.postgres.dsn))
    if getattr(stack, "redis", None) is not None:
        v.update(redis_url=stack.redis.url, redis_host=stack.redis.host, redis_port=str(stack.redis.port))
    if getattr(stack, "provider", None) is not None:
        v["provider_url"] = stack.provider.url
    return v


def _fill_keep(text: str, values: Mapping[str, str], setting: str) -> str:
    """Fill every placeholder but those the stack fills at start."""
    kept = {n: f"{{{n}}}" for n in STACK_FILLS}
    return fill(text, {**values, **kept}, setting)


def launch(profile: Profile, stack: Any, vars: Mapping[str, str] | None = None, name: str | None = None) -> RunningTarget:
    """Start the profile's service under ``stack``; returns once its ready path answers."""
    t = profile.target
    name = name or t.name
    dsn = stack.create_database(f"{name}_{secrets.token_hex(3)}") if getattr(stack, "postgres", None) else None
    values = {**stack_values(stack, dsn), "admin_token": secrets.token_urlsafe(18), **t.vars, **(vars or {})}
    command = [_fill_keep(s, values, "target.command") for s in t.command or []]
    env = {k: _fill_keep(v, values, f"target.env.{k}") for k, v in t.env.items()}
    for cmd in t.setup:
        filled = [fill(s, values, "target.setup") for s in cmd]
        try:
            r = subprocess.run(filled, env={**os.environ, **env}, capture_output=True, text=True, timeout=SETUP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise StartupError(f"setup command {filled[0]}", "exit 0", f"{type(e).__name__}: {e}") from None
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise StartupError(f"setup command {' '.join(filled)}", "exit 0", f"exit {r.returncode}: {tail[0]}",
                               logs=r.stderr)
    handle = stack.start_target(command=command, env=env, name=name, ready_path=t.ready_path, postgres_dsn=dsn)
    db = fill(profile.database.dsn, values, "database.dsn") if profile.database.dsn else None
    return RunningTarget(with_base_url(profile, handle.url), handle.url, db, values, handle)


def attach(profile: Profile, values: Mapping[str, str] | None = None) -> RunningTarget:
    """A service already running at ``target.base_url``."""
    vals = {**profile.target.vars, **(values or {})}
    dsn = profile.database.dsn
    if dsn and not PLACEHOLDER.search(dsn):
        db: str | None = dsn
    else:
        db = fill(dsn, vals, "database.dsn") if dsn else None
    return RunningTarget(profile, (profile.target.base_url or "").rstrip("/"), db, vals)
