"""A real HTTP server (tests/driver/app.py under uvicorn) on a loopback port."""
import subprocess
import sys
import time
from pathlib import Path

import httpx
import portpicker
import pytest

from sessionstorm.stack.process import terminate

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
    terminate(proc)
