"""What the harness costs inside Locust, measured side by side in one run:

1. requests/s of SharedKeyUser (every reply parsed, checked online and written to the
   history) against a bare FastHttpUser sending the same requests to the same stub
   (zero latency), one Locust process each, interleaved repeats. Goal: ratio >= 0.9.
2. seconds from the start of load to the first CROSSTALK, with no-request-id, 20 users,
   on the embedded stack (the stack's own start is reported apart). Goal: < 5 s.
3. the Locust process's RSS, sampled every 10 s over a steady run (BENCH_SOAK_S, default
   120 s; 600 for the 10-minute figure). Goal: flat.
"""
from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import portpicker
import psutil

from sessionstorm.checker.online import check_op
from sessionstorm.history import history_files, iter_records

HERE = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
SOAK_S = int(os.environ.get("BENCH_SOAK_S", "120"))
PY = sys.executable


def locust(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "locust", "--headless", "--loglevel", "ERROR", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def rps(stats_csv: str) -> float:
    return float(next(r for r in csv.DictReader(open(stats_csv)) if r["Name"] == "Aggregated")["Requests/s"])


def overhead() -> None:
    port = portpicker.pick_unused_port()
    stub = subprocess.Popen([PY, "-m", "sessionstorm.provider", "--port", str(port), "--ttft-ms", "0", "--token-ms", "0",
                             "--jitter-ms", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    results: dict[str, list[float]] = {"BareUser": [], "VerifiedUser": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(REPEATS):
                for user in results:
                    prefix = f"{tmp}/{user}{i}"
                    locust(["-f", str(HERE / "locust_users_file.py"), "-u", "32", "-r", "32", "-t", f"{SECONDS}s",
                            "--host", f"http://127.0.0.1:{port}", "--target-profile", str(HERE / "stub-profile.toml"),
                            "--reports-dir", f"{tmp}/reports", "--csv", prefix, "--only-summary", user])
                    results[user].append(rps(f"{prefix}_stats.csv"))
    finally:
        stub.terminate()
        stub.wait(10)
    bare, full = (statistics.median(v) for v in results.values())
    ratios = [f / b for f, b in zip(results["VerifiedUser"], results["BareUser"])]
    print(f"1. bare FastHttpUser {bare:.0f} req/s; SharedKeyUser with verification and history {full:.0f} req/s; "
          f"ratio {statistics.median(ratios):.2f} (median of {REPEATS} interleaved pairs; goal >= 0.9)")


def first_crosstalk() -> None:
    times = []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            p = locust(["-f", str(HERE.parent / "locustfiles" / "shared_key.py"), "-u", "20", "-r", "20", "-t", "8s",
                        "--reports-dir", tmp, "--only-summary"], env={"SESSIONSTORM_TARGET_BUGS": "no-request-id"})
            ops = [r for r in iter_records(history_files(Path(tmp) / "latest")) if r["type"] == "op"]
            load_start = min(o["invoke_wall"] for o in ops)
            first = min(o["complete_wall"] for o in ops if any(c == "CROSSTALK" for c, _ in check_op(o)))
            times.append((first - load_start, load_start - t0, p.returncode))
    ttc, setup, _ = (statistics.median(x) for x in zip(*times))
    print(f"2. first CROSSTALK {ttc:.2f} s after load started (median of {REPEATS}; goal < 5 s); "
          f"stack and target start before load: {setup:.1f} s; exit codes {[t[2] for t in times]}")


def memory() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([PY, "-m", "locust", "--headless", "--loglevel", "ERROR", "-f",
                                 str(HERE.parent / "locustfiles" / "mixed.py"), "-u", "20", "-r", "20", "-t", f"{SOAK_S}s",
                                 "--reports-dir", tmp, "--only-summary"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = []
        p = psutil.Process(proc.pid)
        deadline = time.monotonic() + SOAK_S + 120
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(10)
            try:
                samples.append(p.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                break
        proc.wait(120)
    # Samples while load runs, then the end-of-run verdict (check + report of the whole run).
    steady, verdict = samples[:SOAK_S // 10], samples[SOAK_S // 10:]
    mid = steady[len(steady) // 2:] or steady
    print(f"3. Locust RSS every 10 s over {SOAK_S} s of mixed load (MB): {' '.join(f'{s:.0f}' for s in steady)}; "
          f"second half grew {mid[-1] - mid[0]:+.1f} MB; end-of-run verdict peak "
          f"{max(verdict, default=0):.0f} MB")


if __name__ == "__main__":
    overhead()
    first_crosstalk()
    memory()
