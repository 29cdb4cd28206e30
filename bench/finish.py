"""Check and report CPU of small runs, as `Run.finish` does them (issue 17: the regression suite makes
~50 runs of 50-500 ops, each checked and reported in a warm xdist worker, on a saturated machine).

Per run (synthetic runs of 70 and 500 ops by default, with a crosstalk, a wrong model and a lost write;
or real run folders with --run), one warm process per package (the current one, and each --src DIR side
by side) finishes REPEAT fresh copies of the run folder, as its writer left it (no results.json, no
report.html, no parts the check made), as `run.check_and_report` does (one `Columns` for both where the
package has it, else check_run then render_report). Printed: the CPU (process time, DuckDB's threads
included) of the check and of the report, medians in ms, and each package's total against the first's.
The packages take turns in 3 rounds, so all see the same load.

Usage: python bench/finish.py [--src DIR ...] [--repeat K] [--run DIR ...] [N ...]
  --src DIR  also with the package under DIR (e.g. a copy of an older src/): the first given is the baseline
  --run DIR  a run folder to finish too (copied; repeatable); with --run, synthetic sizes only when given
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROUNDS = 3
CHILD = r"""
import inspect, json, shutil, sys, time
from pathlib import Path
from sessionstorm.checker import check_run
from sessionstorm.report import render_report

shared = "cols" in inspect.signature(check_run).parameters
if shared:
    from sessionstorm.columns import Columns

def finish(run):
    t0 = time.process_time()
    if shared:  # as run.check_and_report
        with Columns(run) as cols:
            results = check_run(run, cols=cols)
            t1 = time.process_time()
            render_report(run, results, cols=cols)
    else:
        results = check_run(run)
        t1 = time.process_time()
        render_report(run, results)
    return t1 - t0, time.process_time() - t1, sorted(f"{a['code']}x{a['count']}" for a in results["anomalies"])

scratch, repeat, runs = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
skip = shutil.ignore_patterns("columns", "results.json", "report.html")
out = {}
for k, src in enumerate(runs):
    copies = []
    for i in range(repeat + 2):
        dst = scratch / f"{k}-{i}"
        shutil.copytree(src, dst, symlinks=True, ignore=skip)
        copies.append(dst)
    finish(copies[0]); finish(copies[1])  # warm: imports, templates, the first database
    got = [finish(c) for c in copies[2:]]
    out[src] = {"check": [g[0] for g in got], "report": [g[1] for g in got], "codes": got[0][2]}
    for c in copies:
        shutil.rmtree(c)
print(json.dumps(out))
"""


def child(src: str | None, runs: list[str], repeat: int, scratch: Path) -> dict:
    env = dict(os.environ, SESSIONSTORM_CHECK_THREADS="1")
    if src:
        env["PYTHONPATH"] = src
    scratch.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", CHILD, str(scratch), str(repeat), *runs],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        sys.exit(f"failed ({src or 'current'}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    args = sys.argv[1:]
    srcs: list[str | None] = [args[i + 1] for i, a in enumerate(args) if a == "--src"]
    given = [args[i + 1] for i, a in enumerate(args) if a == "--run"]
    repeat = int(args[args.index("--repeat") + 1]) if "--repeat" in args else 15
    taken = {*srcs, *given, str(repeat)}
    sizes = [int(a) for a in args if a.isdigit() and a not in taken] or ([] if given else [70, 500])
    packages = [*srcs, None]  # the current package last: the baseline first
    med = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        from sessionstorm.synth import write_run
        runs = [str(write_run(Path(tmp) / f"runs-{n}", n, anomalies=("CROSSTALK", "WRONG_MODEL", "LOST_WRITE")).path)
                for n in sizes] + [str(Path(r).resolve()) for r in given]
        per_round = max(1, -(-repeat // ROUNDS))
        got: dict[int, dict[str, dict]] = {k: {} for k in range(len(packages))}
        for r in range(ROUNDS):
            for k, src in enumerate(packages):
                for run, m in child(src, runs, per_round, Path(tmp) / f"scratch-{k}-{r}").items():
                    into = got[k].setdefault(run, {"check": [], "report": [], "codes": m["codes"]})
                    into["check"] += m["check"]
                    into["report"] += m["report"]
        print(f"{'run':<28} {'package':<28} {'check ms':>8} {'report ms':>9} {'total ms':>8} {'vs first':>8}  anomalies")
        for run in runs:
            ops = json.loads((Path(run) / "run.json").read_text()).get("settings", {}).get("ops", "")
            base = None
            for k, src in enumerate(packages):
                m = got[k][run]
                check, report = med(m["check"]) * 1000, med(m["report"]) * 1000
                total = med(c + p for c, p in zip(m["check"], m["report"])) * 1000
                base = base or total
                name = f"{Path(run).name}" + (f" ({ops} ops)" if ops else "")
                print(f"{name[-28:]:<28} {(src or 'current')[-28:]:<28} {check:>8.1f} {report:>9.1f} {total:>8.1f} "
                      f"{total / base:>7.2f}x  {','.join(m['codes'])}", flush=True)
            codes = {tuple(got[k][run]["codes"]) for k in got}
            if len(codes) > 1:
                sys.exit(f"the packages disagree on {run}: {codes}")
        print(f"(medians of {per_round * ROUNDS} finishes per run and package, CPU ms; {ROUNDS} rounds in turn)")


if __name__ == "__main__":
    main()
