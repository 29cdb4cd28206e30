"""Loading a profile: read the TOML, merge overrides, type-check, validate across keys.

Every key can be overridden: CLI ``--set section.key=value`` > env var
``SESSIONSTORM_<SECTION>_<KEY>`` > the file > the default. Validation happens at load,
before anything starts: each bad input is one `ConfigError` line naming the table and
key, the value, what was expected and the fix.
"""
from __future__ import annotations

import os
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from sessionstorm.errors import ConfigError
from sessionstorm.profile.schema import (
    FAMILIES,
    FLAVORS,
    FREE_SECTIONS,
    KEY_SOURCES,
    OBSERVE,
    PATH_NAMES,
    PROVIDER_SESSIONS,
    REQUEST_ID,
    SECTIONS,
    STANDARD_OPS,
    NotFound,
    OpSpec,
    PathsSection,
    Profile,
    StreamSpec,
    ThresholdsSection,
)
from sessionstorm.profile.templates import (
    OP_NAMES,
    STACK_NAMES,
    check_names,
    placeholders,
    strings,
)

# ---- type checking of TOML values against the dataclass annotations ----


def _describe(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a table of strings"
    if tp is Any:
        return "any TOML value"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, "a table")


def _fits(value: Any, tp: Any) -> bool:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return True
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
    if isinstance(tp, type) and tp not in (str, bool):  # a nested table (StreamSpec, NotFound)
        return isinstance(value, dict)
    return isinstance(value, tp)


