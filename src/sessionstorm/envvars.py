"""Every ``SESSIONSTORM_*`` environment variable the harness reads, so a misspelt one is
named instead of silently ignored (a BAKCEND is answered "did you mean ..._BACKEND?").

Profile keys are ``SESSIONSTORM_<SECTION>_<KEY>`` (sessionstorm.profile); the rest are
listed here. tests/test_envvars.py fails when the source reads a name this list lacks.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import fields

PREFIX = "SESSIONSTORM_"
OTHERS = frozenset({
    # commands and the Locust plugin
    "TARGET_PROFILE", "TARGET_BUGS", "BACKEND", "REPORTS", "SHARED_KEYS", "USERS", "MAX_ERROR_RATE",
    "MAX_INFO_RATE", "MAX_P95_MS", "ALLOW_REMOTE", "MAX_RPS", "MAX_REQUESTS", "ABORT_ERROR_RATE",
    "METRICS_PORT", "FAULTS", "WORKER_TOKEN", "TARGET_URL", "PROGRESS_DELAY_S",
    "CHECK_MEMORY", "CHECK_THREADS",  # sessionstorm.columns: DuckDB's memory limit and threads
    "SMALL_HISTORY",  # sessionstorm.columns: the size under which a history skips Parquet (-1: never)
    "LLAMA_SERVER", "LLM_MODEL",  # sessionstorm.llm: another llama-server binary or GGUF (bench/llm_rehearsal.py)
    # the stack: external services, docker images, the Makefile's switches
    "POSTGRES_DSN", "REDIS_URL", "PROVIDER_URL", "POSTGRES_IMAGE", "REDIS_IMAGE", "APP_IMAGE", "BASE_IMAGE",
    "DOCKER", "DOCKER_PULL", "REQUIRE_DOCKER", "DEBIAN_SUITE", "DEBIAN_MIRROR", "POSTGRES_PORT", "REDIS_PORT",
    "PROVIDER_PORT", "CHROMIUM", "BUG_ROUNDS",
    # what a launched target is given (the reference target reads them)
    "ADMIN_TOKEN", "TARGET_HOST", "TARGET_PORT", "TARGET_REDIS_INIT_MS", "TARGET_OBSERVE_WORK_MS",
    "TARGET_CREATE_WORK_MS",
})
PREFIXES = ("COMPARE_", "INVARIANTS_", "OPS_")  # families: one variable per limit / invariant / operation


def known() -> set[str]:
    from sessionstorm.profile.schema import SECTIONS

    names = {PREFIX + n for n in OTHERS}
    for section, cls in SECTIONS.items():
        names |= {f"{PREFIX}{section.upper()}_{f.name.upper()}" for f in fields(cls)}
    return names


def unknown(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """(name, closest known name or None) for each SESSIONSTORM_* variable nothing reads."""
    env = os.environ if environ is None else environ
    names = known()
    out = []
    for name in sorted(env):
        if not name.startswith(PREFIX) or name in names or name[len(PREFIX):].startswith(PREFIXES):
            continue
        # compared without the shared prefix, which would make every pair look alike
        close = difflib.get_close_matches(name[len(PREFIX):], [n[len(PREFIX):] for n in names], n=1, cutoff=0.75)
        out.append((name, PREFIX + close[0] if close else None))
    return out


def warn_unknown(say: Callable[[str], None], environ: Mapping[str, str] | None = None) -> None:
    for name, close in unknown(environ):
        say(f"warning: {name} is not a sessionstorm setting (ignored)" + (f"; did you mean {close}?" if close else ""))
