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


CONFIGS = [  # name, command, Locust user class
    ("minimal ASGI (json)", [sys.executable, str(HERE / "minimal_app.py")], "ChatJSONUser"),
    ("stub provider (json)", [sys.executable, "-m", "sessionstorm.provider"], "ChatJSONUser"),
    ("stub provider (stream)", [sys.executable, "-m", "sessionstorm.provider"], "ChatStreamUser"),
]


def main() -> None:
    servers = []
    try:
        for name, cmd, user in CONFIGS:
            port = portpicker.pick_unused_port()
            args = [*cmd, str(port)] if "minimal" in name else [*cmd, "--port", str(port), *ZERO_LATENCY]
            servers.append((name, user, port, start(args, port)))
        # Interleaved: every repeat measures every server, so a noisy moment hits all of them.
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name, *_ in servers}
        for _ in range(REPEATS):
            for name, user, port, proc in servers:
                p = psutil.Process(proc.pid)
                c0 = p.cpu_times()
                rps, n, locust_cpu = locust(port, user)
                c1 = p.cpu_times()
                server_cpu = (c1.user - c0.user) + (c1.system - c0.system)
                runs[name].append((rps, server_cpu / max(n, 1) * 1e6, locust_cpu / max(n, 1) * 1e6))
    finally:
        for *_, proc in servers:
            proc.terminate()
            proc.wait(10)
    print(f"median of {REPEATS} interleaved runs x {SECONDS} s; one Locust process, 32 users, no wait; "
          "stub at zero latency")
    print(f"{'server':<24} {'req/s':>8} {'server µs/req':>14} {'locust µs/req':>14}")
    for name, rs in runs.items():
        rps, srv, loc = (statistics.median(x) for x in zip(*rs))
        print(f"{name:<24} {rps:>8.0f} {srv:>14.0f} {loc:>14.0f}")
    mini, json_, stream = runs.values()
    ratio = lambda a, b, i, j: statistics.median(x[i] / y[j] for x, y in zip(a, b))  # noqa: E731
    print()
    print(f"stub cost / minimal app cost (json, server CPU per request): {ratio(json_, mini, 1, 1):.2f}")
    print(f"stub capacity / one Locust worker's (json):   {ratio(json_, json_, 2, 1):.2f}  (goal >= 2)")
    print(f"stub capacity / one Locust worker's (stream): {ratio(stream, stream, 2, 1):.2f}")


if __name__ == "__main__":
    main()
