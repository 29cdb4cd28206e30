"""``sessionstorm run SCENARIO``: one exact regression scenario, checked, from the shell.

Without a profile it starts the embedded stack with the reference target (bug flags
from --bugs / SESSIONSTORM_TARGET_BUGS); with ``--target-profile`` it runs against your
service. Leaves a run folder under reports/ and exits 0 clean, 1 anomalies, 3 unknown.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from sessionstorm.checker import check_run, exit_code
from sessionstorm.checker.summary import summary_lines
from sessionstorm.driver import SCENARIOS, run_scenario
from sessionstorm.errors import ConfigError
from sessionstorm.report import render_report
from sessionstorm.rundir import DEFAULT_ROOT, RunDir
from sessionstorm.workload.profile import load_profile, parse_sets, profile_options

REFERENCE = Path(__file__).resolve().parents[2] / "fixtures" / "reference.toml"


def _reference_profile() -> Path:
    if not REFERENCE.is_file():
        raise ConfigError("target-profile", "unset", "a target profile (TOML)",
                          "pass --target-profile FILE (the reference profile ships in the source tree's fixtures/)")
    return REFERENCE


@click.command("run")
@click.argument("scenario", type=click.Choice(sorted(SCENARIOS)))
@profile_options
@click.option("--bugs", envvar="SESSIONSTORM_TARGET_BUGS", default="", help="reference target bug flags, comma-separated")
@click.option("--backend", envvar="SESSIONSTORM_BACKEND", default=None, help="stack backend (default embedded)")
@click.option("--reports-dir", envvar="SESSIONSTORM_REPORTS", type=click.Path(file_okay=False), default=str(DEFAULT_ROOT))
@click.option("--users", type=int, default=None, help="override the scenario's users")
@click.option("--rounds", type=int, default=None, help="override the scenario's rounds")
@click.option("--expect", default=None, help="anomaly code this run must find (exit 0 when found, 1 when not)")
def run(scenario: str, target_profile: str | None, sets: tuple[str, ...], bugs: str, backend: str | None,
        reports_dir: str, users: int | None, rounds: int | None, expect: str | None) -> None:
    """Run SCENARIO once against the target and check every reply."""
    from sessionstorm.stack import Stack
    from sessionstorm.workload.launch import attach, launch

    say = lambda m: click.echo(m, err=True)  # noqa: E731
    profile = load_profile(target_profile or _reference_profile(), parse_sets(sets))
    if bugs and target_profile:
        raise ConfigError("bugs", bugs, "no bug flags with your own target profile",
                          "drop --bugs (they belong to the reference target)")
    if bugs:
        from sessionstorm.target.bugs import parse_bugs
        parse_bugs(bugs)  # a typo is one line now, not a failed start later
    overrides = {k: v for k, v in (("users", users), ("rounds", rounds)) if v is not None}
    run_dir = RunDir.create(scenario, root=reports_dir)
    if profile.target.base_url:
        target, stack = attach(profile), None
    else:
        stack = Stack(backend, progress=say).start()
    try:
        if stack is not None:
            target = launch(profile, stack, vars={"bugs": bugs} if not target_profile else None)
        say(f"running {scenario} against {target.url}" + (f" (bugs: {bugs})" if bugs else ""))
        result = asyncio.run(run_scenario(scenario, target, run_dir, **overrides))
        say(f"{result.ops} ops in {result.duration_s:.1f} s; checking")
    finally:
        if stack is not None:
            stack.stop()
    results = check_run(run_dir)
    for line in summary_lines(results, run_dir.path):
        click.echo(line)
    click.echo(f"report: {render_report(run_dir, results)}")
    if expect:
        found = any(a["code"] == expect for a in results["anomalies"])
        click.echo(f"expected {expect}: {'found' if found else 'NOT found'}")
        sys.exit(0 if found else 1)
    sys.exit(exit_code(results))
