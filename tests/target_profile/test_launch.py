"""Launching what a profile describes is the stack's job (sessionstorm.stack.launch): the
template values a target gets, the admin token, target.cwd, an external stack without Redis."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sessionstorm.errors import ConfigError
from sessionstorm.profile import load_profile
from sessionstorm.profiles import REFERENCE
from sessionstorm.stack import Stack
from sessionstorm.stack.launch import attach, launch, stack_values
from sessionstorm.workload.keys import make_keys

THREADS = Path(__file__).resolve().parents[1] / "services" / "threads.toml"


@pytest.mark.parametrize("env_sets_token", [True, False], ids=["profile-passes-token", "stack-env-only"])
def test_admin_token_of_keys_matches_the_target(tmp_path, sessionstorm_stack, env_sets_token):
    """keys.http_headers use {admin_token}; the target gets the same token whether or not the
    profile passes it in its env (before, only a profile passing it got keys)."""
    text = Path(REFERENCE).read_text()
    if not env_sets_token:
        text = text.replace('SESSIONSTORM_ADMIN_TOKEN = "{admin_token}", ', "")
        assert "SESSIONSTORM_ADMIN_TOKEN" not in text
    path = tmp_path / "ref.toml"
    path.write_text(text)
    target = launch(load_profile(path, env={}, check=False), sessionstorm_stack, name=f"ref-{env_sets_token}")
    try:
        keys = make_keys(target, ["ann"])
        assert keys["ann"] and target.values["admin_token"] == target.handle.env["SESSIONSTORM_ADMIN_TOKEN"]
    finally:
        target.stop()


def test_cwd_and_profile_dir(sessionstorm_stack):
    """threads.toml starts `threads_service.py` by a relative path in cwd = {profile_dir}."""
    target = launch(load_profile(THREADS, env={}, check=False), sessionstorm_stack, name="threads-cwd")
    try:
        assert target.values["profile_dir"] == str(THREADS.parent)
        assert httpx.get(target.url + "/health", timeout=5).json()["ok"] is True
    finally:
        target.stop()


def test_external_stack_without_redis(sessionstorm_stack, tmp_path):
    """An external backend given only a database and a target URL: launching attaches, no crash."""
    running = launch(load_profile(THREADS, env={}, check=False), sessionstorm_stack, name="threads-ext")
    try:
        with Stack("external", postgres_dsn=sessionstorm_stack.postgres.dsn, target_url=running.url) as ext:
            values = stack_values(ext)
            assert "redis_url" not in values and values["postgres_dsn_asyncpg"].startswith("postgresql+asyncpg://")
            target = launch(load_profile(THREADS, {"target.env": "{}"}, env={}, check=False), ext)
            assert target.url == running.url.rstrip("/")
            with pytest.raises(ConfigError, match=r"target.env.REDIS_URL=\{redis_url\}: expected a value for \{redis_url\}"):
                launch(load_profile(THREADS, env={}, check=False), ext)  # needs a Redis the stack lacks: one line
    finally:
        running.stop()


def test_attach_values(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[target]\nbase_url = "http://127.0.0.1:9"\nvars = { bug = "none" }\n[auth]\nheader = ""\n')
    t = attach(load_profile(path, env={}, check=False))
    assert t.url == "http://127.0.0.1:9" and t.values["host"] == "127.0.0.1" and t.values["bug"] == "none"
    assert t.values["profile_dir"] == str(tmp_path)
