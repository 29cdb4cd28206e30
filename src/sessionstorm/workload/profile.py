"""Target profiles: a TOML file describing the service under test.

A profile says where the service is (``target.base_url``) or how the stack launches
it (``target.command`` with env templates, setup commands, a readiness path), which
API flavors it speaks, its paths, auth, models, how to get API keys, the SQL
invariants of its database and the thresholds of a run. The reference target ships
as ``fixtures/reference.toml``; ``fixtures/example-external.toml`` documents every key.

Every key can be overridden: CLI ``--set section.key=value`` > env var
``SESSIONSTORM_<SECTION>_<KEY>`` > the file > the default. Validation happens at load,
before any load is sent: each bad input is one `ConfigError` line naming the key.
"""
from __future__ import annotations

import os
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import quote

from sessionstorm.errors import ConfigError

if TYPE_CHECKING:
    from sessionstorm.workload.launch import RunningTarget

FLAVORS = ("gateway", "observe", "conversation")
KEY_SOURCES = ("literal", "sql", "http", "hook")
# Names the stack fills in command, env, setup and database templates.
STACK_NAMES = ("postgres_dsn", "postgres_host", "postgres_port", "postgres_user", "postgres_password",
               "postgres_db", "redis_url", "redis_host", "redis_port", "provider_url", "port", "admin_token",
               "python")  # python: the interpreter running sessionstorm
PATH_NAMES = ("session_id", "user_id", "model")
PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")


@dataclass(frozen=True)
class TargetSection:
    name: str = "target"
    base_url: str | None = None          # a running service ...
    command: list[str] | None = None     # ... or how the stack launches it
    env: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)   # defaults of placeholders of our own
    setup: list[list[str]] = field(default_factory=list)  # run before the service starts (migrations)
    ready_path: str = "/healthz"
    flavors: list[str] = field(default_factory=lambda: ["gateway"])
    llm: str = "stub"                    # "real": replies carry the canary only if the model obeys
    timeout_s: float = 30.0
    request_id_header: str = "X-Request-ID"  # "" sends none


@dataclass(frozen=True)
class PathsSection:
    chat: str = "/v1/chat/completions"
    create_session: str = "/sessions"
    observe: str = "/sessions/{session_id}/observe"
    read_session: str = "/sessions/{session_id}"
    delete_session: str = "/sessions/{session_id}"
    message: str = "/v1/conversations/{user_id}/messages"


@dataclass(frozen=True)
class AuthSection:
    header: str = "Authorization"        # "" sends no credentials
    format: str = "Bearer {key}"


@dataclass(frozen=True)
class ModelsSection:
    names: list[str] = field(default_factory=lambda: ["qwen3-235b", "llama-70b", "mistral-7b"])


@dataclass(frozen=True)
class KeysSection:
    source: str = "literal"
    literal: list[str] = field(default_factory=list)
    sql: str | None = None               # returns one row whose first column is the key; {user}
    http_method: str = "POST"
    http_path: str | None = None
    http_headers: dict[str, str] = field(default_factory=dict)
    http_body: dict[str, str] = field(default_factory=dict)
    http_field: str = "api_key"
    hook: str | None = None              # "module:function", called as f(user, target) -> key


@dataclass(frozen=True)
class DatabaseSection:
    dsn: str | None = None               # e.g. "{postgres_dsn}"; none: invariants are skipped


@dataclass(frozen=True)
class ThresholdsSection:
    error_rate: float | None = None       # share of operations not verified ok (default 0.01)
    info_rate: float | None = None        # share with an unknown outcome (default 0.01)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    ttft_p95_ms: float | None = None
    session_reuse_ratio: float | None = None


SECTIONS: dict[str, type] = {
    "target": TargetSection, "paths": PathsSection, "auth": AuthSection, "models": ModelsSection,
    "keys": KeysSection, "database": DatabaseSection, "thresholds": ThresholdsSection,
}
FREE_SECTIONS = ("invariants",)  # name -> SQL returning violating rows


