"""Checker cost: generated histories of 100k, 300k and 1M ops, each checked in a fresh
process on one core; wall time, peak RSS, and cost per op (linear growth = flat µs/op).

Goal (issue 4): 1M ops in <= 5 s and <= 500 MB peak.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sessionstorm.synth import write_run

SIZES = [int(a) for a in sys.argv[1:]] or [100_000, 300_000, 1_000_000]
CHILD = """
import json, resource, sys, time
from sessionstorm.checker import check_run
t = time.perf_counter()
r = check_run(sys.argv[1])
print(json.dumps({"s": time.perf_counter() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ops": r["ops"], "codes": sorted(a["code"] for a in r["anomalies"])}))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        print(f"{'ops':>9} {'gen s':>7} {'check s':>8} {'µs/op':>7} {'peak MB':>8}  anomalies found")
        for n in SIZES:
            t = time.perf_counter()
            run = write_run(Path(tmp) / str(n), n, anomalies=("CROSSTALK", "WRONG_MODEL", "LOST_WRITE"))
            gen = time.perf_counter() - t
            # taskset: one core, as the goal says
            out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", CHILD, str(run.path)],
                                 capture_output=True, text=True, check=True)
            m = json.loads(out.stdout)
            per = m["s"] / m["ops"] * 1e6
            base = base or per
            print(f"{m['ops']:>9} {gen:>7.1f} {m['s']:>8.2f} {per:>7.2f} {m['rss_mb']:>8.0f}  {','.join(m['codes'])}"
                  f"   (cost/op vs smallest: {per / base:.2f}x)")


if __name__ == "__main__":
    main()
