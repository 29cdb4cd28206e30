"""``sessionstorm up``: start the stack, print its addresses, run until Ctrl-C."""
from __future__ import annotations

import importlib.util
import sys
import time

import click

from sessionstorm.stack import Stack


@click.command("up")
@click.option("--backend", envvar="SESSIONSTORM_BACKEND", default=None, help="embedded (default) or external")
@click.option("--bugs", envvar="SESSIONSTORM_TARGET_BUGS", default="", help="bug-zoo flags of the reference target")
@click.option("--no-target", is_flag=True, help="start PostgreSQL, Redis and the provider only")
@click.option("--target-command", default=None, help="launch this command as the target instead of the reference one")
def up(backend: str | None, bugs: str, no_target: bool, target_command: str | None) -> None:
    """Start PostgreSQL, Redis, the stub provider and a target; print their addresses; run until Ctrl-C."""
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    with Stack(backend, progress=say) as stack:
        if target_command:
            stack.start_target(target_command.split(), name="target")
        elif not no_target and importlib.util.find_spec("sessionstorm.target") is not None:
            stack.start_target(["{python}", "-m", "sessionstorm.target", "serve"],
                               env={"SESSIONSTORM_TARGET_BUGS": bugs}, name="reference")
        for k, v in stack.info().items():
            click.echo(f"{k}={v}")
        sys.stdout.flush()
        say(f"stack up in {stack.start_seconds:.1f} s; Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            say("stopping")
