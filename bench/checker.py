"""Checker cost on one core: generated histories of 100k and 1M ops (10M with --big), each checked
cold (no columnar cache yet) in a fresh process pinned to core 0, next to the time stdlib
`json.loads` takes merely to parse every line of the same history, in a fresh process too.

Prints per size: the parse time, the check time, their ratio (wall; and of CPU seconds, which a
busy machine disturbs less), the check's peak RSS and µs/op (flat µs/op = linear cost). Goal (issue 17): ratio <= 0.5 and <= 300 MB at 1M; 10M in bounded
memory with linear cost.

The machine is shared: parse and check alternate REPEAT times (3; 1 at 10M) and medians are quoted.

Usage: python bench/checker.py [--big] [--src DIR] [--repeat K] [N ...]
  --src DIR  check with the package under DIR (e.g. a copy of an older src/) for a before/after
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sessionstorm.synth import write_run

PARSE = """
import json, resource, sys, time
from sessionstorm.history import history_files
t = time.perf_counter()
n = 0
for f in history_files(sys.argv[1]):
    with open(f, "rb") as fh:
        for line in fh:
            json.loads(line)
            n += 1
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"s": time.perf_counter() - t, "cpu": u.ru_utime + u.ru_stime, "lines": n}))
"""
CHECK = """
import json, resource, sys, time
from sessionstorm.checker import check_run
t = time.perf_counter()
c = resource.getrusage(resource.RUSAGE_SELF)
r = check_run(sys.argv[1], write=False)
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"s": time.perf_counter() - t, "cpu": u.ru_utime + u.ru_stime - c.ru_utime - c.ru_stime,
                  "rss_mb": u.ru_maxrss / 1024,
                  "ops": r["ops"], "codes": sorted(f"{a['code']}x{a['count']}" for a in r["anomalies"])}))
"""


def child(code: str, run: Path, src: str | None) -> dict:
    env = dict(os.environ, SESSIONSTORM_CHECK_THREADS="1")
    if src:
        env["PYTHONPATH"] = src
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code, str(run)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"failed on {run}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def main() -> None:
    args = sys.argv[1:]
    big = "--big" in args
    src = args[args.index("--src") + 1] if "--src" in args else None
    repeat = int(args[args.index("--repeat") + 1]) if "--repeat" in args else 3
    flags = {src, str(repeat)}
    sizes = [int(a) for a in args if a.isdigit() and a not in flags] or [100_000, 1_000_000, *([10_000_000] if big else [])]
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        print(f"{'ops':>10} {'json.loads s':>12} {'check s':>8} {'ratio':>6} {'cpu ratio':>9} {'µs/op':>6} {'peak MB':>8}"
              "  anomalies found")
        for n in sizes:
            run = write_run(Path(tmp) / str(n), n, anomalies=("CROSSTALK", "WRONG_MODEL", "LOST_WRITE")).path
            parses, checks = [], []
            for _ in range(repeat if n < 10_000_000 else 1):  # alternating, so both see the same load
                parses.append(child(PARSE, run, src))
                shutil.rmtree(run / "columns", ignore_errors=True)  # cold: the check converts the history itself
                checks.append(child(CHECK, run, src))
            m = max(checks, key=lambda c: c["rss_mb"])
            parse, check = statistics.median(p["s"] for p in parses), statistics.median(c["s"] for c in checks)
            cpu = statistics.median(c["cpu"] / p["cpu"] for c, p in zip(checks, parses))
            per = check / m["ops"] * 1e6
            ratios = ", ".join(f"{c['s'] / p['s']:.2f}" for c, p in zip(checks, parses))
            base = base or per
            print(f"{m['ops']:>10} {parse:>12.2f} {check:>8.2f} {check / parse:>6.2f} {cpu:>9.2f} {per:>6.2f} "
                  f"{m['rss_mb']:>8.0f}  {','.join(m['codes'])}   (µs/op vs smallest: {per / base:.2f}x; "
                  f"wall ratios {ratios})", flush=True)
            shutil.rmtree(Path(tmp) / str(n))  # a 10M history is ~7 GB: one at a time


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"(bench {time.perf_counter() - t:.0f} s)")
