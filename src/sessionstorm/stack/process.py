"""A supervised child process with a named readiness check.

Supervision is mirakuru's (own session and process group, stop by signal to the group,
kill of stragglers found by its env marker); what this adds is the failure message:
what we waited for, the last state seen, the log's last lines.
"""
from __future__ import annotations

import atexit
import subprocess
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

import mirakuru.base
from mirakuru import Executor
from mirakuru.exceptions import ProcessExitedWithError, TimeoutExpired

from sessionstorm.errors import StartupError
from sessionstorm.stack import reaper

Probe = Callable[[], tuple[bool, str]]  # -> (ready, what was seen)

STOP_TIMEOUT = 10.0  # s a service gets to exit on its stop signal before it is killed


def start_together(jobs: list[tuple[str, Callable[[], str]]], progress: Callable[[str], None]) -> None:
    """Each job (it starts one service and returns where that listens) in its own thread, with a
    line "<label> ready on <where> (<s> s)" as each ends: the stack is ready after the slowest
    start, not after their sum. Returns once all have ended (also on Ctrl-C: nothing is left
    starting behind the caller's teardown) and raises the first job's error."""
    from concurrent.futures import ThreadPoolExecutor

    def timed(label: str, job: Callable[[], str]) -> None:
        t0 = time.monotonic()
        where = job()
        progress(f"{label} ready on {where} ({time.monotonic() - t0:.1f} s)")

    with ThreadPoolExecutor(len(jobs), thread_name_prefix="sessionstorm-start") as pool:
        futures = [pool.submit(timed, label, job) for label, job in jobs]
        errors = [f.exception() for f in futures]
    for e in errors:
        if e is not None:
            raise e


def terminate(proc: subprocess.Popen[Any], grace: float = STOP_TIMEOUT) -> None:
    """End a child we started (SIGTERM, then SIGKILL after ``grace``) and reap it. Idempotent."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# mirakuru's exit hook SIGKILLs every process whose marker (``<pid>:<uuid>``) merely contains the
# exiting pid's digits: every sessionstorm process that exited (a CLI run, a Locust process, a test)
# could kill the servers of any other stack (the likely cause of a regression worker's stub provider
# refusing connections in the middle of a fault test, seen once). A service nobody stopped still dies
# with its process (the executor's __del__), and with a killed process by the reaper.
atexit.unregister(mirakuru.base.cleanup_subprocesses)


class _ExitedEarly(Exception):
    def __init__(self, code: int) -> None:
        self.exit_code = code


class Service(Executor):
    def __init__(self, name: str, command: list[str], probe: Probe, waited_for: str, log_path: Path,
                 env: dict[str, str] | None = None, timeout: float = 30.0, user: str | None = None,
                 stop_signal: int | None = None) -> None:
        self.name, self.waited_for, self.log_path = name, waited_for, log_path
        self._probe = probe
        self.last_state = "not started"
        self._watched: int | None = None  # the process group the reaper knows of
        self._log = open(log_path, "ab")
        kwargs = {"stop_signal": stop_signal} if stop_signal else {}
        super().__init__(command, timeout=timeout, sleep=0.05, envvars=env, stdin=subprocess.DEVNULL,
                         stdout=self._log, stderr=subprocess.STDOUT,
                         popen_kwargs={"user": user} if user else None, **kwargs)

    def pre_start_check(self) -> bool:
        return False

    def after_start_check(self) -> bool:
        if self.process is not None and self.process.pid != self._watched:
            # its own session (mirakuru): the group's id is its pid; stopped if we die unannounced
            self._watched = self.process.pid
            reaper.watch(self._watched)
        # mirakuru only notices a non-zero exit; a server that exits 0 is as dead.
        if self.process is not None and self.process.poll() is not None:
            raise _ExitedEarly(self.process.returncode)
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
        except (TimeoutExpired, ProcessExitedWithError, _ExitedEarly) as e:
            if isinstance(e, TimeoutExpired):
                state = f"{self.last_state} (after {self._timeout:g} s)"
            else:
                state = f"process exited with code {e.exit_code}; last probe: {self.last_state}"
            self.shutdown()
            raise StartupError.with_logs(self.name, self.waited_for, state, self.log_tail()) from None
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- faults (sessionstorm.nemesis): the same command again, same port and data -------
    def stop_for_restart(self) -> None:
        """Stop gracefully (its stop signal, then SIGKILL after STOP_TIMEOUT); the log stays open."""
        start_timeout, self._timeout = self._timeout, STOP_TIMEOUT
        try:
            self.stop()
        except Exception:  # exited oddly on its stop signal: it is stopped all the same
            self.kill(wait=True)
        finally:
            self._timeout = start_timeout
            self._unwatch()

    def start_again(self) -> None:
        """Start the stopped or killed process again and wait until ready (StartupError if not)."""
        if self.process is not None:
            self.kill(wait=True)  # reap a killed process, so start() makes a new one
        with open(self.log_path, "ab") as log:
            log.write(b"\n-- sessionstorm nemesis: starting again --\n")
        try:
            self.start()
        except (TimeoutExpired, ProcessExitedWithError, _ExitedEarly) as e:
            state = self.last_state if isinstance(e, TimeoutExpired) else f"exited: {e}"
            raise StartupError.with_logs(self.name, self.waited_for, state, self.log_tail()) from None

    def shutdown(self) -> None:
        """Stop the process group; kill it if it ignores the stop signal. Idempotent."""
        self._timeout = STOP_TIMEOUT  # mirakuru's stop() waits the start timeout otherwise
        try:
            if self.process is not None:  # also when it died: stop() reaps it and sweeps its kids
                self.stop()
        except Exception:  # refused a clean stop or exited oddly: make sure
            self.kill(wait=True)
        finally:
            self._unwatch()
            self._log.close()

    def _unwatch(self) -> None:
        if self._watched is not None:
            reaper.unwatch(self._watched)
            self._watched = None
