"""``sessionstorm check RUN_DIR``: re-check a recorded run."""
from __future__ import annotations

import sys

import click

from sessionstorm.checker.run import check_run, exit_code
from sessionstorm.checker.summary import summary_lines


@click.command("check")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--max-error-rate", "error_rate", type=float, default=None, help="fail above this error rate (0..1)")
@click.option("--max-p50-ms", "p50_ms", type=float, default=None)
@click.option("--max-p95-ms", "p95_ms", type=float, default=None)
@click.option("--max-p99-ms", "p99_ms", type=float, default=None)
@click.option("--min-reuse-ratio", "session_reuse_ratio", type=float, default=None,
              help="fail below this session reuse ratio (0..1)")
def check(run_dir: str, **thresholds: float | None) -> None:
    """Check RUN_DIR's history, write its results.json; exit 0 clean, 1 anomalies, 3 unknown."""
    from sessionstorm.run import check_thresholds
    results = check_run(run_dir, check_thresholds(thresholds), progress=True)  # a bar on a terminal only
    for line in summary_lines(results, run_dir):
        click.echo(line)
    sys.exit(exit_code(results))
