"""The `sessionstorm` command. Each subcommand lives next to what it runs and is
imported only when called, so `sessionstorm --help` stays fast.

To add one: put a click command in its module and name it in SUBCOMMANDS.
"""
from __future__ import annotations

import importlib
import sys

import click

from sessionstorm.errors import SessionstormError, StartupError

STARTUP_LOG_LINES = 10

# name -> "module:attribute" of a click command
SUBCOMMANDS: dict[str, str] = {
    "up": "sessionstorm.stack.cli:up",
    "check": "sessionstorm.checker.cli:check",
    "run": "sessionstorm.runner:run",
    "check-profile": "sessionstorm.workload.check:check_profile",
    "report": "sessionstorm.report.cli:report",
    "compare": "sessionstorm.report.cli:compare",
    "doctor": "sessionstorm.doctor:doctor",
    "init": "sessionstorm.profile.init:init",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = SUBCOMMANDS.get(name)
        if spec is None:
            return None
        module, attr = spec.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Load-test and regression harness for session-backed API gateways."""


def run_command(command: click.Command, prog: str, argv: list[str] | None = None) -> int:
    """Run a click command the sessionstorm way: a user's mistake is one line and exit 2."""
    try:
        rv = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except SessionstormError as e:
        click.echo(f"{prog}: error: {e}", err=True)
        if isinstance(e, StartupError) and e.logs.strip():  # what the service said last
            tail = e.logs.strip().splitlines()[-STARTUP_LOG_LINES:]
            click.echo("\n".join([f"{prog}: last {len(tail)} log lines of {e.what}:", *("  " + t for t in tail)]), err=True)
        return e.exit_code
    except click.UsageError as e:
        click.echo(f"{prog}: error: {e.format_message()}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo(f"{prog}: interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


def main(argv: list[str] | None = None) -> int:
    from sessionstorm.envvars import warn_unknown

    warn_unknown(lambda m: click.echo(f"sessionstorm: {m}", err=True))
    return run_command(cli, "sessionstorm", argv)


if __name__ == "__main__":
    sys.exit(main())