def _from_text(text: str, tp: Any) -> Any:
    """An env var or CLI value as the key's type: TOML syntax, or a bare string / comma list."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    options = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)  # e.g. list[str] | int
    if any(get_origin(o) is list and get_args(o)[0] is str for o in options):
        return [p.strip() for p in text.split(",") if p.strip()]
    return text


def _env_name(section: str, key: str) -> str:
    return f"SESSIONSTORM_{section.upper()}_{key.upper()}"


def _fix(section: str, key: str, source: str) -> str:
    return f"fix [{section}] {key} in {source}, or set {_env_name(section, key)} / --set {section}.{key}=..."


def load_profile(path: str | os.PathLike[str] | None = None, overrides: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None, check: bool = True) -> Profile:
    """Read, merge (CLI > env > file > defaults), type-check and validate a profile.

    ``overrides`` maps ``"section.key"`` (or ``"ops.NAME.key"``) to a string (from ``--set``).
    With ``check``, a ``base_url`` must answer HTTP before this returns.
    """
    env = os.environ if env is None else env
    overrides = dict(overrides or {})
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
        if section == "faults":  # [[faults]]: an array of tables, parsed by sessionstorm.nemesis below
            continue
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
            for text in (env.get(_env_name(section, key)), overrides.get(f"{section}.{key}")):
                if text is not None:
                    table[key] = _from_text(text, tp)
            if key in table and not _fits(table[key], tp):
                raise ConfigError(f"{section}.{key}", repr(table[key]), _describe(tp), _fix(section, key, source))
        merged[section] = cls(**table)
    invariants = dict(raw.get("invariants", {}))
    prefix = "SESSIONSTORM_INVARIANTS_"
    invariants.update({k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)})
    invariants.update({k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("invariants.")})
    for name, sql in invariants.items():
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError(f"invariants.{name}", repr(sql), "an SQL query returning the violating rows",
                              _fix("invariants", name, source))
    ops_raw = {name: dict(t) if isinstance(t, dict) else t for name, t in raw.get("ops", {}).items()}
    for key, text in overrides.items():
        section, _, rest = key.partition(".")
        if section == "ops":
            name, dot, field_ = rest.partition(".")
            if not dot or not isinstance(ops_raw.get(name, {}), dict):
                raise ConfigError(f"--set {key}", text, "ops.NAME.key naming a key of a declared operation",
                                  "write e.g. --set ops.chat.path=/api/generate")
            ops_raw.setdefault(name, {})[field_] = _from_text(text, Any)
        elif section not in FREE_SECTIONS and (section not in SECTIONS or rest not in get_type_hints(SECTIONS[section])):
            raise ConfigError(f"--set {key}", text, "section.key naming a profile key",
                              "see fixtures/example-external.toml for every key")
    ops = {name: _op_spec(name, table, source) for name, table in ops_raw.items()}
    target = merged["target"]
    flavors_given = "flavors" in raw.get("target", {}) or _env_name("target", "flavors") in env \
        or "target.flavors" in overrides
    if ops and not flavors_given:  # the flavors are those of the declared operations
        flavors = list(dict.fromkeys(s.flavor for s in ops.values()))
        merged["target"] = replace(target, flavors=flavors)
    names_given = "names" in raw.get("models", {}) or _env_name("models", "names") in env \
        or "models.names" in overrides
    if merged["provider"].models is not None and not names_given:  # ask for what the stub serves
        from sessionstorm.profile.provider import check_provider, provider_models
        check_provider(merged["provider"], source)
        merged["models"] = replace(merged["models"], names=provider_models(merged["provider"]))
    profile = Profile(**merged, invariants=invariants, ops=ops, faults=_faults(raw.get("faults", []), source),
                      source=source)
    _validate(profile, path)
    if check and profile.target.base_url:
        check_reachable(profile.target.base_url, profile.target.ready_path, resolve=profile.target.resolve or None,
                        allow_remote=profile.target.allow_remote)
    return profile


# ---- declared operations ----

def _op_spec(name: str, table: Any, source: str) -> OpSpec:
    where = f"ops.{name}"
    if not isinstance(table, dict):
        raise ConfigError(where, repr(table), f"an [ops.{name}] table", f"fix [ops.{name}] in {source}")
    hints = get_type_hints(OpSpec)
    table = dict(table)
    for key in table:
        if key not in hints or key == "name":
            raise ConfigError(f"{where}.{key}", repr(table[key]),
                              f"one of the keys of [ops.{name}]: {', '.join(k for k in hints if k != 'name')}",
                              f"fix the key name in {source}")
        if not _fits(table[key], hints[key]):
            raise ConfigError(f"{where}.{key}", repr(table[key]), _describe(hints[key]), f"fix [ops.{name}] {key} in {source}")
    kind = table.pop("kind", None) or STANDARD_OPS.get(name)
    if kind not in FAMILIES:
        raise ConfigError(f"{where}.kind", kind or "missing", f"one of {', '.join(FAMILIES)} (the check family)",
                          f"add kind = \"write\" (or another family) to [ops.{name}] in {source}")
    if isinstance(table.get("stream"), dict):
        table["stream"] = _nested(StreamSpec, table["stream"], f"{where}.stream", source)
    if isinstance(table.get("not_found"), dict):
        table["not_found"] = _nested(NotFound, table["not_found"], f"{where}.not_found", source)
    spec = OpSpec(name=name, kind=kind, **table)
    _validate_op(spec, source)
    return spec


def _nested(cls: type, table: dict[str, Any], where: str, source: str) -> Any:
    hints = get_type_hints(cls)
    for key, value in table.items():
        if key not in hints:
            raise ConfigError(f"{where}.{key}", repr(value), f"one of {', '.join(hints)}", f"fix {where} in {source}")
        if not _fits(value, hints[key]):
            raise ConfigError(f"{where}.{key}", repr(value), _describe(hints[key]), f"fix {where} in {source}")
    return cls(**table)


JMES_FIELDS = ("session_id", "canaries", "text", "model", "request_id", "turn", "context")


def _validate_op(s: OpSpec, source: str) -> None:
    import jmespath
    from jmespath.exceptions import ParseError

    where, fix = f"ops.{s.name}", f"fix [ops.{s.name}] in {source}"
    if s.method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        raise ConfigError(f"{where}.method", s.method, "an HTTP method (GET, POST, PUT, PATCH, DELETE)", fix)
    if not s.path.startswith("/"):
        raise ConfigError(f"{where}.path", s.path, "a path starting with /", fix)
    for st in s.ok_status:
        if not 100 <= st <= 599:
            raise ConfigError(f"{where}.ok_status", st, "HTTP status codes (100..599)", fix)
    for name in JMES_FIELDS:
        expr = getattr(s, name)
        if expr is None or expr.startswith("header:"):
            continue
        try:
            jmespath.compile(expr)
        except ParseError as e:
            raise ConfigError(f"{where}.{name}", expr, f"a JMESPath expression ({str(e).splitlines()[0]})",
                              f"{fix}; JMESPath looks like a.b[0].c or items[].text") from None
    if s.stream is not None:
        if s.kind != "chat":
            raise ConfigError(f"{where}.stream", "a table", "stream only on a chat operation", fix)
        if s.stream.format not in ("sse", "ndjson"):
            raise ConfigError(f"{where}.stream.format", s.stream.format, '"sse" or "ndjson"', fix)
        try:
            jmespath.compile(s.stream.text)
        except ParseError:
            raise ConfigError(f"{where}.stream.text", s.stream.text, "a JMESPath expression", fix) from None
    if s.parse is None:
        required = {"create": "session_id", "read_back": "canaries"}.get(s.kind)
        if required and getattr(s, required) is None:
            what = {"session_id": "a JMESPath to the new session's id, e.g. \"id\" or \"thread.id\"",
                    "canaries": "a JMESPath to the list of written values, e.g. \"items[].text\""}[required]
            raise ConfigError(f"{where}.{required}", "missing", what, f"add {required} = \"...\" to [ops.{s.name}] in {source}")
    for hook in ("build", "parse"):
        spec = getattr(s, hook)
        if spec is not None:
            resolve_hook(spec, f"{where}.{hook}")


# ---- validation across keys ----

def _validate(p: Profile, path: str | os.PathLike[str] | None) -> None:
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
    if not (t.reprobe_s == 0 or t.reprobe_s >= 0.1):  # each probe opens fresh connections: not a flood
        raise ConfigError("target.reprobe_s", t.reprobe_s, "0 (off) or a number of seconds >= 0.1",
                          _fix("target", "reprobe_s", src))
    allowed = set(STACK_NAMES) | set(t.vars)
    templated = [("target.command", s) for s in t.command or []] + [("target.env", s) for s in t.env.values()]
    templated += [("target.setup", s) for cmd in t.setup for s in cmd] + [("target.cwd", t.cwd or "")]
    templated += [("database.dsn", p.database.dsn or "")]
    templated += [("keys.sql", p.keys.sql or "")] + [("keys.http_path", p.keys.http_path or "")]
    templated += [("keys.http_headers", s) for s in p.keys.http_headers.values()]
    templated += [("keys.http_body", s) for s in p.keys.http_body.values()]
    templated += [(f"invariants.{n}", sql) for n, sql in p.invariants.items()]
    for setting, text in templated:
        extra = {"user"} if setting.startswith("keys.") else set()
        section, key = setting.split(".", 1)
        check_names(text, allowed | extra, setting,
                    f"define the name in [target] vars, or {_fix(section, key, src)}")
    for f in fields(PathsSection):
        path_ = getattr(p.paths, f.name)
        if not path_.startswith("/") or placeholders(path_) - set(PATH_NAMES):
            names = ", ".join(f"{{{n}}}" for n in PATH_NAMES)
            raise ConfigError(f"paths.{f.name}", path_, f"a path starting with / using only {names}",
                              _fix("paths", f.name, src))
    if p.auth.header and "{key}" not in p.auth.format:
        raise ConfigError("auth.format", p.auth.format, "a format containing {key}", _fix("auth", "format", src))
    if not p.models.names and "gateway" in t.flavors:
        raise ConfigError("models.names", "[]", "at least one model name", _fix("models", "names", src))
    _validate_keys(p)
    _validate_contract(p)
    from sessionstorm.profile.provider import check_provider
    check_provider(p.provider, src)
    for f in fields(ThresholdsSection):
        v = getattr(p.thresholds, f.name)
        limit = 1.0 if f.name in ("error_rate", "info_rate", "session_reuse_ratio") else float("inf")
        if v is not None and not 0 <= v <= limit:
            raise ConfigError(f"thresholds.{f.name}", v, f"a number between 0 and {limit:g}", _fix("thresholds", f.name, src))
    if t.command and t.cwd:  # a folder known now must exist now, not after the stack started
        from sessionstorm.profile.templates import fill
        folder = fill(t.cwd, {**t.vars, "profile_dir": profile_dir(p)}, "target.cwd", strict=False)
        if not placeholders(folder) and not Path(folder).is_dir():
            raise ConfigError("target.cwd", t.cwd, f"an existing folder ({folder} is not one)", _fix("target", "cwd", src))
    op_names = set(OP_NAMES) | set(t.vars) | {"host", "python"}
    for spec in p.ops.values():
        body = spec.stream.body if spec.stream is not None else None
        for key, texts in (("path", [spec.path]), ("headers", spec.headers.values()),
                           ("body", [*strings(spec.body), *strings(body)])):
            for text in texts:
                check_names(text, op_names, f"ops.{spec.name}.{key}",
                            f"fix [ops.{spec.name}] {key} in {src}: use a name listed, or add yours to [target] vars")
    kinds: dict[str, str] = {}
    for spec in p.ops.values():
        other = kinds.setdefault(spec.history_kind, spec.name)
        if other != spec.name:
            raise ConfigError(f"ops.{spec.name}.kind", spec.kind, f"one operation per family ([ops.{other}] is "
                              f"{spec.kind} already)", f"drop one of [ops.{other}] and [ops.{spec.name}] in {src}")


def _validate_contract(p: Profile) -> None:
    c, src = p.contract, p.source
    for key, allowed in (("request_id", REQUEST_ID), ("provider_sessions", PROVIDER_SESSIONS), ("observe", OBSERVE)):
        value = getattr(c, key)
        if value not in allowed:
            raise ConfigError(f"contract.{key}", value, " or ".join(f'"{a}"' for a in allowed), _fix("contract", key, src))
    if c.max_new_sessions_per_key is not None and c.max_new_sessions_per_key < 1:
        raise ConfigError("contract.max_new_sessions_per_key", c.max_new_sessions_per_key, "an integer >= 1",
                          _fix("contract", "max_new_sessions_per_key", src))
    if c.session_window_s <= 0:
        raise ConfigError("contract.session_window_s", c.session_window_s, "a number of seconds > 0",
                          _fix("contract", "session_window_s", src))
    if c.min_reuse_ratio is not None and not 0 <= c.min_reuse_ratio <= 1:
        raise ConfigError("contract.min_reuse_ratio", c.min_reuse_ratio, "a number between 0 and 1",
                          _fix("contract", "min_reuse_ratio", src))


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


def resolve_hook(spec: str, setting: str = "keys.hook") -> Any:
    """``module:function`` imported and checked callable."""
    import importlib

    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr) if module and attr else None
    except (ImportError, AttributeError) as e:
        raise ConfigError(setting, spec, f"an importable module:function ({e})",
                          f"fix {setting} or put the module on PYTHONPATH") from None
    if not callable(fn):
        raise ConfigError(setting, spec, "module:function naming a callable",
                          f"write {setting} as package.module:function")
    return fn


def check_reachable(base_url: str, ready_path: str = "/", timeout: float = 3.0, setting: str = "target.base_url",
                    fix: str = "start the service or fix target.base_url / SESSIONSTORM_TARGET_BASE_URL", *,
                    resolve: Mapping[str, Sequence[str]] | None = None, allow_remote: bool = False) -> None:
    """Any HTTP answer counts as reachable; no answer is a ConfigError naming the URL. The
    name is resolved as the run will (``resolve`` overrides), through the loopback guard."""
    import asyncio

    import httpx

    from sessionstorm.endpoints import target_client

    async def get() -> None:
        async with target_client(base_url, resolve, allow_remote=allow_remote, timeout=timeout) as client:
            await client.get(ready_path)

    try:
        asyncio.run(get())
    except httpx.HTTPError as e:
        url = base_url.rstrip("/") + ready_path
        raise ConfigError(setting, base_url, f"a reachable service (GET {url}: {type(e).__name__})", fix) from None


def with_base_url(profile: Profile, url: str) -> Profile:
    """The profile pointed at a running instance (after the stack launched it)."""
    return replace(profile, target=replace(profile.target, base_url=url))


def profile_dir(profile: Profile) -> str:
    """The folder of the profile file (``{profile_dir}``), or the current one."""
    return str(Path(profile.source).resolve().parent) if profile.source != "<defaults>" else os.getcwd()


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


def _faults(tables: Any, source: str) -> tuple[str, ...]:
    """``[[faults]]`` tables as fault specs, each checked now (one ConfigError line)."""
    from sessionstorm.nemesis.spec import from_table

    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError("faults", tables, "[[faults]] tables, e.g. fault = \"kill:target@5+3\"", f"fix {source}")
    return tuple(from_table(t, f"[[faults]] in {source}").spec for t in tables)
