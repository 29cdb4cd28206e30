"""The bug zoo on a busy machine: every seeded bug's scenario, R rounds each, with CPU hogs
beside it (default 4: 2x the cores here), and the clean twin -- the same scenario, the same
R rounds, against the clean target. Prints, per bug, the rounds in which its anomaly was
caught out of R, and the anomalies the clean twin found (must be 0), with median latencies.

    .venv/bin/python bench/bugzoo_load.py [--rounds 20] [--hogs 4] [--only BUG] [--scenario NAME]
    SESSIONSTORM_BACKEND=docker .venv/bin/python bench/bugzoo_load.py   # the docker backend

A round is one run of the scenario against the bug's target and one against the clean
target, at the same time, checked, exactly as one round of regression/test_bug_zoo.py (which
stops at the first catch, up to its bound; ``--serial`` runs the two one after the other): a
bug caught in c of R rounds here misses the suite's N rounds with probability about
(1 - c/R)^N. Every bug case has its own R twin rounds.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from sessionstorm.checker import check_run
from sessionstorm.driver import run_scenario
from sessionstorm.history import history_files, iter_records
from sessionstorm.hogs import hogs
from sessionstorm.profile import load_profile
from sessionstorm.rundir import RunDir
from sessionstorm.scenarios import BUG_ZOO
from sessionstorm.stack import Stack
from sessionstorm.stack.launch import launch

try:
    from sessionstorm.profiles import REFERENCE
except ImportError:  # before the profiles moved into the package
    REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "reference.toml"


def one_round(scenario: str, target: Any, root: str) -> dict[str, Any]:
    run = RunDir.create(scenario, root=root)
    t0 = time.monotonic()
    asyncio.run(run_scenario(scenario, target, run))
    wall = time.monotonic() - t0
    results = check_run(run)
    recs = list(iter_records(history_files(run.path)))
    ops = [r for r in recs if r["type"] == "op"]
    released = [r["data"] for r in recs if r["type"] == "event" and r.get("kind") == "release" and r["data"].get("held")]
    lat = [(o["complete_mono"] - o["invoke_mono"]) * 1000 for o in ops if "complete_mono" in o]
    return {"codes": Counter(a["code"] for a in results["anomalies"]), "valid": results["valid"], "wall_s": wall,
            "p50_ms": statistics.median(lat) if lat else float("nan"),
            "outcomes": Counter(o.get("outcome") for o in ops),
            "hold_ms": [b["waited_ms"] for b in released], "by_bound": sum(b["timed_out"] for b in released)}


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", "-R", type=int, default=int(os.environ.get("BENCH_ROUNDS", "20")))
    ap.add_argument("--hogs", type=int, default=int(os.environ.get("BENCH_HOGS", "4")))
    ap.add_argument("--only", action="append", help="only this bug set (repeatable)")
    ap.add_argument("--scenario", action="append", help="only cases of this scenario (repeatable)")
    ap.add_argument("--no-clean", action="store_true", help="skip the clean twin")
    ap.add_argument("--serial", action="store_true", help="the clean twin after the bug's round, not beside it")
    args = ap.parse_args()
    cases = [c for c in BUG_ZOO if (not args.only or c[0] in args.only)
             and (not args.scenario or c[1] in args.scenario)]
    p = load_profile(str(REFERENCE))  # as regression/conftest.py: no latency limits (the machine is busy on purpose)
    profile = replace(p, thresholds=replace(p.thresholds, p50_ms=None, p95_ms=None, p99_ms=None, ttft_p95_ms=None))
    backend = os.environ.get("SESSIONSTORM_BACKEND") or "embedded"
    R = args.rounds
    with Stack(backend) as stack, tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        targets = {}
        for flags in dict.fromkeys([b for b, _, _ in cases] + ([] if args.no_clean else [""])):
            targets[flags] = launch(profile, stack, vars={"bugs": flags}, name=(flags or "clean").replace(",", "+"))
        rows = []
        t_start = time.monotonic()
        # the hogs die with the bench (by pid); their own deadline only bounds a bench killed hard:
        # 40 s a round, about 3x the slowest seen (14 s, beside 4 hogs and another bench)
        with hogs(args.hogs, max_s=max(600, 40 * R * len(cases))) as h:
            print(f"backend {backend}; {args.hogs} CPU hogs ({h.tool}) on {os.cpu_count()} cores; "
                  f"{R} rounds per bug, each with a clean twin round {'after' if args.serial else 'beside'} it",
                  flush=True)
            for bugs, scenario, codes in cases:
                got, clean = [], []
                for _ in range(R):
                    if args.no_clean:
                        got.append(one_round(scenario, targets[bugs], tmp))
                    elif args.serial:
                        got.append(one_round(scenario, targets[bugs], tmp))
                        clean.append(one_round(scenario, targets[""], tmp))
                    else:
                        a, b = (pool.submit(one_round, scenario, targets[t], tmp) for t in (bugs, ""))
                        got.append(a.result())
                        clean.append(b.result())
                caught = sum(bool(codes & g["codes"].keys()) for g in got)
                rows.append((bugs, scenario, caught, got, clean))
                print(f"  {bugs} / {scenario}: caught {caught}/{R}"
                      + (f"; clean twin: {sum(sum(g['codes'].values()) for g in clean)} anomalies, "
                         f"{sum(g['valid'] is not True for g in clean)} rounds not CLEAN, non-ok ops "
                         f"{sum(g['outcomes'][k] for g in clean for k in g['outcomes'] if k != 'ok')}" if clean else ""),
                      flush=True)
            if not h.alive():
                print("WARNING: the hogs ended before the bench did (their deadline): the last rounds ran "
                      "on a quieter machine", flush=True)
        total = time.monotonic() - t_start
    print()
    print("caught: rounds (of R) in which the bug's anomaly was found; p50: median op latency (median over "
          "rounds); hold: median wait of a burst for its slowest request's first part; bound: bursts released "
          "by the bound instead")
    print(f"{'bug':<36} {'scenario':<21} {'caught':>7} {'p50 ms':>7} {'round s':>8} {'hold ms':>7} {'bound':>5} | "
          f"{'clean anomalies':>15} {'non-ok':>6} {'p50 ms':>7} {'round s':>8}")
    for bugs, scenario, caught, got, c in rows:
        anomalies = sum(sum(g["codes"].values()) for g in c)
        nonok = sum(g["outcomes"][k] for g in c for k in g["outcomes"] if k != "ok")
        codes = ",".join(sorted({k for g in c for k in g["codes"]}))
        print(f"{bugs:<36} {scenario:<21} {f'{caught}/{R}':>7} {med([g['p50_ms'] for g in got]):>7.0f} "
              f"{med([g['wall_s'] for g in got]):>8.2f} {med([h for g in got for h in g['hold_ms']]):>7.0f} "
              f"{sum(g['by_bound'] for g in got):>5} | "
              + (f"{anomalies if c else '-':>15} {nonok:>6} {med([g['p50_ms'] for g in c]):>7.0f} "
                 f"{med([g['wall_s'] for g in c]):>8.2f}" + (f"  {codes}" if codes else "")))
    worst = min((caught for _, _, caught, _, _ in rows), default=R)
    false_alarms = sum(sum(g["codes"].values()) for *_, c in rows for g in c)
    unclean = sum(g["valid"] is not True for *_, c in rows for g in c)  # unknown verdicts too: they verified nothing
    met = worst >= R - R // 20 and false_alarms == 0 and unclean == 0
    print(f"\nworst bug: {worst}/{R} rounds; clean twin anomalies: {false_alarms}, rounds not CLEAN: {unclean}; "
          f"{total:.0f} s with {args.hogs} hogs; "
          f"goal (each bug in >= 19 of 20 rounds, 0 on the clean twin): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
