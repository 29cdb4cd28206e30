"""Stub provider throughput under Locust FastHttpUser load, beside a minimal ASGI app on
the same server stack, measured in one run.

Each measurement: one Locust process (headless, 32 users, no wait) against one server
process for a few seconds. Reported per measurement: requests/s, and the CPU each side
spent per request. A server's capacity is 1 / (its CPU per request); one Locust worker's
is 1 / (Locust's CPU per request). Goal (issue 2): the stub's capacity is at least twice
what one Locust worker can generate, so the stub is never the bottleneck.
"""
from __future__ import annotations

import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import portpicker
import psutil

HERE = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
ZERO_LATENCY = ["--ttft-ms", "0", "--token-ms", "0", "--jitter-ms", "0"]


def start(cmd: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "llama-70b",
                       "messages": [{"role": "user", "content": "x"}]}, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server {cmd} did not answer on port {port}")


def locust(port: int, user: str) -> tuple[float, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "locust", "-f", str(HERE / "locust_bench.py"), "--headless", "-u", "32",
                        "-r", "32", "-t", f"{SECONDS}s", "--host", f"http://127.0.0.1:{port}", "--only-summary",
                        "--csv", f"{tmp}/r", "--loglevel", "ERROR", user],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=SECONDS + 60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        row = next(r for r in csv.DictReader(open(f"{tmp}/r_stats.csv")) if r["Name"] == "Aggregated")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(row["Requests/s"]), int(row["Request Count"]), cpu


def measure(name: str, cmd: list[str], user: str) -> dict[str, float]:
    port = portpicker.pick_unused_port()
    proc = start([*cmd, str(port)] if "minimal" in name else [*cmd, "--port", str(port), *ZERO_LATENCY], port)
    server = psutil.Process(proc.pid)
    runs = []
    try:
        for _ in range(REPEATS):
            c0 = server.cpu_times()
            rps, n, locust_cpu = locust(port, user)
            c1 = server.cpu_times()
            server_cpu = (c1.user - c0.user) + (c1.system - c0.system)
            runs.append((rps, server_cpu / max(n, 1) * 1e6, locust_cpu / max(n, 1) * 1e6))
    finally:
        proc.terminate()
        proc.wait(10)
    rps, srv, loc = (statistics.median(x) for x in zip(*runs))
    print(f"{name:<22} {rps:>9.0f} {srv:>12.0f} {loc:>13.0f} {1e6 / srv:>13.0f} {1e6 / loc:>13.0f}")
    return {"rps": rps, "server_us": srv, "locust_us": loc}


def main() -> None:
    py = sys.executable
    print(f"median of {REPEATS} x {SECONDS} s; one Locust process, 32 users, no wait; stub at zero latency")
    print(f"{'server':<22} {'req/s':>9} {'server µs/req':>12} {'locust µs/req':>13} {'server cap/s':>13} {'locust cap/s':>13}")
    minimal = measure("minimal ASGI (json)", [py, str(HERE / "minimal_app.py")], "ChatJSONUser")
    stub = measure("stub provider (json)", [py, "-m", "sessionstorm.provider"], "ChatJSONUser")
    stream = measure("stub provider (stream)", [py, "-m", "sessionstorm.provider"], "ChatStreamUser")
    worker_cap = 1e6 / minimal["locust_us"]
    print()
    print(f"stub/minimal capacity (json): {minimal['server_us'] / stub['server_us']:.2f}")
    print(f"stub capacity / one Locust worker's (json):   {1e6 / stub['server_us'] / worker_cap:.2f}  (goal >= 2)")
    print(f"stub capacity / one Locust worker's (stream): {1e6 / stream['server_us'] / (1e6 / stream['locust_us']):.2f}")


if __name__ == "__main__":
    main()
