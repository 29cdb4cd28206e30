"""Real servers for the split-endpoint tests: the mini apps of serve.py (a new build and an
old one without the observe route) and the reference target, on ::1 and/or 127.0.0.1 at one
port, or sharing one port through SO_REUSEPORT. Every process is started here and stopped
by its pid; every wait is bounded."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import portpicker
import pytest

SERVE = str(Path(__file__).with_name("serve.py"))
NAME = "twin.test"  # never resolved: every test pins it with a resolve override
READY_S = 30.0


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Servers:
    """Processes one test starts; `stop` ends them by pid."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, []

    def start(self, host: str, port: int, cmd: list[str], env: dict[str, str] | None = None,
              ready_path: str = "/healthz", tls_verify: bool | None = None) -> subprocess.Popen:
        log = self.tmp / f"server-{len(self.procs)}.log"
        with open(log, "wb") as out:
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.procs.append(p)
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"{cmd} exited {p.returncode}: {log.read_text()[-2000:]}")
            try:  # fresh connection each time; with SO_REUSEPORT the answer must be this process's own
                url = url_of(host, port).replace("http:", "https:") if tls_verify is not None else url_of(host, port)
                r = httpx.get(url + ready_path, timeout=1, verify=bool(tls_verify))
                mine = (r.headers.get("x-test-pid") == str(p.pid)
                        or r.headers.get("x-sessionstorm-server", "").endswith(f"-{p.pid}"))
                if r.status_code == 200 and mine:
                    return p
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{cmd} not ready on {host}:{port} in {READY_S} s: {log.read_text()[-2000:]}")

    def mini(self, host: str, port: int, build: str, reuse_port: bool = False) -> subprocess.Popen:
        return self.start(host, port, [sys.executable, SERVE, host, str(port), build]
                          + (["--reuse-port"] if reuse_port else []))

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            self.stop(p)


@pytest.fixture
def servers(tmp_path):
    s = Servers(tmp_path)
    yield s
    s.stop_all()


@pytest.fixture
def port() -> int:
    return portpicker.pick_unused_port()


@pytest.fixture(scope="module")
def real(sessionstorm_stack):
    """The reference target (clean) on 127.0.0.1, started by the stack with its own database."""
    t = sessionstorm_stack.start_target(["{python}", "-m", "sessionstorm.target", "serve"],
                                        env={"SESSIONSTORM_TARGET_BUGS": ""}, name="split-real")
    yield t
    t.stop()