@dataclass(frozen=True)
class Profile:
    target: TargetSection
    paths: PathsSection
    auth: AuthSection
    models: ModelsSection
    keys: KeysSection
    database: DatabaseSection
    thresholds: ThresholdsSection
    invariants: dict[str, str]
    source: str = "<defaults>"

    def path(self, name: str, **values: str) -> str:
        """The path of an operation with its placeholders filled (values URL-quoted)."""
        template = getattr(self.paths, name)
        if "{" not in template:  # most paths have no placeholder: skip the regex
            return template
        return PLACEHOLDER.sub(lambda m: quote(str(values[m[1]]), safe=""), template)

    def auth_headers(self, key: str | None) -> dict[str, str]:
        if key is None or not self.auth.header:
            return {}
        return {self.auth.header: self.auth.format.replace("{key}", key)}

    def launch(self, stack: Any, vars: Mapping[str, str] | None = None, name: str | None = None) -> RunningTarget:
        """Start this service under a started `sessionstorm.stack.Stack` (see workload.launch)."""
        from sessionstorm.workload.launch import launch

        return launch(self, stack, vars, name)

    def attach(self, values: Mapping[str, str] | None = None) -> RunningTarget:
        """This profile's already running service (``target.base_url``)."""
        from sessionstorm.workload.launch import attach

        return attach(self, values)

    def redacted(self) -> dict[str, Any]:
        """The profile for run.json: literal keys and secrets never reach disk."""
        from dataclasses import asdict

        d = {name: asdict(getattr(self, name)) for name in SECTIONS}
        d["invariants"] = dict(self.invariants)
        d["keys"]["literal"] = [f"<{len(self.keys.literal)} keys>"] if self.keys.literal else []
        d["source"] = self.source
        return d


# ---- type checking of TOML values against the dataclass annotations ----

