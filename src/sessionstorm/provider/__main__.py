"""``python -m sessionstorm.provider --port N [--mode M] [--models a,b|N] [latency and fault options]``."""
from __future__ import annotations

import sys
from typing import Any

import click

from sessionstorm.cli import run_command
from sessionstorm.errors import ConfigError
from sessionstorm.provider.app import create_app
from sessionstorm.provider.catalog import parse_models
from sessionstorm.provider.server import serve
from sessionstorm.provider.settings import (DEFAULT_BASIC_AUTH, DEFAULT_MODELS, MODES, Settings, check_mode,
                                            parse_basic_auth)


def _opt(name: str, default: float) -> Any:
    return click.option(f"--{name.replace('_', '-')}", name, type=float, default=default, show_default=True,
                        help=Settings.describe(name))


_DEFAULTS = Settings()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, required=True, help="port to listen on")
@click.option("--mode", default="openai", show_default=True,
              help=f"API to serve: {' or '.join(MODES)} (openai also serves the session-router routes)")
@click.option("--models", default=",".join(DEFAULT_MODELS), show_default=True,
              help="comma-separated model names, or a count N: N generated 0x-hex ids (seeded by --seed)")
@click.option("--basic-auth", default=DEFAULT_BASIC_AUTH, show_default=True,
              help="USER:PASS the proxy-router mode requires on every route but /healthcheck")
@click.option("--seed", type=int, default=None, help="seed for jitter, faults and generated model ids (reproducible runs)")
@click.option("--log-level", default="warning", show_default=True)
@click.option("--state", default=None, help="file keeping the sessions, so a restarted stub still knows them")
@_opt("ttft_ms", _DEFAULTS.ttft_ms)
@_opt("token_ms", _DEFAULTS.token_ms)
@_opt("jitter_ms", _DEFAULTS.jitter_ms)
@_opt("min_tokens", _DEFAULTS.min_tokens)
@_opt("max_tokens", _DEFAULTS.max_tokens)
@_opt("fault_500", 0.0)
@_opt("fault_drop", 0.0)
@_opt("fault_cut", 0.0)
@_opt("delay_ms", 0.0)
@_opt("session_open_ms", _DEFAULTS.session_open_ms)
@_opt("session_ttl_s", 0.0)
def main(host: str, port: int, mode: str, models: str, basic_auth: str, seed: int | None, log_level: str,
         state: str | None, **knobs: float) -> None:
    """Start the stub provider: the openai mode (with the session-router routes) or the proxy-router mode."""
    check_mode(mode)
    parse_basic_auth(basic_auth)
    for name in ("min_tokens", "max_tokens"):
        if knobs[name] != int(knobs[name]):
            raise ConfigError(name.replace("_", "-"), knobs[name], "a whole number", f"pass --{name.replace('_', '-')} N")
        knobs[name] = int(knobs[name])
    catalog = parse_models(models, seed)
    if not 0 < port < 65536:
        raise ConfigError("port", port, "1..65535", "pass --port with a free port")
    serve(create_app(Settings(**knobs), catalog, seed, mode, basic_auth, state), host, port, log_level)


if __name__ == "__main__":
    sys.exit(run_command(main, "sessionstorm.provider"))
