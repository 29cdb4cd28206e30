"""The Locust users' hot path keeps every record: an interrupted headless run (SIGINT) has
every op Locust counted in its history, whatever the history writer still had queued; the
reply headers read from geventhttpclient's storage are what ``lower_headers`` gives.

Both start real processes (importing Locust here would monkey-patch this test process)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import portpicker

from sessionstorm.history import OUTCOMES, history_files, iter_records

ROOT = Path(__file__).resolve().parents[2]
PROFILE = """
[target]
name = "stub"
base_url = "http://127.0.0.1:1"
ready_path = "/healthz"
flavors = ["gateway"]
llm = "stub"
request_id_header = "X-Request-ID"

[auth]
header = "Authorization"
format = "Bearer {key}"

[models]
names = ["llama-70b"]

[keys]
source = "literal"
literal = ["sk-test-a", "sk-test-b"]
"""


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def op_lines(reports: Path) -> int:
    return sum(f.read_bytes().count(b'"type":"op"') for f in reports.glob("*/2*/history/*.jsonl"))


def test_sigint_mid_run_keeps_every_completed_op(tmp_path):
    port = portpicker.pick_unused_port()
    stub = subprocess.Popen([sys.executable, "-m", "sessionstorm.provider", "--port", str(port), "--ttft-ms", "1",
                             "--token-ms", "0", "--jitter-ms", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = None
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(up, 60, "the stub provider")
        (tmp_path / "stub.toml").write_text(PROFILE)
        reports = tmp_path / "reports"
        out, err = open(tmp_path / "out.txt", "wb"), open(tmp_path / "err.txt", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "shared_key.py"),
                                 "--headless", "-u", "8", "-r", "8", "-t", "90s", "--host", url, "--only-summary",
                                 "--target-profile", str(tmp_path / "stub.toml"), "--reports-dir", str(reports)],
                                stdout=out, stderr=err, cwd=tmp_path)
        # Past the first flushes, mid-stream: the writer holds queued records when the signal comes.
        wait_until(lambda: op_lines(reports) >= 300 or proc.poll() is not None, 120, "300 ops in the history")
        assert proc.poll() is None, (tmp_path / "err.txt").read_text()[-2000:]
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        for p in (proc, stub):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(30)
    text = (tmp_path / "err.txt").read_text() + (tmp_path / "out.txt").read_text()
    assert proc.returncode in (0, 1, 3), text[-2000:]
    run = reports / "latest"
    assert json.loads((run / "run.json").read_text())["interrupted"] is True
    corrupt = []
    ops = [r for r in iter_records(history_files(run), on_corrupt=lambda *a: corrupt.append(a)) if r["type"] == "op"]
    assert not corrupt, corrupt[:3]
    # Locust's last stats row "Aggregated  <requests>  <fails>(<%>) ..." (not the percentiles table's)
    counted = [int(n) for n in re.findall(r"^\s*Aggregated\s+(\d+)\s+\d+\(", text, re.MULTILINE)]
    assert counted and counted[-1] >= 300, text[-2000:]
    assert len(ops) >= counted[-1], f"Locust counted {counted[-1]} requests, the history has {len(ops)} ops"
    assert len({o["id"] for o in ops}) == len(ops) and all(o["outcome"] in OUTCOMES for o in ops)
    assert sum(o["outcome"] == "ok" for o in ops) >= 300


def test_reply_headers_are_what_lower_headers_gives():
    code = textwrap.dedent("""
        from geventhttpclient.header import Headers
        from sessionstorm.locust.users import _headers
        from sessionstorm.workload.op import lower_headers

        class Resp:
            headers = Headers([("Content-Type", "application/json"), ("X-Request-ID", "a"), ("x-request-id", "b"),
                               ("Set-Cookie", "1"), ("SET-COOKIE", "2"), ("X-Empty", "")])

        class Other:
            headers = {"X-Request-ID": "c"}

        assert _headers(Resp) == lower_headers(Resp.headers.items()), _headers(Resp)
        assert _headers(Resp)["x-request-id"] == "b" and _headers(Resp)["set-cookie"] == "2"
        assert _headers(Other) == {"x-request-id": "c"}
        print("same")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "same", p.stderr[-2000:]
