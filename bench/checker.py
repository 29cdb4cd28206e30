"""Checker cost on one core: generated histories of 100k and 1M ops (10M with --big), written as the
drivers write them (`HistoryWriter`: JSON lines, each sealed segment converted to Parquet in the
background during the run), each checked in a fresh process pinned to core 0, next to the time stdlib
`json.loads` takes merely to parse every line of the same history, in a fresh process too.

Prints per size, side by side from one run:
- the parse time;
- the check with the columns written during the run (what a user waits for after a run; goal
  (issue 17): <= 0.5x the parse, <= 300 MB at 1M; 10M in bounded memory with linear cost);
- the check cold (columns/ removed: a history from elsewhere, converted by the check itself);
- the CPU the conversion during the run cost, per op and as a share of the parse: that cost moved to
  the run (a background thread at low priority), it did not vanish.
Ratios are of wall seconds, and of CPU seconds (which a busy machine disturbs less); peak RSS; µs/op
(flat µs/op = linear cost). The machine is shared: parse, check and cold check alternate REPEAT times
(3; 1 at 10M) and medians are quoted.

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

import orjson

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


def stamps(run: Path) -> dict[str, dict]:
    return {p.name: orjson.loads(p.read_bytes()) for p in (run / "columns").glob("*.json")}


def cold_check(run: Path, src: str | None) -> dict:
    """The check with no columns: the run's own set aside meanwhile, then put back."""
    kept = run / "columns.run"
    if (run / "columns").exists():
        (run / "columns").rename(kept)
    try:
        return child(CHECK, run, src)
    finally:
        shutil.rmtree(run / "columns", ignore_errors=True)
        if kept.exists():
            kept.rename(run / "columns")


def main() -> None:
    args = sys.argv[1:]
    big = "--big" in args
    src = args[args.index("--src") + 1] if "--src" in args else None
    repeat = int(args[args.index("--repeat") + 1]) if "--repeat" in args else 3
    flags = {src, str(repeat)}
    sizes = [int(a) for a in args if a.isdigit() and a not in flags] or [100_000, 1_000_000, *([10_000_000] if big else [])]
    med = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        print(f"{'ops':>10} {'json.loads s':>12} | {'check s':>7} {'ratio':>5} {'cpu ratio':>9} {'µs/op':>6} {'peak MB':>7} | "
              f"{'cold s':>6} {'ratio':>5} {'cpu ratio':>9} {'peak MB':>7} | {'run conv µs/op':>14} {'÷ parse cpu':>11}  anomalies")
        for n in sizes:
            t = time.perf_counter()
            run = write_run(Path(tmp) / str(n), n, anomalies=("CROSSTALK", "WRONG_MODEL", "LOST_WRITE")).path
            written = time.perf_counter() - t
            made = stamps(run)
            conv_cpu = sum(s.get("cpu_s", 0.0) for s in made.values())
            parses, checks, colds = [], [], []
            for _ in range(repeat if n < 10_000_000 else 1):  # alternating, so all three see the same load
                parses.append(child(PARSE, run, src))
                checks.append(child(CHECK, run, src))
                colds.append(cold_check(run, src))
            redone = sorted(set(stamps(run)) - set(made))  # parts the check had to convert: none expected
            parse = med(p["s"] for p in parses)
            check, cold = med(c["s"] for c in checks), med(c["s"] for c in colds)
            cpu = med(c["cpu"] / p["cpu"] for c, p in zip(checks, parses))
            cold_cpu = med(c["cpu"] / p["cpu"] for c, p in zip(colds, parses))
            ops = checks[0]["ops"]
            per = check / ops * 1e6
            base = base or per
            print(f"{ops:>10} {parse:>12.2f} | {check:>7.2f} {check / parse:>5.2f} {cpu:>9.2f} {per:>6.2f} "
                  f"{max(c['rss_mb'] for c in checks):>7.0f} | {cold:>6.2f} {cold / parse:>5.2f} {cold_cpu:>9.2f} "
                  f"{max(c['rss_mb'] for c in colds):>7.0f} | {conv_cpu / ops * 1e6:>14.2f} "
                  f"{conv_cpu / med(p['cpu'] for p in parses):>11.2f}  {','.join(checks[0]['codes'])}", flush=True)
            warm_r = ", ".join(f"{c['s'] / p['s']:.2f}" for c, p in zip(checks, parses))
            cold_r = ", ".join(f"{c['s'] / p['s']:.2f}" for c, p in zip(colds, parses))
            print(f"{'':>10} (µs/op vs smallest {per / base:.2f}x; wall ratios {warm_r}; cold {cold_r}; history written in "
                  f"{written:.0f} s, {len(made)} parts made during it"
                  + (f"; the check converted {len(redone)} more: {redone[:3]}" if redone else "") + ")", flush=True)
            if checks[0]["codes"] != colds[0]["codes"]:
                sys.exit(f"the checks disagree: {checks[0]['codes']} vs cold {colds[0]['codes']}")
            shutil.rmtree(Path(tmp) / str(n))  # a 10M history is ~7 GB: one at a time


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"(bench {time.perf_counter() - t:.0f} s)")