def _describe(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a table of strings"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[tp]


def _fits(value: Any, tp: Any) -> bool:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args if a is not type(None))
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _fits(v, args[1]) for k, v in value.items())
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _from_text(text: str, tp: Any) -> Any:
    """An env var or CLI value as the key's type: TOML syntax, or a bare string / comma list."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if get_origin(tp) is list and get_args(tp)[0] is str:
        return [p.strip() for p in text.split(",") if p.strip()]
    return text


def _env_name(section: str, key: str) -> str:
    return f"SESSIONSTORM_{section.upper()}_{key.upper()}"


def _fix(section: str, key: str, source: str) -> str:
    return f"fix [{section}] {key} in {source}, or set {_env_name(section, key)} / --set {section}.{key}=..."


def load_profile(path: str | os.PathLike[str] | None = None, overrides: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None, check: bool = True) -> Profile:
    """Read, merge (CLI > env > file > defaults), type-check and validate a profile.

    ``overrides`` maps ``"section.key"`` to a string (from ``--set``). With ``check``,
    a ``base_url`` must answer HTTP before this returns.
    """
    env = os.environ if env is None else env
    source = str(path) if path is not None else "<defaults>"
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("target-profile", path, "an existing TOML file",
                              "pass --target-profile FILE or set SESSIONSTORM_TARGET_PROFILE")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("target-profile", path, f"valid TOML ({e})", f"fix the syntax of {p}") from None
    known = (*SECTIONS, *FREE_SECTIONS)
    for section, table in raw.items():
        if section not in known:
            raise ConfigError(section, f"[{section}]", f"one of the sections {', '.join(known)}",
                              f"fix the section name in {source}")
        if not isinstance(table, dict):
            raise ConfigError(section, table, f"a [{section}] table", f"fix {source}")
    merged: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        hints, table = get_type_hints(cls), dict(raw.get(section, {}))
        for key in table:
            if key not in hints:
                raise ConfigError(f"{section}.{key}", table[key],
                                  f"one of the keys of [{section}]: {', '.join(hints)}",
                                  f"fix the key name in {source}")
        for key, tp in hints.items():
            for name, text in ((_env_name(section, key), env.get(_env_name(section, key))),
                               (f"--set {section}.{key}", (overrides or {}).get(f"{section}.{key}"))):
                if text is not None:
                    table[key] = _from_text(text, tp)
            if key in table and not _fits(table[key], tp):
                raise ConfigError(f"{section}.{key}", repr(table[key]), _describe(tp), _fix(section, key, source))
        merged[section] = cls(**table)
    invariants = dict(raw.get("invariants", {}))
    prefix = "SESSIONSTORM_INVARIANTS_"
    invariants.update({k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)})
    invariants.update({k.split(".", 1)[1]: v for k, v in (overrides or {}).items() if k.startswith("invariants.")})
    for name, sql in invariants.items():
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError(f"invariants.{name}", repr(sql), "an SQL query returning the violating rows",
                              _fix("invariants", name, source))
    for key in overrides or {}:
        section, _, name = key.partition(".")
        if section not in FREE_SECTIONS and (section not in SECTIONS or name not in get_type_hints(SECTIONS[section])):
            raise ConfigError(f"--set {key}", overrides[key], "section.key naming a profile key",
                              "see fixtures/example-external.toml for every key")
    profile = Profile(**merged, invariants=invariants, source=source)
    _validate(profile)
    if check and profile.target.base_url:
        check_reachable(profile.target.base_url, profile.target.ready_path)
    return profile


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def _validate(p: Profile) -> None:
    """Checks across keys, each naming the key and the fix."""
    t, src = p.target, p.source
    if bool(t.base_url) == bool(t.command):
        raise ConfigError("target.base_url", t.base_url or "missing",
                          "exactly one of target.base_url (a running service) or target.command (launched by the stack)",
                          _fix("target", "base_url", src))
    if t.base_url and not re.match(r"^https?://[^/\s]+", t.base_url):
        raise ConfigError("target.base_url", t.base_url, "an http:// or https:// URL", _fix("target", "base_url", src))
    for fl in t.flavors:
        if fl not in FLAVORS:
            raise ConfigError("target.flavors", fl, f"flavors among {', '.join(FLAVORS)}", _fix("target", "flavors", src))
    if not t.flavors:
        raise ConfigError("target.flavors", "[]", f"at least one of {', '.join(FLAVORS)}", _fix("target", "flavors", src))
    if t.llm not in ("stub", "real"):
        raise ConfigError("target.llm", t.llm, '"stub" or "real"', _fix("target", "llm", src))
    if t.timeout_s <= 0:
        raise ConfigError("target.timeout_s", t.timeout_s, "a number > 0", _fix("target", "timeout_s", src))
    allowed = set(STACK_NAMES) | set(t.vars)
    templated = [("target.command", s) for s in t.command or []] + [("target.env", s) for s in t.env.values()]
    templated += [("target.setup", s) for cmd in t.setup for s in cmd]
    templated += [("database.dsn", p.database.dsn or "")]
    for setting, text in templated:
        unknown = _placeholders(text) - allowed
        if unknown:
            section, key = setting.split(".")
            raise ConfigError(setting, text, f"placeholders among {', '.join(sorted(allowed))}",
                              f"define {{{sorted(unknown)[0]}}} in [target] vars or {_fix(section, key, src)}")
    for f in fields(PathsSection):
        path = getattr(p.paths, f.name)
        if not path.startswith("/") or _placeholders(path) - set(PATH_NAMES):
            names = ", ".join(f"{{{n}}}" for n in PATH_NAMES)
            raise ConfigError(f"paths.{f.name}", path, f"a path starting with / using only {names}",
                              _fix("paths", f.name, src))
    if p.auth.header and "{key}" not in p.auth.format:
        raise ConfigError("auth.format", p.auth.format, "a format containing {key}", _fix("auth", "format", src))
    if not p.models.names and "gateway" in t.flavors:
        raise ConfigError("models.names", "[]", "at least one model name", _fix("models", "names", src))
    _validate_keys(p)
    for f in fields(ThresholdsSection):
        v = getattr(p.thresholds, f.name)
        limit = 1.0 if f.name in ("error_rate", "info_rate", "session_reuse_ratio") else float("inf")
        if v is not None and not 0 <= v <= limit:
            raise ConfigError(f"thresholds.{f.name}", v, f"a number between 0 and {limit:g}", _fix("thresholds", f.name, src))


def _validate_keys(p: Profile) -> None:
    k, src = p.keys, p.source
    if k.source not in KEY_SOURCES:
        raise ConfigError("keys.source", k.source, f"one of {', '.join(KEY_SOURCES)}", _fix("keys", "source", src))
    need = {"literal": ("literal", k.literal), "sql": ("sql", k.sql), "http": ("http_path", k.http_path),
            "hook": ("hook", k.hook)}[k.source]
    if p.auth.header and not need[1]:
        raise ConfigError(f"keys.{need[0]}", "missing", f"a value, since keys.source = {k.source!r}",
                          _fix("keys", need[0], src))
    if k.source == "sql" and not p.database.dsn:
        raise ConfigError("database.dsn", "missing", "a DSN to run keys.sql against", _fix("database", "dsn", src))
    if k.source == "hook" and k.hook:
        resolve_hook(k.hook)


def resolve_hook(spec: str) -> Any:
    """``module:function`` imported and checked callable."""
    import importlib

    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr) if module and attr else None
    except (ImportError, AttributeError) as e:
        raise ConfigError("keys.hook", spec, f"an importable module:function ({e})",
                          "fix keys.hook or put the module on PYTHONPATH") from None
    if not callable(fn):
        raise ConfigError("keys.hook", spec, "module:function naming a callable",
                          "write keys.hook as package.module:function")
    return fn


def check_reachable(base_url: str, ready_path: str = "/", timeout: float = 3.0, setting: str = "target.base_url",
                    fix: str = "start the service or fix target.base_url / SESSIONSTORM_TARGET_BASE_URL") -> None:
    """Any HTTP answer counts as reachable; no answer is a ConfigError naming the URL."""
    import httpx

    url = base_url.rstrip("/") + ready_path
    try:
        httpx.get(url, timeout=timeout)
    except httpx.HTTPError as e:
        raise ConfigError(setting, base_url, f"a reachable service (GET {url}: {type(e).__name__})", fix) from None


def with_base_url(profile: Profile, url: str) -> Profile:
    """The profile pointed at a running instance (after the stack launched it)."""
    return replace(profile, target=replace(profile.target, base_url=url))


def fill(text: str, values: Mapping[str, Any], setting: str) -> str:
    """Fill ``{name}`` placeholders; a name without a value is a ConfigError naming the setting."""
    def sub(m: re.Match[str]) -> str:
        if m[1] not in values or values[m[1]] is None:
            raise ConfigError(setting, text, f"a value for {{{m[1]}}}",
                              "run under a stack that provides it or define it in [target] vars")
        return str(values[m[1]])
    return PLACEHOLDER.sub(sub, text)


def parse_sets(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--set section.key=value`` options as an overrides mapping."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or "." not in key:
            raise ConfigError("--set", pair, "section.key=value", "write e.g. --set target.timeout_s=10")
        out[key.strip()] = value
    return out


def profile_options(f: Any) -> Any:
    """Click options every command that takes a profile shares: --target-profile and --set."""
    import click

    f = click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="Override one profile key (beats SESSIONSTORM_<SECTION>_<KEY> and the file).")(f)
    return click.option("--target-profile", envvar="SESSIONSTORM_TARGET_PROFILE", type=click.Path(),
                        help="Target profile (TOML); see fixtures/example-external.toml.")(f)

