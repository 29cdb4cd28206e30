"""``sessionstorm check-profile``: validate a target profile, and with ``--probe`` try it.

Without ``--probe`` nothing is sent (the profile is validated and printed merged with env
vars and --set overrides); with it, `sessionstorm.profile.probe` starts what the profile
needs and sends one operation of each declared kind.
"""
from __future__ import annotations

import json
import sys

import click

from sessionstorm.profile import load_profile, parse_sets, profile_options


@click.command("check-profile")
@click.argument("file", required=False, type=click.Path())
@profile_options
@click.option("--offline", is_flag=True, hidden=True, help="Kept for old scripts: without --probe nothing is sent.")
@click.option("--probe", is_flag=True, help="Start what the profile needs and send one operation of each kind.")
@click.option("--backend", envvar="SESSIONSTORM_BACKEND", default=None, help="stack backend for --probe (default embedded)")
def check_profile(file: str | None, target_profile: str | None, sets: tuple[str, ...], offline: bool, probe: bool,
                  backend: str | None) -> None:
    """Validate a target profile (FILE or --target-profile); --probe sends one operation of each kind."""
    path = file or target_profile
    overrides = parse_sets(sets)
    if probe:
        from sessionstorm.profile.probe import run_probe
        sys.exit(run_probe(path, overrides, backend, click.echo))
    profile = load_profile(path, overrides, check=False)  # validation only: nothing is sent
    click.echo(json.dumps(profile.redacted(), indent=2))
