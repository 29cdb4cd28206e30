"""The pytest plugin's fixtures in a real pytest-xdist run (a subprocess pytest)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from stack_helpers import ENVSERVER, alive

SUITE = textwrap.dedent('''
    import json, os
    import httpx, psutil, pytest, redis

    @pytest.mark.parametrize("n", range(6))
    def test_uses_stack(sessionstorm_stack, sessionstorm_start_target, n):
        r = redis.Redis.from_url(sessionstorm_stack.redis.url)
        r.incr("tests")  # shared only within this worker's stack
        target = sessionstorm_start_target(["{{python}}", {envserver!r}], name=f"t{{n}}")
        assert httpx.get(target.url, timeout=5).status_code == 200
        pids = [[p, psutil.Process(p).create_time()] for p in sessionstorm_stack.pids()]
        with open({record!r}, "a") as f:
            f.write(json.dumps({{"worker": os.environ.get("PYTEST_XDIST_WORKER"), "n": n,
                                "pg": sessionstorm_stack.postgres.port, "dir": str(sessionstorm_stack.dir),
                                "tests_in_this_stack": int(r.get("tests")), "pids": pids}}) + "\\n")
''')


def test_fixtures_under_xdist_one_stack_per_worker(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    (tmp_path / "test_suite.py").write_text(SUITE.format(envserver=ENVSERVER, record=str(record)))
    r = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:randomly", "-q", "-p", "no:cacheprovider",
                        str(tmp_path / "test_suite.py")], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(row["n"] for row in rows) == list(range(6))

    by_worker: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for row in rows:
        by_worker.setdefault(row["worker"], []).append(row)
    assert set(by_worker) == {"gw0", "gw1"}
    for worker_rows in by_worker.values():  # one stack per worker, kept for the session
        assert len({row["pg"] for row in worker_rows}) == 1
        assert sorted(row["tests_in_this_stack"] for row in worker_rows) == list(range(1, len(worker_rows) + 1))
    assert by_worker["gw0"][0]["pg"] != by_worker["gw1"][0]["pg"]

    assert alive([pid for row in rows for pid in row["pids"]]) == []
    assert not any(Path(row["dir"]).exists() for row in rows)
