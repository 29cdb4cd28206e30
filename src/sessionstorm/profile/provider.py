"""A profile's ``[provider]`` table: checked at load, turned into the stub provider's flags.

Every key is a flag of ``python -m sessionstorm.provider`` (``ttft_ms`` -> ``--ttft-ms``);
an unset key keeps the provider's default. `provider_models` gives the model names the
stub serves (what a gateway must ask for), the same the provider computes from the same
``models`` and ``seed``: the template values ``{provider_models}`` (a JSON list) and
``{provider_model_ids}`` (comma-separated) and the default of ``[models] names``.
"""
from __future__ import annotations

import json
from dataclasses import fields

from sessionstorm.errors import ConfigError
from sessionstorm.profile.schema import Profile, ProviderSection

LATENCY = ("ttft_ms", "token_ms", "jitter_ms", "min_tokens", "max_tokens", "fault_500", "fault_drop", "fault_cut",
           "delay_ms", "session_open_ms", "session_ttl_s")


def _fix(key: str, source: str) -> str:
    return f"fix [provider] {key} in {source}, or set SESSIONSTORM_PROVIDER_{key.upper()} / --set provider.{key}=..."


def _models_text(models: list[str] | int) -> str:
    return str(models) if isinstance(models, int) else ",".join(models)


def check_provider(p: ProviderSection, source: str) -> None:
    """One ConfigError line naming ``provider.<key>``, for the first bad key."""
    from sessionstorm.provider.catalog import MAX_MODELS, parse_models
    from sessionstorm.provider.settings import MODES, Settings, parse_basic_auth

    if p.mode is not None and p.mode not in MODES:
        raise ConfigError("provider.mode", p.mode, " or ".join(f'"{m}"' for m in MODES), _fix("mode", source))
    if p.models is not None:
        expected = f"a list of model names, e.g. [\"a\", \"b\"], or a count from 1 to {MAX_MODELS}"
        if isinstance(p.models, list) and not p.models:
            raise ConfigError("provider.models", "[]", expected, _fix("models", source))
        try:
            parse_models(_models_text(p.models), p.seed)
        except ConfigError as e:
            raise ConfigError("provider.models", repr(p.models), f"{expected} ({e.expected})",
                              _fix("models", source)) from None
    if p.basic_auth is not None:
        try:
            parse_basic_auth(p.basic_auth)
        except ConfigError as e:
            raise ConfigError("provider.basic_auth", p.basic_auth, e.expected, _fix("basic_auth", source)) from None
    given = {k: getattr(p, k) for k in LATENCY if getattr(p, k) is not None}
    for key, value in given.items():  # one key at a time: the error names the key that is wrong
        try:
            Settings(min_tokens=1, max_tokens=100_000).update({key: value})  # its range only
        except ConfigError as e:
            raise ConfigError(f"provider.{key}", value, e.expected, _fix(key, source)) from None
    try:
        Settings().update(given)
    except ConfigError as e:  # across keys: min_tokens > max_tokens
        key = e.setting.replace("-", "_")
        raise ConfigError(f"provider.{key}", e.value, e.expected, _fix(key, source)) from None


def provider_args(profile: Profile) -> list[str]:
    """The stub provider's command-line flags for the profile's ``[provider]`` table."""
    p, out = profile.provider, []
    for f in fields(ProviderSection):
        value = getattr(p, f.name)
        if value is None:
            continue
        if f.name == "models":
            value = _models_text(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        out += [f"--{f.name.replace('_', '-')}", str(value)]
    return out


def provider_models(profile: Profile | ProviderSection) -> list[str]:
    """The model names the stub provider serves with this profile (generated ids for a count)."""
    from sessionstorm.provider.catalog import parse_models
    from sessionstorm.provider.settings import DEFAULT_MODELS

    p = profile.provider if isinstance(profile, Profile) else profile
    if p.models is None:
        return list(DEFAULT_MODELS)
    return [m.name for m in parse_models(_models_text(p.models), p.seed)]


def provider_values(profile: Profile) -> dict[str, str]:
    """``{provider_models}`` (JSON list) and ``{provider_model_ids}`` (comma-separated)."""
    names = provider_models(profile)
    return {"provider_models": json.dumps(names), "provider_model_ids": ",".join(names)}
