"""What a fault acts on: a process (embedded backend) or a container (docker backend),
the stub provider's run-time fault switch, and the drop proxy.

Each control offers ``kill`` (SIGKILL), ``stop`` (graceful), ``start`` (again, on the same
port and data directory, returning once it answers), ``pause`` (SIGSTOP) and ``resume``.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx

from sessionstorm.tls import shared_ssl_context

READY_TIMEOUT_S = 60.0


class ProcessControl:
    """A `sessionstorm.stack.process.Service`: the whole process group is signalled."""

    def __init__(self, name: str, service: Any) -> None:
        self.name, self.service = name, service

    def _group(self, sig: int) -> None:
        proc = self.service.process
        if proc is None:
            raise RuntimeError(f"{self.name} is not running")
        os.killpg(proc.pid, sig)

    def kill(self) -> None:
        self.service.kill(wait=True)  # SIGKILL to the group, reaped

    def stop(self) -> None:
        self.service.stop_for_restart()

    def start(self) -> None:
        self.service.start_again()

    def pause(self) -> None:
        self._group(signal.SIGSTOP)

    def resume(self) -> None:
        self._group(signal.SIGCONT)


class ContainerControl:
    """A docker container (testcontainers' wrapper): docker kill / stop / start / pause / unpause."""

    def __init__(self, name: str, container: Any, probe: Any, stop_signal: str = "SIGTERM",
                 stop_command: list[str] | None = None) -> None:
        self.name, self.container, self.probe, self.stop_signal = name, container, probe, stop_signal
        self.stop_command = stop_command

    @property
    def _c(self) -> Any:
        return self.container.get_wrapped_container()

    def kill(self) -> None:
        self._c.kill()

    def stop(self) -> None:
        """Its stop command or signal, then SIGKILL after 10 s, as ``docker stop`` does. PostgreSQL
        gets a fast shutdown (SIGINT to the postmaster, from inside: PID 1 may be a runuser that
        forwards nothing; SIGTERM would wait for every client to leave)."""
        c = self._c
        if self.stop_command:
            c.exec_run(self.stop_command)
        else:
            c.kill(signal=self.stop_signal)
        try:
            c.wait(timeout=10)
        except Exception:  # still running after 10 s (requests' timeout): kill it
            c.kill()
            c.wait(timeout=10)

    def start(self) -> None:
        self._c.start()
        deadline, state = time.monotonic() + READY_TIMEOUT_S, "not asked yet"
        while time.monotonic() < deadline:
            try:
                ready, state = self.probe()
            except Exception as e:  # refused while it starts
                ready, state = False, f"{type(e).__name__}: {e}"
            if ready:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer again within {READY_TIMEOUT_S:g} s: {state}")

    def pause(self) -> None:
        self._c.pause()

    def resume(self) -> None:
        self._c.unpause()


class ProviderSwitch:
    """The stub provider's ``/admin/faults``: set some settings, later put the old ones back."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/admin/faults"
        self.saved: dict[str, Any] = {}

    def set(self, changes: dict[str, Any]) -> None:
        with httpx.Client(timeout=5.0, verify=shared_ssl_context()) as c:
            before = c.get(self.url)
            before.raise_for_status()
            self.saved = {k: before.json()[k] for k in changes}
            c.post(self.url, json=changes).raise_for_status()

    def restore(self) -> None:
        with httpx.Client(timeout=5.0, verify=shared_ssl_context()) as c:
            c.post(self.url, json=self.saved).raise_for_status()
