"""Stub providers started as real processes on 127.0.0.1, each with its own command line
(the stack fixture starts one with the default flags only)."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import portpicker

from sessionstorm.stack.process import terminate

AUTH = ("admin", "sessionstorm")  # the stub's documented default --basic-auth
FAST = ["--ttft-ms", "0", "--jitter-ms", "0", "--token-ms", "0", "--session-open-ms", "0"]


@dataclass
class Running:
    url: str
    proc: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_provider(log_dir: Path, *args: str, timeout: float = 30) -> Running:
    port = portpicker.pick_unused_port()
    log = log_dir / f"provider-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sessionstorm.provider", "--port", str(port), *args],
                                stdout=out, stderr=subprocess.STDOUT)
    running = Running(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stub provider exited with {proc.returncode}: {running.log_text()}")
        try:
            if httpx.get(running.url + "/healthz", timeout=1).status_code == 200:
                return running
        except httpx.HTTPError:
            time.sleep(0.05)
    stop_provider(running)
    raise RuntimeError(f"stub provider not ready on {running.url} after {timeout} s: {running.log_text()}")


def stop_provider(running: Running) -> None:
    terminate(running.proc)
