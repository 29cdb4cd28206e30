"""Report cost: synthetic runs of 10k, 100k and 1M ops (with crosstalk, wrong model, 5xx),
checked, then rendered in a fresh process pinned to core 0 (median of 3); render time, peak RSS,
page size, and the time headless Chromium takes to load the page (median of 3).

Goals: issue 17, the report of a 1M-op run in <= 2 s; issue 6, a page < 5 MB that opens in < 2 s.
Usage: python bench/report.py [--src DIR] [--no-browser] [N ...]
  --src DIR     check and render with the package under DIR (an older src/, for a before/after)
  --no-browser  skip the Chromium load time
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from sessionstorm.synth import write_run

CHECK = """
import sys
from sessionstorm.checker import check_run
check_run(sys.argv[1])
"""
CHILD = """
import json, resource, sys, time
from sessionstorm.report import render_report
t = time.perf_counter()
render_report(sys.argv[1])
print(json.dumps({"s": time.perf_counter() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, run: Path, src: str | None) -> str:
    env = dict(os.environ, **({"PYTHONPATH": src} if src else {}))
    return subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code, str(run)], capture_output=True, text=True,
                          check=True, env=env).stdout


def main() -> None:
    args = sys.argv[1:]
    src = args[args.index("--src") + 1] if "--src" in args else None
    sizes = [int(a) for a in args if a.isdigit() and a != src] or [10_000, 100_000, 1_000_000]
    rows = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        chromium = None
        if "--no-browser" not in args:
            from sessionstorm.report.browser import browser
            chromium = stack.enter_context(browser())
        print(f"{'ops':>9} {'render s':>9} {'µs/op':>6} {'peak MB':>8} {'page KB':>8} {'open s':>7}")
        for n in sizes:
            run = write_run(Path(tmp) / str(n), n, anomalies=("CROSSTALK", "WRONG_MODEL", "SERVER_ERROR")).path
            child(CHECK, run, src)  # results.json (and the columns the report reads)
            renders = [json.loads(child(CHILD, run, src)) for _ in range(3)]
            render = statistics.median(r["s"] for r in renders)
            page = run / "report.html"
            opens = [chromium.visit(page).load_s for _ in range(3)] if chromium else [float("nan")]
            row = {"ops": n, "render_s": render, "rss_mb": max(r["rss_mb"] for r in renders),
                   "kb": page.stat().st_size / 1024, "open_s": statistics.median(opens)}
            rows.append(row)
            print(f"{n:>9} {render:>9.2f} {render / n * 1e6:>6.1f} {row['rss_mb']:>8.0f} "
                  f"{row['kb']:>8.0f} {row['open_s']:>7.2f}", flush=True)
    big = rows[-1]
    print(f"\nlargest run ({big['ops']:,} ops): render {big['render_s']:.2f} s (goal <= 2), page "
          f"{big['kb'] / 1024:.2f} MB (goal < 5), opens in {big['open_s']:.2f} s (goal < 2)")


if __name__ == "__main__":
    main()
