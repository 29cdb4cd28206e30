"""``sessionstorm check-profile``: validate a target profile before any load is sent."""
from __future__ import annotations

import json

import click

from sessionstorm.workload.profile import load_profile, parse_sets, profile_options


@click.command("check-profile")
@profile_options
@click.option("--offline", is_flag=True, help="Do not contact target.base_url.")
def check_profile(target_profile: str | None, sets: tuple[str, ...], offline: bool) -> None:
    """Validate a target profile; print it merged with env vars and --set overrides."""
    profile = load_profile(target_profile, parse_sets(sets), check=not offline)
    click.echo(json.dumps(profile.redacted(), indent=2))
