"""A profile made real: its service launched under a stack, or attached where it runs.

`launch(profile, stack)` fills the profile's templates from the stack (the one template
engine, `sessionstorm.profile.templates`), runs its setup commands, starts the service
through ``stack.start_target`` (in ``target.cwd`` when given) and returns a
`RunningTarget`; `attach(profile)` wraps a service given by ``target.base_url``. The
profile describes; this module starts processes.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sessionstorm.errors import StartupError
from sessionstorm.profile import Profile, fill, profile_dir, with_base_url
from sessionstorm.profile.provider import provider_args, provider_values
from sessionstorm.profile.templates import (
    LATE_NAMES,
    base_values,
    dsn_values,
    url_values,
)
from sessionstorm.stack.base import DEFAULT_ADMIN_TOKEN

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


def _part(stack: Any, name: str) -> Any:
    """A stack service, or None when the backend has none (an external stack without Redis)."""
    backend = getattr(stack, "backend", None)
    if backend is not None:
        return getattr(backend, name, None)
    try:
        return getattr(stack, name, None)
    except Exception:  # noqa: BLE001  (Stack's properties raise ConfigError when a part is missing)
        return None


def stack_values(stack: Any, dsn: str | None = None) -> dict[str, str]:
    """Template values from a started stack (``dsn``: the target's own database)."""
    v = base_values()
    pg, redis, provider = _part(stack, "postgres"), _part(stack, "redis"), _part(stack, "provider")
    if pg is not None:
        v.update(dsn_values(dsn or pg.dsn))
    if redis is not None:
        v.update(url_values("redis", redis.url))
    if provider is not None:
        v.update(url_values("provider", provider.url))
    options = getattr(stack, "options", None)
    v["admin_token"] = (options or {}).get("admin_token") or DEFAULT_ADMIN_TOKEN
    return v


def launch(profile: Profile, stack: Any, vars: Mapping[str, str] | None = None, name: str | None = None) -> RunningTarget:
    """Start the profile's service under ``stack``; returns once its ready path answers."""
    t = profile.target
    name = name or t.name
    dsn = stack.create_database(f"{name}_{os.urandom(3).hex()}") if _part(stack, "postgres") is not None else None
    values = {**stack_values(stack, dsn), **provider_values(profile), "profile_dir": profile_dir(profile), **t.vars,
              **(vars or {})}
    late = {n: f"{{{n}}}" for n in LATE_NAMES}  # the stack fills these as the target starts

    def early(text: str, setting: str) -> str:
        return fill(text, {**values, **late}, setting)

    command = [early(s, "target.command") for s in t.command or []]
    env = {k: early(v, f"target.env.{k}") for k, v in t.env.items()}
    if t.cwd:
        cwd = fill(t.cwd, values, "target.cwd")
        if not os.path.isdir(cwd):
            from sessionstorm.errors import ConfigError
            raise ConfigError("target.cwd", cwd, "an existing folder", f"fix [target] cwd in {profile.source}")
        command = ["{python}", "-m", "sessionstorm.stack.chdir", cwd, *command]
    else:
        cwd = None
    for cmd in t.setup:
        filled = [fill(s, values, "target.setup") for s in cmd]
        try:
            r = subprocess.run(filled, env={**os.environ, **env}, capture_output=True, text=True,
                               timeout=SETUP_TIMEOUT_S, cwd=cwd)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise StartupError(f"setup command {filled[0]}", "exit 0", f"{type(e).__name__}: {e}") from None
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise StartupError(f"setup command {' '.join(filled)}", "exit 0", f"exit {r.returncode}: {tail[0]}",
                               logs=r.stderr)
    handle = stack.start_target(command=command, env=env, name=name, ready_path=t.ready_path, postgres_dsn=dsn)
    values.update(port=str(handle.url.rsplit(":", 1)[-1]))
    db = fill(profile.database.dsn, values, "database.dsn") if profile.database.dsn else None
    return RunningTarget(with_base_url(profile, handle.url), handle.url, db, values, handle)


def attach(profile: Profile, values: Mapping[str, str] | None = None) -> RunningTarget:
    """A service already running at ``target.base_url``."""
    vals = {**base_values(), "profile_dir": profile_dir(profile), **profile.target.vars, **(values or {})}
    db = fill(profile.database.dsn, vals, "database.dsn") if profile.database.dsn else None
    return RunningTarget(profile, (profile.target.base_url or "").rstrip("/"), db, vals)


__all__ = ["RunningTarget", "attach", "launch", "provider_args", "stack_values"]
