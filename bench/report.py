"""Report cost: synthetic runs of 10k, 100k and 1M ops (with crosstalk, wrong model, 5xx),
checked, then rendered in a fresh process; render time, peak RSS, page size, and the
time headless Chromium takes to load the page (median of 3).

Goal (issue 6): 1M ops render in < 15 s into a page < 5 MB that opens in < 2 s.
Usage: python bench/report.py [N ...]
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sessionstorm.checker import check_run
from sessionstorm.report.browser import browser
from sessionstorm.synth import write_run

SIZES = [int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000]
CHILD = """
import json, resource, sys, time
from sessionstorm.report import render_report
t = time.perf_counter()
render_report(sys.argv[1])
print(json.dumps({"s": time.perf_counter() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, browser() as chromium:
        print(f"{'ops':>9} {'check s':>8} {'render s':>9} {'µs/op':>6} {'peak MB':>8} {'page KB':>8} {'open s':>7}")
        for n in SIZES:
            run = write_run(Path(tmp) / str(n), n, anomalies=("CROSSTALK", "WRONG_MODEL", "SERVER_ERROR"))
            t = time.perf_counter()
            check_run(run)
            check_s = time.perf_counter() - t
            out = subprocess.run([sys.executable, "-c", CHILD, str(run.path)], capture_output=True, text=True, check=True)
            m = json.loads(out.stdout)
            page = run.path / "report.html"
            opens = [chromium.visit(page).load_s for _ in range(3)]
            row = {"ops": n, "check_s": check_s, "render_s": m["s"], "rss_mb": m["rss_mb"],
                   "kb": page.stat().st_size / 1024, "open_s": statistics.median(opens)}
            rows.append(row)
            print(f"{n:>9} {check_s:>8.2f} {m['s']:>9.2f} {m['s'] / n * 1e6:>6.1f} {m['rss_mb']:>8.0f} "
                  f"{row['kb']:>8.0f} {row['open_s']:>7.2f}", flush=True)
    big = rows[-1]
    print(f"\nlargest run ({big['ops']:,} ops): render {big['render_s']:.1f} s (goal < 15), page "
          f"{big['kb'] / 1024:.2f} MB (goal < 5), opens in {big['open_s']:.2f} s (goal < 2)")
    if len(rows) > 1:
        print(f"render cost per op, largest / smallest run: {rows[-1]['render_s'] / rows[-1]['ops'] / (rows[0]['render_s'] / rows[0]['ops']):.2f}x "
              "(1.0 = linear)")


if __name__ == "__main__":
    main()
