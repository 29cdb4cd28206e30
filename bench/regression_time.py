"""`pytest regression -n auto` per backend, on an idle machine and with CPU hogs beside it
(default 4: 2x the cores here): wall time and whether it passed, side by side in one run.

    .venv/bin/python bench/regression_time.py [--hogs 4] [--repeat 3] [--backend embedded,docker]

Each line: the median of --repeat runs, every run's time, and the 1-minute load average
before each run (the machine is shared: an "idle" figure measured beside other work is not idle).

The docker backend needs an engine and the images (`make docker-images`); without one it is
reported as skipped, not as a pass. Goal (issue 17): green under four hogs, <= 30 s idle.
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sessionstorm.hogs import hogs

ROOT = Path(__file__).resolve().parent.parent


def docker_env() -> dict[str, str] | None:
    """docker/offline.env's settings, or None when no engine answers."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return None
    pairs = shlex.split((ROOT / "docker" / "offline.env").read_text())
    return dict(p.split("=", 1) for p in pairs)


def suite(backend: str, env: dict[str, str]) -> tuple[float, bool, str]:
    """One run: (wall s, passed, its last line)."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pytest", "regression", "-n", "auto", "-q", "-p", "no:cacheprovider"],
                       cwd=ROOT, env={**os.environ, **env, "SESSIONSTORM_BACKEND": backend},
                       capture_output=True, text=True, timeout=1800)
    last = (p.stdout.strip().splitlines() or ["(no output)"])[-1]
    return time.perf_counter() - t, p.returncode == 0, last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hogs", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="runs per backend and machine state (median printed)")
    ap.add_argument("--backend", default="embedded,docker")
    a = ap.parse_args()
    # the machine is shared: the 1-minute load average before each run says how busy it was
    # (with N hogs it includes them); a figure means little without it
    print(f"{'backend':<9} {'machine':<8} {'runs':>4} {'median s':>9} {'runs s':<18} {'load avg':<16} {'passed':>7}  last line")
    failed = False
    for backend in a.backend.split(","):
        env = {} if backend == "embedded" else docker_env()
        if env is None:
            print(f"{backend:<9} skipped: no Docker engine answers (make docker-images)")
            continue
        for label, n in (("idle", 0), (f"{a.hogs} hogs", a.hogs)):
            times, loads, ok, last = [], [], 0, ""
            for _ in range(a.repeat):
                loads.append(os.getloadavg()[0])
                if n:
                    with hogs(n):
                        s, passed, last = suite(backend, env)
                else:
                    s, passed, last = suite(backend, env)
                times.append(s)
                ok += passed
            failed |= ok < a.repeat
            runs = ",".join(f"{t:.0f}" for t in times)
            load = ",".join(f"{x:.1f}" for x in loads)
            print(f"{backend:<9} {label:<8} {a.repeat:>4} {statistics.median(times):>9.1f} {runs:<18} {load:<16} "
                  f"{ok:>4}/{a.repeat}  {last}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
