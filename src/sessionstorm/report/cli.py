"""``sessionstorm report RUN_DIR`` and ``sessionstorm compare OLD_RUN NEW_RUN``."""
from __future__ import annotations

from pathlib import Path

import click

from sessionstorm.errors import ConfigError
from sessionstorm.report.compare import Limits


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--recheck", is_flag=True, help="run the checker again first (after a checker upgrade)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="where to write the page (default RUN_DIR/report.html)")
def report(run_dir: Path, recheck: bool, output: Path | None) -> None:
    """Render RUN_DIR/report.html from its results.json and history."""
    from sessionstorm.checker import check_run
    from sessionstorm.history import history_files
    from sessionstorm.report.render import render_report

    if not run_dir.is_dir() or not history_files(run_dir):
        raise ConfigError("RUN_DIR", str(run_dir), "a run folder with history/*.jsonl", "pass a folder under reports/")
    if output is not None:
        _writable_parent(output, "output")
    results = check_run(run_dir, progress=True) if recheck or not (run_dir / "results.json").exists() else None
    click.echo(f"report: {render_report(run_dir, results, output, progress=True)}")  # bars on a terminal only


def _writable_parent(path: Path, setting: str) -> None:
    import os
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise ConfigError(setting, str(path), "a file in an existing, writable folder",
                          f"create {path.parent} first or write elsewhere")


def _limit(name: str, help_: str):
    default = getattr(Limits, name.replace("-", "_"))  # one place for the defaults: Limits
    return click.option(f"--{name}", type=float, default=default, show_default=True,
                        envvar=f"SESSIONSTORM_COMPARE_{name.upper().replace('-', '_')}", help=help_)


@click.command("compare")
@click.argument("old_run", type=click.Path(path_type=Path))
@click.argument("new_run", type=click.Path(path_type=Path))
@_limit("latency-ratio", "new/old p50, p95, p99 above this regresses")
@_limit("latency-floor-ms", "…and only when also this many ms slower")
@_limit("error-rate-delta", "error rate risen by more than this (0.01 = 1 point) regresses")
@_limit("throughput-drop", "throughput fallen by more than this fraction regresses")
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="where to write the HTML page (default NEW_RUN/compare.html)")
def compare(old_run: Path, new_run: Path, latency_ratio: float, latency_floor_ms: float, error_rate_delta: float,
            throughput_drop: float, html: Path | None) -> int:
    """Compare NEW_RUN against OLD_RUN; exit 1 when it regressed beyond the limits."""
    from sessionstorm.progress import Steps
    from sessionstorm.report.compare import compare_runs, render_compare, text

    if html is not None:
        _writable_parent(html, "html")
    steps = Steps("compare", 2)  # a bar on a terminal only, and only if this takes a while
    steps.step("reading both runs")
    cmp = compare_runs(old_run, new_run, Limits(latency_ratio, latency_floor_ms, error_rate_delta, throughput_drop))
    steps.step("writing the page")
    page = render_compare(cmp, html or Path(cmp["new"]) / "compare.html")
    steps.done()
    for line in text(cmp):
        click.echo(line)
    click.echo(f"page: {page}")
    return 1 if cmp["regressed"] else 0
