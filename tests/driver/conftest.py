"""A real HTTP server (tests/driver/app.py under uvicorn) on a loopback port."""
import subprocess
import sys
import time
from pathlib import Path

import httpx
import portpicker
import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def server_url():
    port = portpicker.pick_unused_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"test server did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_profile(tmp_path, base_url, extra=""):
    p = tmp_path / "profile.toml"
    p.write_text(f"""
[target]
base_url = "{base_url}"
flavors = ["gateway", "observe"]
timeout_s = 5.0
[keys]
literal = ["sk-good"]
{extra}
""")
    return p
