"""Secrets a target echoes back never reach the record, and metrics can be scraped mid-run.

Real processes: a stdlib server that answers 401 quoting the request's Authorization header
(as some gateways do), driven by `sessionstorm run` and by headless Locust; and a real
`sessionstorm run steady --metrics-port` scraped over HTTP while it runs.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import portpicker
import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-echo-4f1d9c77a2"

ECHO_SERVER = r'''
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self._send(200, {"ok": True}) if self.path == "/healthz" else self._echo()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._echo()
    def _echo(self):
        self._send(401, {"error": "invalid api key " + str(self.headers.get("authorization"))})
    def _send(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''

PROFILE = """
[target]
base_url = "http://127.0.0.1:{port}"
flavors = ["gateway"]
timeout_s = 2.0
[keys]
source = "literal"
literal = ["{secret}"]
"""


@pytest.fixture
def echo(tmp_path: Path):
    port = portpicker.pick_unused_port()
    server = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)])
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline and server.poll() is None, "the echo server did not start"
            time.sleep(0.1)
    profile = tmp_path / "echo.toml"
    profile.write_text(PROFILE.format(port=port, secret=SECRET))
    yield profile
    server.terminate()
    server.wait(timeout=10)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSTORM_")}


def _assert_nowhere(reports: Path, *outputs: str) -> None:
    files = [p for p in reports.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".jsonl") for p in files) and any(p.name == "report.html" for p in files)
    leaked = [str(p) for p in files if SECRET in p.read_text(errors="replace")]
    assert not leaked, f"the key reached {leaked}"
    assert not any(SECRET in out for out in outputs), "the key reached the console"
    history = "".join(p.read_text() for p in files if p.name.endswith(".jsonl"))
    assert re.search(r"invalid api key Bearer <redacted:[0-9a-f]{8}>", history), "the echo was not recorded at all"


def test_sessionstorm_run_never_records_an_echoed_key(echo, tmp_path):
    reports = tmp_path / "reports"
    p = subprocess.run([sys.executable, "-m", "sessionstorm.cli", "run", "shared_key", "--target-profile", str(echo),
                        "--reports-dir", str(reports)], capture_output=True, text=True, timeout=180, env=_env())
    assert p.returncode == 1 and "UNAVAILABLE" in p.stdout, p.stdout + p.stderr
    _assert_nowhere(reports, p.stdout, p.stderr)


def test_locust_never_records_an_echoed_key(echo, tmp_path):
    reports = tmp_path / "reports"
    p = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "shared_key.py"), "--headless",
                        "-u", "2", "-r", "2", "-t", "3s", "--target-profile", str(echo), "--reports-dir", str(reports)],
                       capture_output=True, text=True, timeout=180, env=_env(), cwd=tmp_path)
    assert p.returncode == 1, p.stderr[-2000:]
    _assert_nowhere(reports, p.stdout, p.stderr)


def test_metrics_are_scraped_during_a_real_run(tmp_path):
    port = portpicker.pick_unused_port()
    run = subprocess.Popen([sys.executable, "-m", "sessionstorm.cli", "run", "steady", "--seconds", "8",
                            "--metrics-port", str(port), "--reports-dir", str(tmp_path / "reports")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    scraped = ""
    try:
        deadline = time.monotonic() + 120
        while run.poll() is None and time.monotonic() < deadline:
            try:
                scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                scraped = ""
            if re.search(r'sessionstorm_verified_ops_total\{kind="chat"\} [1-9]', scraped):
                break
            time.sleep(0.2)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert re.search(r'sessionstorm_ops_total\{kind="chat",outcome="ok"\} [1-9]', scraped), scraped[-2000:]
    assert "sessionstorm_op_latency_seconds_bucket" in scraped
    assert run.returncode == 0, out + err
    with pytest.raises(httpx.HTTPError):  # closed with the run
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
