"""Embedded stack start and stop times (median of N), and optionally the two pytest-xdist
designs side by side: (a) one stack per worker (the plugin's fixture) against (b) one
stack shared by all workers through a file lock (a detached `sessionstorm up`, reference
counted by the workers).

    .venv/bin/python bench/stack.py [--runs 5] [--xdist] [--workers 2] [--tests 12]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from sessionstorm.stack import Stack

SESSIONSTORM = str(Path(sys.executable).with_name("sessionstorm"))

# Every test does the same real work in both designs: one SQL query, one Redis round trip.
SUITE = textwrap.dedent('''
    import asyncio, asyncpg, pytest, redis

    @pytest.mark.parametrize("n", range({tests}))
    def test_work(stack_urls, n):
        async def q():
            conn = await asyncpg.connect(stack_urls["postgres_dsn"])
            try:
                return await conn.fetchval("select $1::int + 1", n)
            finally:
                await conn.close()
        assert asyncio.run(q()) == n + 1
        r = redis.Redis.from_url(stack_urls["redis_url"])
        assert r.incr(f"n{{n}}") >= 1
        r.close()
''')

PER_WORKER = textwrap.dedent('''
    import pytest

    @pytest.fixture(scope="session")
    def stack_urls(sessionstorm_stack):
        return sessionstorm_stack.info()
''')

SHARED = textwrap.dedent('''
    import json, subprocess, time
    import psutil, pytest
    from filelock import FileLock

    @pytest.fixture(scope="session")
    def stack_urls(tmp_path_factory):
        root = tmp_path_factory.getbasetemp().parent
        info, users = root / "stack.json", root / "stack.users"
        with FileLock(str(root / "stack.lock")):
            if not info.exists():  # first worker in: start a stack that outlives it
                up = subprocess.Popen([{sessionstorm!r}, "up", "--no-target"], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, start_new_session=True)
                urls = dict(up.stdout.readline().strip().split("=", 1) for _ in range(4))
                info.write_text(json.dumps({{**urls, "pid": up.pid}}))
            users.write_text(str(int(users.read_text() or 0) + 1 if users.exists() else 1))
            urls = json.loads(info.read_text())
        yield urls
        with FileLock(str(root / "stack.lock")):
            left = int(users.read_text()) - 1
            users.write_text(str(left))
            if left == 0:  # last worker out: stop it and wait until it is gone
                up = psutil.Process(urls["pid"])
                up.terminate()  # SIGTERM: xdist workers pass SIGINT on as ignored
                deadline = time.monotonic() + 30
                # another worker may be its parent: then it ends as that worker's zombie
                while up.is_running() and up.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
                    time.sleep(0.02)
                info.unlink()
''')


def start_stop(runs: int) -> tuple[list[float], list[float]]:
    starts, stops = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        stack = Stack().start()
        t1 = time.perf_counter()
        stack.stop()
        starts.append(t1 - t0)
        stops.append(time.perf_counter() - t1)
    return starts, stops


def pytest_wall(conftest: str, workers: int, tests: int) -> float:
    with tempfile.TemporaryDirectory(prefix="sessionstorm-bench-") as d:
        Path(d, "conftest.py").write_text(conftest)
        Path(d, "test_work.py").write_text(SUITE.format(tests=tests))
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                            "-n", str(workers), d], capture_output=True, text=True, cwd=d, timeout=600)
        wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"bench: pytest failed:\n{r.stdout[-3000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--xdist", action="store_true", help="also compare the two xdist designs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tests", type=int, default=12)
    args = ap.parse_args()

    starts, stops = start_stop(args.runs)
    print(f"embedded stack start: median {statistics.median(starts):.2f} s "
          f"(min {min(starts):.2f}, max {max(starts):.2f}, n={args.runs})")
    print(f"embedded stack stop:  median {statistics.median(stops):.2f} s "
          f"(min {min(stops):.2f}, max {max(stops):.2f}, n={args.runs})")
    if args.xdist:
        shared = SHARED.format(sessionstorm=SESSIONSTORM)
        a, b = [], []
        for _ in range(args.runs):  # interleaved, so machine load hits both alike
            a.append(pytest_wall(PER_WORKER, args.workers, args.tests))
            b.append(pytest_wall(shared, args.workers, args.tests))
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"pytest -n {args.workers}, {args.tests} tests: (a) stack per worker median {ma:.2f} s; "
              f"(b) shared via file lock median {mb:.2f} s; a/b = {ma / mb:.2f}")


if __name__ == "__main__":
    main()
