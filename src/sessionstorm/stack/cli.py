"""``sessionstorm up``: start the stack, print its addresses, run until Ctrl-C."""
from __future__ import annotations

import importlib.util
import shlex
import signal

import click

from sessionstorm.stack import BACKENDS, Stack


@click.command("up")
@click.option("--backend", envvar="SESSIONSTORM_BACKEND", default=None,
              help=f"where services run: {', '.join(BACKENDS)} (default embedded)")
@click.option("--target-command", default=None,
              help="launch this command as the target (templates like {port}, {postgres_dsn} are filled)")
@click.option("--ready-path", default="/healthz", show_default=True, help="the target answers 200 here when ready")
@click.option("--no-target", is_flag=True, help="start PostgreSQL, Redis and the provider only")
@click.option("--bugs", envvar="SESSIONSTORM_TARGET_BUGS", default="", help="bug-zoo flags of the reference target")
@click.option("--provider-arg", "provider_args", multiple=True, help="extra flag for the stub provider, e.g. --provider-arg=--ttft-ms=5")
def up(backend: str | None, target_command: str | None, ready_path: str, no_target: bool, bugs: str,
       provider_args: tuple[str, ...]) -> None:
    """Start PostgreSQL, Redis, the stub provider and a target (the reference one when
    installed); print their addresses as NAME=VALUE lines; run until Ctrl-C."""
    def say(msg: str) -> None:
        click.echo(msg, err=True)

    if bugs:
        from sessionstorm.target.bugs import parse_bugs
        parse_bugs(bugs)  # a typo is one line, before anything starts
    with Stack(backend, progress=say, provider_args=list(provider_args)) as stack:
        if target_command:
            stack.start_target(shlex.split(target_command), name="target", ready_path=ready_path)
        elif not no_target and importlib.util.find_spec("sessionstorm.target") is not None:
            stack.start_target(["{python}", "-m", "sessionstorm.target", "serve"],
                               env={"SESSIONSTORM_TARGET_BUGS": bugs}, name="reference")
        try:  # a Ctrl-C as soon as the addresses are out is a normal stop too
            for k, v in stack.info().items():
                click.echo(f"{k}={v}")
            say(f"stack up in {stack.start_seconds:.1f} s; Ctrl-C to stop")
            signal.pause()  # until Ctrl-C (KeyboardInterrupt) or SIGTERM/SIGHUP (SystemExit)
        except KeyboardInterrupt:
            pass
        say("stopping")
