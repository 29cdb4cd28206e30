"""A supervised child process with a named readiness check.

Supervision is mirakuru's (process group start/stop, kill of stragglers); what it adds
is the failure message: what we waited for, the last state seen, the log's last lines.
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from mirakuru import Executor
from mirakuru.exceptions import ProcessExitedWithError, TimeoutExpired

from sessionstorm.errors import StartupError

Probe = Callable[[], tuple[bool, str]]  # -> (ready, what was seen)


class Service(Executor):
    def __init__(self, name: str, command: list[str], probe: Probe, waited_for: str, log_path: Path,
                 env: dict[str, str] | None = None, timeout: float = 30.0, user: str | None = None,
                 stop_signal: int | None = None, hint: str = "") -> None:
        self.name, self.waited_for, self.hint, self.log_path = name, waited_for, hint, log_path
        self._probe = probe
        self.last_state = "not started"
        self._log = open(log_path, "ab")
        kwargs = {"stop_signal": stop_signal} if stop_signal else {}
        super().__init__(command, timeout=timeout, sleep=0.05, envvars=env, stdin=subprocess.DEVNULL,
                         stdout=self._log, stderr=subprocess.STDOUT,
                         popen_kwargs={"user": user} if user else None, **kwargs)

    def pre_start_check(self) -> bool:
        return False

    def after_start_check(self) -> bool:
        try:
            ready, self.last_state = self._probe()
        except Exception as e:  # a probe that cannot even ask is "not ready yet"
            ready, self.last_state = False, f"{type(e).__name__}: {e}"
        return ready

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def launch(self) -> Service:
        """Start and wait until ready, or raise StartupError with the evidence."""
        try:
            self.start()
        except (TimeoutExpired, ProcessExitedWithError) as e:
            exited = isinstance(e, ProcessExitedWithError)
            state = f"process exited ({e.exit_code})" if exited else self.last_state
            self.shutdown()
            tail = self.log_tail()
            raise StartupError(self.name, self.waited_for, state, self.hint + (f"; log: {tail[-300:]!r}" if tail else ""),
                               logs=tail) from None
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def shutdown(self) -> None:
        try:
            if self.running():
                self.stop()
        except Exception:  # already gone, or refused a clean stop: make sure
            self.kill(wait=True)
        finally:
            self._log.close()
