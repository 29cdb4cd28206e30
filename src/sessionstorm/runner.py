"""``sessionstorm run SCENARIO``: one exact regression scenario, checked, from the shell.

Without a profile it starts the embedded stack with the reference target (bug flags
from --bugs / SESSIONSTORM_TARGET_BUGS); with ``--target-profile`` it runs against your
service. Leaves a run folder under reports/ and exits 0 clean, 1 anomalies, 3 unknown.
Ctrl-C stops after the operations in flight (they are recorded and checked); a second
Ctrl-C aborts at once.
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import click

from sessionstorm.checker.catalogue import CATALOGUE
from sessionstorm.errors import ConfigError
from sessionstorm.rundir import DEFAULT_ROOT
from sessionstorm.scenarios import SCENARIOS
from sessionstorm.workload.profile import parse_sets, profile_options


def _positive(setting: str) -> Callable[[click.Context, click.Parameter, int | None], int | None]:
    def check(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ConfigError(setting, value, "an integer >= 1", f"pass --{setting} 1 or more")
        return value
    return check


@click.command("run")
@click.argument("scenario", type=click.Choice(sorted(SCENARIOS)))
@profile_options
@click.option("--host", default=None, help="URL of a running target (beats the profile's target.base_url)")
@click.option("--bugs", envvar="SESSIONSTORM_TARGET_BUGS", default="", help="reference target bug flags, comma-separated")
@click.option("--backend", envvar="SESSIONSTORM_BACKEND", default=None, help="stack backend (default embedded)")
@click.option("--reports-dir", envvar="SESSIONSTORM_REPORTS", type=click.Path(file_okay=False), default=str(DEFAULT_ROOT))
@click.option("--users", type=int, default=None, callback=_positive("users"), help="override the scenario's users")
@click.option("--rounds", type=int, default=None, callback=_positive("rounds"), help="override the scenario's rounds")
@click.option("--max-error-rate", "error_rate", type=float, default=None,
              help="CLEAN needs at most this share of operations not verified ok (0..1; default: profile, else 0.01)")
@click.option("--max-info-rate", "info_rate", type=float, default=None,
              help="CLEAN needs at most this share of operations with an unknown outcome (0..1; default 0.01)")
@click.option("--expect", default=None, help="anomaly code this run must find (exit 0 when found, 1 when not)")
def run(scenario: str, target_profile: str | None, sets: tuple[str, ...], host: str | None, bugs: str,
        backend: str | None, reports_dir: str, users: int | None, rounds: int | None, error_rate: float | None,
        info_rate: float | None, expect: str | None) -> None:
    """Run SCENARIO once against the target and check every reply."""
    from sessionstorm.driver import run_scenario
    from sessionstorm.run import Run

    if expect and expect not in CATALOGUE:
        raise ConfigError("expect", expect, f"an anomaly code ({', '.join(CATALOGUE)})", "fix the code's spelling")
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    overrides = {k: v for k, v in (("users", users), ("rounds", rounds)) if v is not None}
    SCENARIOS[scenario](**overrides)  # bad overrides fail here, before anything starts
    r = Run(scenario, driver="run", profile=target_profile, sets=parse_sets(sets), host=host, bugs=bugs,
            backend=backend, reports_dir=reports_dir, thresholds={"error_rate": error_rate, "info_rate": info_rate},
            settings=overrides, progress=say)
    from sessionstorm.workload.launch import RunningTarget
    if not SCENARIOS[scenario].supports(RunningTarget(r.profile, "")):
        raise ConfigError("scenario", scenario, f"a target speaking {SCENARIOS[scenario].flavor}",
                          f"add {SCENARIOS[scenario].flavor!r} to target.flavors or pick another scenario")
    r.start()
    try:
        say(f"running {scenario} against {r.url}" + (f" (bugs: {bugs})" if bugs else ""))
        with r.interruptible() as stop:
            result = asyncio.run(run_scenario(scenario, r.target, r.dir, stop=stop, **overrides))
        say(f"{result.ops} ops in {result.duration_s:.1f} s; checking")
        r.settings = result.settings
    except KeyboardInterrupt:
        say("aborted: checking what was recorded")
    finally:
        results = r.finish()
    for line in r.summary():
        click.echo(line)
    if expect:
        found = any(a["code"] == expect for a in results["anomalies"])
        click.echo(f"expected {expect}: {'found' if found else 'NOT found'}")
        sys.exit(0 if found else 1)
    sys.exit(r.exit_code)
