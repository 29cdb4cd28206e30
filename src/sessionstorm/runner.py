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
import threading
from collections.abc import Callable
from typing import Any

import click

from sessionstorm.checker.catalogue import CATALOGUE
from sessionstorm.errors import ConfigError
from sessionstorm.rundir import DEFAULT_ROOT
from sessionstorm.scenarios import SCENARIOS
from sessionstorm.profile import parse_sets, profile_options


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
@click.option("--allow-remote", is_flag=True, default=None, envvar="SESSIONSTORM_ALLOW_REMOTE",
              help="allow a non-loopback target (then capped: --max-rps, --max-requests, --abort-error-rate)")
@click.option("--max-rps", type=float, default=None, help="at most this many requests per second (remote default 50)")
@click.option("--max-requests", type=int, default=None, help="stop after this many requests")
@click.option("--abort-error-rate", type=float, default=None,
              help="abort when this share of the last 30 s of requests failed (remote default 0.5)")
@click.option("--metrics-port", type=int, default=None, help="serve Prometheus metrics on 127.0.0.1:PORT")
@click.option("--fault", "faults", multiple=True, envvar="SESSIONSTORM_FAULTS",
              help="ACTION:COMPONENT@START[+DURATION], repeatable: kill:target@5+3, restart:postgres@10, "
                   "pause:redis@8+4, error:provider@5+5, latency:provider@5+5,latency=800ms, drop:target@5+2")
@click.option("--recovery-s", "recovery_s", type=float, default=None,
              help="grace after a fault ends (s): failures until then are availability (default: profile, else 10)")
@click.option("--seconds", type=int, default=None, callback=_positive("seconds"),
              help="how long the steady scenario runs (the one for --fault)")
def run(scenario: str, target_profile: str | None, sets: tuple[str, ...], host: str | None, bugs: str,
        backend: str | None, reports_dir: str, users: int | None, rounds: int | None, error_rate: float | None,
        info_rate: float | None, expect: str | None, allow_remote: bool | None, max_rps: float | None,
        max_requests: int | None, abort_error_rate: float | None, metrics_port: int | None,
        faults: tuple[str, ...], recovery_s: float | None, seconds: int | None) -> None:
    """Run SCENARIO once against the target and check every reply."""
    from sessionstorm.driver import run_scenario
    from sessionstorm.run import Run

    if expect and expect not in CATALOGUE:
        import difflib
        close = difflib.get_close_matches(expect.upper(), CATALOGUE, n=1)
        raise ConfigError("expect", expect, f"an anomaly code ({', '.join(CATALOGUE)})",
                          f"did you mean {close[0]}?" if close else "pick a listed code")
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    overrides = {k: v for k, v in (("users", users), ("rounds", rounds), ("seconds", seconds)) if v is not None}
    sc = SCENARIOS[scenario](**overrides)  # bad overrides fail here, before anything starts
    if faults:
        from sessionstorm.nemesis import end_s, parse_faults
        last = max(end_s(f) for f in parse_faults(faults))
        if seconds is None and hasattr(sc, "seconds"):  # long enough for the faults and the recovery after
            overrides["seconds"] = max(sc.seconds, int(last + (recovery_s if recovery_s is not None else 10)) + 1)
            sc = SCENARIOS[scenario](**overrides)
        if getattr(sc, "seconds", 0) < last:
            raise ConfigError("fault", faults[-1], f"a run that lasts past {last:g} s (when the faults end)",
                              f"run the steady scenario with --seconds {int(last) + 10} or more")
    r = Run(scenario, driver="run", profile=target_profile, sets=parse_sets(sets), host=host, bugs=bugs,
            backend=backend, reports_dir=reports_dir, thresholds={"error_rate": error_rate, "info_rate": info_rate,
                                                                  "recovery_s": recovery_s},
            settings=overrides, progress=say, allow_remote=allow_remote, max_rps=max_rps,
            max_requests=max_requests, abort_error_rate=abort_error_rate, metrics_port=metrics_port,
            faults=faults)
    from sessionstorm.stack.launch import RunningTarget
    if not SCENARIOS[scenario].supports(RunningTarget(r.profile, "")):
        raise ConfigError("scenario", scenario, f"a target speaking {SCENARIOS[scenario].flavor}",
                          f"add {SCENARIOS[scenario].flavor!r} to target.flavors or pick another scenario")
    chosen: Any = scenario
    if faults and hasattr(SCENARIOS[scenario], "until"):  # fault times count from the load's first tick
        gate = r.fault_gate = threading.Event()
        chosen = SCENARIOS[scenario].until(lambda d: gate.set() or False)  # opens it; never ends the load
    r.start()
    try:
        say(f"running {scenario} against {r.url}" + (f" (bugs: {bugs})" if bugs else ""))
        with r.interruptible() as stop:
            result = asyncio.run(run_scenario(chosen, r.target, r.dir, stop=stop, wire=r.wire, **overrides))
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
