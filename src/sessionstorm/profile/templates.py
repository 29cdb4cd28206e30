"""The one template engine of a profile: ``{name}`` placeholders in every string.

Paths, headers, bodies, env, commands, setup, SQL and DSNs are all filled here, from
one set of names (`STACK_NAMES`, `OP_NAMES`, ``[target] vars``). A placeholder is an
identifier in braces; any other brace (JSON, SQL) is text. ``{{`` and ``}}`` stand for
literal braces around an identifier. An unknown placeholder is one `ConfigError` line
naming it, the setting, and the names that are known.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sessionstorm.errors import ConfigError

PLACEHOLDER = re.compile(r"(?<!\{)\{([a-zA-Z_][a-zA-Z0-9_]*)\}(?!\})")
_ESCAPED = re.compile(r"\{\{([a-zA-Z_][a-zA-Z0-9_]*)\}\}")

# Filled from the stack (or the profile file) before the service starts.
STACK_NAMES = ("postgres_dsn", "postgres_dsn_asyncpg", "postgres_dsn_psycopg", "postgres_dsn_libpq",
               "postgres_host", "postgres_port", "postgres_user", "postgres_password", "postgres_db",
               "redis_url", "redis_host", "redis_port", "redis_db", "provider_url", "provider_host", "provider_port",
               "provider_models", "provider_model_ids",
               "host", "port", "admin_token", "python", "profile_dir")
# Filled per operation, when a request is built.
OP_NAMES = ("canary", "prompt", "session_id", "user", "user_id", "key", "model", "op_id", "request_id")
# The stack fills these itself when the target starts (its port is chosen then).
LATE_NAMES = ("port", "host", "python")


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def strings(tree: Any) -> Iterable[str]:
    """Every string in a TOML value (table, array, string), keys excluded."""
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from strings(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from strings(v)


def check_names(text: str, known: Iterable[str], setting: str, fix: str) -> None:
    """A ConfigError naming the first unknown placeholder of ``text`` and the known ones."""
    known = set(known)
    unknown = sorted(placeholders(text) - known)
    if unknown:
        raise ConfigError(setting, text, f"placeholders among {', '.join('{' + n + '}' for n in sorted(known))} "
                          f"(unknown: {{{unknown[0]}}})", fix)


def fill(text: str, values: Mapping[str, Any], setting: str = "template", *, strict: bool = True,
         url_quote: bool = False) -> str:
    """Fill ``{name}`` placeholders from ``values``.

    ``strict``: a name without a value is a ConfigError naming the setting (else it stays
    as written, for templates the stack fills later). ``url_quote``: values are quoted for
    a URL path segment.
    """
    if "{" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        v = values.get(m[1])
        if v is None:
            if strict:
                raise ConfigError(setting, text, f"a value for {{{m[1]}}} (known here: "
                                  f"{', '.join(sorted(k for k, x in values.items() if x is not None))})",
                                  "define it in [target] vars or run under a stack that provides it")
            return m[0]
        return quote(str(v), safe="") if url_quote else str(v)
    return _ESCAPED.sub(r"{\1}", PLACEHOLDER.sub(sub, text))


def fill_tree(tree: Any, values: Mapping[str, Any], setting: str) -> Any:
    """A TOML value with every string filled (tables and arrays kept as they are)."""
    if isinstance(tree, str):
        return fill(tree, values, setting)
    if isinstance(tree, dict):
        return {k: fill_tree(v, values, f"{setting}.{k}") for k, v in tree.items()}
    if isinstance(tree, list):
        return [fill_tree(v, values, setting) for v in tree]
    return tree


def dsn_values(dsn: str) -> dict[str, str]:
    """``postgres_*`` values of a DSN, with its driver variants (SQLAlchemy's asyncpg and
    psycopg URLs, the plain libpq ``postgresql://``)."""
    u = urlsplit(dsn)
    scheme = u.scheme.split("+", 1)[0]
    plain = urlunsplit(("postgresql" if scheme in ("postgres", "postgresql") else scheme, u.netloc, u.path,
                        u.query, u.fragment))
    rest = plain.split("://", 1)[1]
    return {"postgres_dsn": dsn, "postgres_dsn_libpq": plain,
            "postgres_dsn_asyncpg": f"postgresql+asyncpg://{rest}", "postgres_dsn_psycopg": f"postgresql+psycopg://{rest}",
            "postgres_host": u.hostname or "", "postgres_port": str(u.port or 5432),
            "postgres_user": unquote(u.username or ""), "postgres_password": unquote(u.password or ""),
            "postgres_db": u.path.lstrip("/")}


def url_values(prefix: str, url: str) -> dict[str, str]:
    u = urlsplit(url)
    out = {f"{prefix}_url": url, f"{prefix}_host": u.hostname or "",
           f"{prefix}_port": str(u.port or (443 if u.scheme in ("https", "rediss") else 80))}
    if prefix == "redis":
        out["redis_port"] = str(u.port or 6379)
        out["redis_db"] = (u.path or "/0").lstrip("/") or "0"
    return out


def base_values() -> dict[str, str]:
    """Values known everywhere: the interpreter running sessionstorm, the loopback host."""
    return {"python": sys.executable, "host": "127.0.0.1"}
