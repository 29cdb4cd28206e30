"""What the harness costs inside Locust, measured side by side in one run:

1. requests/s of SharedKeyUser (every reply parsed, checked online and written to the
   history) against a bare FastHttpUser sending the same requests to the same stub
   (zero latency), one Locust process each, interleaved repeats (ABBA order), judged over
   each run's steady window (from 2 s after the first request to the stop, from the
   process's own samples: bench/locust_users_file.py). Printed: the median of the pairs'
   ratios (goal >= 0.9), and the Locust process's CPU time per request and RSS at the end of
   the load: on a machine shared with other work, req/s swings with the neighbours' load,
   CPU per request much less.
   Read the pairs with the bench's own limits in mind: the stub shares the machine. The slower
   arm leaves the stub idle more often (stub sleeps per request, /proc: 0.06 bare; verified
   0.45, 0.23 once it got faster), and each request that wakes it costs the sender kernel
   time (a cross-CPU wake-up, dear in a VM): 2-5 µs of system CPU a request more in the
   verified process for the same syscalls and bytes (user/sys from /proc/<pid>/stat). That was
   the "send costs twice as much" that strace showed. A remote target costs neither arm this.
   `sidebyside`: the same two arms at the same time, one process each against the one stub,
   the launch order alternated: both meet the same neighbours and the same stub, so drift in
   the machine's load cancels within a pair (measured: pairs within +-0.02 under neighbours'
   load, where ABBA's pairs spread +-0.05; on a quiet machine both within +-0.02).
   Neither process is saturated then (they share two cores with the stub), so its CPU per
   request is the same work at a lower rate, not the ABBA figure again.
2. seconds from the start of load to the first CROSSTALK, with no-request-id, 20 users,
   on the embedded stack (the stack's own start is reported apart). Goal: < 5 s.
3. the Locust process's RSS, sampled every 10 s over a steady run (BENCH_SOAK_S, default
   120 s; 600 for the 10-minute figure). Goal: flat.

    .venv/bin/python bench/locust_users.py [overhead] [sidebyside] [crosstalk] [memory]   # default: all
    BENCH_REPEATS=5 BENCH_SECONDS=8                                          # pairs, seconds each
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import portpicker
import psutil

from sessionstorm.checker.online import check_op
from sessionstorm.history import history_files, iter_records

HERE = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
SOAK_S = int(os.environ.get("BENCH_SOAK_S", "120"))
RAMP_S = 2.0  # judged from here: 32 users spawn in 1 s, connections are open by then
PY = sys.executable


def locust(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "locust", "--headless", "--loglevel", "ERROR", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def steady(samples_file: str) -> dict[str, float]:
    """req/s, the Locust process's CPU µs per request and its RSS over the steady window
    (from RAMP_S after the first request to the test's stop), from the process's own samples."""
    samples = json.load(open(samples_file))
    first = next(t for t, _, n, _ in samples if n > 0)
    window = [s for s in samples if s[0] >= first + RAMP_S]
    (t0, c0, n0, _), (t1, c1, n1, rss) = window[0], window[-1]
    return {"rps": (n1 - n0) / (t1 - t0), "cpu_us": (c1 - c0) / max(n1 - n0, 1) * 1e6, "rss_mb": rss / 2**20,
            "requests": n1}


def stub_provider() -> tuple[subprocess.Popen, int]:
    port = portpicker.pick_unused_port()
    stub = subprocess.Popen([PY, "-m", "sessionstorm.provider", "--port", str(port), "--ttft-ms", "0", "--token-ms", "0",
                             "--jitter-ms", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
            return stub, port
        except httpx.HTTPError:
            time.sleep(0.2)
    stub.kill()
    raise RuntimeError("the stub provider did not start within 30 s")


def measure(arms: dict[str, tuple[str, dict[str, str]]], port: int, tmp: str, repeats: int = REPEATS,
            seconds: int = SECONDS) -> dict[str, list[dict[str, float]]]:
    """Each arm (name -> (user class, extra env)) once per repeat, the order turned around every
    other repeat (ABBA): drift in the machine's other load falls on every arm alike."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
    for i in range(repeats):
        for name in (list(arms) if i % 2 == 0 else list(arms)[::-1]):
            user, env = arms[name]
            samples = f"{tmp}/{name}{i}.json"
            p = locust(["-f", str(HERE / "locust_users_file.py"), "-u", "32", "-r", "32", "-t", f"{seconds}s",
                        "--host", f"http://127.0.0.1:{port}", "--target-profile", str(HERE / "stub-profile.toml"),
                        "--reports-dir", f"{tmp}/reports", "--only-summary", user],
                       env={"BENCH_SAMPLES": samples, **env})
            if not os.path.exists(samples):
                raise RuntimeError(f"{name}: no samples (exit {p.returncode}): {p.stderr[-2000:]}")
            result = json.load(open(f"{tmp}/reports/latest/results.json"))  # what the run verified
            results[name].append({**steady(samples), "ops": result.get("ops") or 0,
                                  "verified_ops": result.get("verified_ops") or 0, "verdict": result.get("verdict")})
    return results


def overhead() -> None:
    load0 = os.getloadavg()[0]
    stub, port = stub_provider()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            r = measure({"bare": ("BareUser", {}), "verified": ("VerifiedUser", {})}, port, tmp)
    finally:
        stub.terminate()
        stub.wait(10)
    med = {name: {k: statistics.median(x[k] for x in runs) for k in ("rps", "cpu_us", "rss_mb")} for name, runs in r.items()}
    ratios = [v["rps"] / b["rps"] for b, v in zip(r["bare"], r["verified"], strict=True)]
    cpu = [b["cpu_us"] / v["cpu_us"] for b, v in zip(r["bare"], r["verified"], strict=True)]
    print(f"1. bare FastHttpUser {med['bare']['rps']:.0f} req/s; SharedKeyUser with verification and history "
          f"{med['verified']['rps']:.0f} req/s; ratio {statistics.median(ratios):.2f} (median of {len(ratios)} "
          f"interleaved pairs, {SECONDS} s each, steady window; pairs {' '.join(f'{x:.2f}' for x in ratios)}; "
          "goal >= 0.9)")
    print(f"   Locust process CPU per request: bare {med['bare']['cpu_us']:.0f} µs, verified "
          f"{med['verified']['cpu_us']:.0f} µs (ratio {statistics.median(cpu):.2f}; pairs {' '.join(f'{x:.2f}' for x in cpu)}); "
          f"RSS at the end of load: bare {med['bare']['rss_mb']:.0f} MB, verified {med['verified']['rss_mb']:.0f} MB")
    # On a shared machine the neighbours' load moves every figure: say how busy it was.
    print(f"   BENCH_REPEATS={REPEATS} BENCH_SECONDS={SECONDS}; 1-min load average {load0:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores)")
    v = r["verified"]
    print(f"   verified runs: {sum(x['verified_ops'] for x in v)} of {sum(x['ops'] for x in v)} ops verified ok, "
          f"verdicts {sorted({str(x['verdict']) for x in v})}")


def side_by_side() -> None:
    """Both arms at once (see the docstring): CPU per request of each process, ratio per pair."""
    load0 = os.getloadavg()[0]
    stub, port = stub_provider()
    pairs: list[tuple[dict[str, float], dict[str, float]]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(REPEATS):
                procs = {}
                for name, user in (("bare", "BareUser"), ("verified", "VerifiedUser"))[::1 if i % 2 == 0 else -1]:
                    samples = f"{tmp}/{name}{i}.json"
                    procs[name] = (subprocess.Popen(
                        [PY, "-m", "locust", "--headless", "--loglevel", "ERROR", "-f", str(HERE / "locust_users_file.py"),
                         "-u", "32", "-r", "32", "-t", f"{SECONDS}s", "--host", f"http://127.0.0.1:{port}",
                         "--target-profile", str(HERE / "stub-profile.toml"), "--reports-dir", f"{tmp}/reports-{name}",
                         "--only-summary", user], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                        env={**os.environ, "BENCH_SAMPLES": samples}), samples)
                got = {}
                for name, (p, samples) in procs.items():
                    _, err = p.communicate(timeout=SECONDS + 600)
                    if not os.path.exists(samples):
                        raise RuntimeError(f"{name}: no samples (exit {p.returncode}): {err[-2000:]}")
                    got[name] = steady(samples)
                result = json.loads(Path(f"{tmp}/reports-verified/latest/results.json").read_text())
                got["verified"]["verdict"] = result.get("verdict")
                pairs.append((got["bare"], got["verified"]))
    finally:
        stub.terminate()
        stub.wait(10)
    cpu = [b["cpu_us"] / v["cpu_us"] for b, v in pairs]
    print(f"1b. side by side, CPU per request: bare {statistics.median(b['cpu_us'] for b, _ in pairs):.0f} µs, verified "
          f"{statistics.median(v['cpu_us'] for _, v in pairs):.0f} µs (ratio {statistics.median(cpu):.2f}, median of "
          f"{len(cpu)} pairs run at the same time, {SECONDS} s each; pairs {' '.join(f'{x:.2f}' for x in cpu)}); "
          f"req/s {statistics.median(b['rps'] for b, _ in pairs):.0f} / {statistics.median(v['rps'] for _, v in pairs):.0f} "
          f"(shared stub); verdicts {sorted({str(v['verdict']) for _, v in pairs})}; 1-min load average {load0:.1f} at the "
          f"start, {os.getloadavg()[0]:.1f} at the end")


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


PARTS = {"overhead": overhead, "sidebyside": side_by_side, "crosstalk": first_crosstalk, "memory": memory}

if __name__ == "__main__":
    for part in sys.argv[1:] or PARTS:  # e.g. `bench/locust_users.py overhead`
        PARTS[part]()
