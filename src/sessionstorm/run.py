"""One run's life, the same for every entry point.

`sessionstorm run`, the Locust plugin, the regression suite and the benchmarks all go
through `Run`; nothing else starts a stack for a run or writes ``run.json``::

    run = Run("shared_key", driver="run", profile=None, bugs="no-request-id")  # validates, starts nothing
    run.start()                      # stack (if the target is launched), target, run folder, run.json
    ... drive: history files into run.dir ...
    results = run.finish()           # stop, keep logs/, check, report.html; run.exit_code

Input is validated in the constructor, before anything starts: a bad value is one
`ConfigError` line and no stack, no run folder. The target is resolved the same way
everywhere: ``host`` (``--host``) over the profile's ``target.base_url`` over the target
the stack launches from the profile's ``target.command``.

``run.json`` (schema_version 1) holds: scenario, driver, command (argv), started,
finished, duration_s, interrupted, lost_workers, settings, thresholds (what the verdict
judges), target {url, launched, bugs, profile (secrets redacted)}, stack {backend,
provider_url, postgres_dsn (password redacted), redis_url} or null, versions, and after
the run ops and outcomes. docs/architecture.md describes it field by field.
"""
from __future__ import annotations

import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sessionstorm.errors import ConfigError
from sessionstorm.rundir import DEFAULT_ROOT, RunDir
from sessionstorm.workload.launch import RunningTarget, attach, launch
from sessionstorm.workload.profile import Profile, load_profile, with_base_url

SCHEMA_VERSION = 1
RATE_THRESHOLDS = ("error_rate", "info_rate", "session_reuse_ratio")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("sessionstorm", "locust", "httpx"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def redact_dsn(dsn: str | None) -> str | None:
    """A DSN or URL without its password (run.json never holds one)."""
    if not dsn:
        return dsn
    u = urlsplit(dsn)
    if not u.password:
        return dsn
    host = u.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{u.username}:***@{host}" + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def check_thresholds(thresholds: Mapping[str, float | None]) -> dict[str, float]:
    """Command-line thresholds as numbers; a rate outside 0..1 or a negative time is one line."""
    from sessionstorm.checker.stats import THRESHOLD_KEYS

    out: dict[str, float] = {}
    for name, value in thresholds.items():
        if value is None:
            continue
        if name not in THRESHOLD_KEYS:
            raise ConfigError(f"thresholds.{name}", value, f"one of {', '.join(THRESHOLD_KEYS)}", "fix the threshold name")
        limit = 1.0 if name in RATE_THRESHOLDS else float("inf")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= limit:
            what = "a rate between 0 and 1 (0.05 is 5 %)" if limit == 1.0 else "a number of ms >= 0"
            raise ConfigError(name.replace("_", "-"), value, what, f"pass {what}")
        out[name] = float(value)
    return out


class Run:
    """A run: validated input, its stack and target, its folder, and its verdict."""

    def __init__(self, scenario: str, *, driver: str, profile: str | os.PathLike[str] | Profile | None = None,
                 sets: Mapping[str, str] | None = None, host: str | None = None, bugs: str = "",
                 backend: str | None = None, reports_dir: str | os.PathLike[str] | None = None,
                 thresholds: Mapping[str, float | None] | None = None, settings: Mapping[str, Any] | None = None,
                 target: RunningTarget | None = None, command: list[str] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        from sessionstorm.profiles import REFERENCE

        self.scenario, self.driver = scenario, driver
        self.progress = progress or (lambda msg: None)
        self.own_profile = profile is not None or target is not None
        if isinstance(profile, Profile):
            self.profile = profile
        elif target is not None:
            self.profile = target.profile
        else:  # --host replaces the base_url: the profile's own need not answer
            self.profile = load_profile(profile or REFERENCE, sets, check=host is None)
        if bugs and profile is not None:
            raise ConfigError("bugs", bugs, "no bug flags with your own target profile",
                              "drop --bugs (they belong to the reference target)")
        if bugs:
            from sessionstorm.target.bugs import parse_bugs
            parse_bugs(bugs)  # a typo is one line now, not a failed start later
        if host:
            from sessionstorm.workload.profile import check_reachable
            if not host.startswith(("http://", "https://")):
                raise ConfigError("host", host, "an http:// or https:// URL", "pass --host http://127.0.0.1:8000")
            check_reachable(host, self.profile.target.ready_path, setting="host",
                            fix="start the service or fix --host")
            self.profile = with_base_url(self.profile, host.rstrip("/"))
        if target is not None and not bugs:  # a target launched elsewhere (regression) says its flags
            bugs = str(target.values.get("bugs") or "")
        self.bugs, self.backend = bugs, backend
        self.reports_dir = Path(reports_dir) if reports_dir is not None else DEFAULT_ROOT
        from sessionstorm.checker.stats import DEFAULT_THRESHOLDS
        profile_limits = {k: v for k, v in vars(self.profile.thresholds).items() if v is not None}
        self.thresholds = {**DEFAULT_THRESHOLDS, **profile_limits, **check_thresholds(thresholds or {})}
        self.settings = dict(settings or {})
        self.command = list(command if command is not None else sys.argv)
        self.target = target
        self.launched = False
        self.interrupted = False
        self.stack: Any = None
        self.dir: RunDir | None = None
        self.started: float | None = None
        self.results: dict[str, Any] | None = None

    # -- start ------------------------------------------------------------------------
    def start(self) -> Run:
        """Start (or reach) the target, open the run folder, write run.json."""
        try:
            if self.target is None:
                if self.profile.target.base_url:
                    self.target = attach(self.profile)
                else:
                    from sessionstorm.stack import Stack
                    self.stack = Stack(self.backend, progress=self.progress).start()
                    self.target = launch(self.profile, self.stack,
                                         vars=None if self.own_profile else {"bugs": self.bugs})
                    self.launched = True
            self.dir = RunDir.create(self.scenario, root=self.reports_dir)
            self.started = time.time()
            self.write_meta()
        except BaseException:
            self._stop_stack()
            raise
        return self

    @property
    def url(self) -> str:
        assert self.target is not None, "start() first"
        return self.target.url

    def keys(self, users: list[str]) -> dict[str, str]:
        from sessionstorm.workload.keys import make_keys
        assert self.target is not None, "start() first"
        return make_keys(self.target, users)

    def meta(self, **more: Any) -> dict[str, Any]:
        """run.json's content (one schema for every driver)."""
        t, stack = self.target, self.stack
        info = stack.info() if stack is not None and stack.backend is not None else {}
        return {
            "schema_version": SCHEMA_VERSION, "scenario": self.scenario, "driver": self.driver,
            "command": self.command, "started": self.started, "interrupted": False, "lost_workers": [],
            "settings": self.settings, "thresholds": self.thresholds,
            "target": {"url": t.url if t else None, "launched": self.launched, "bugs": self.bugs or None,
                       "profile": self.profile.redacted()},
            "stack": None if stack is None else {
                "backend": stack.backend_name, "provider_url": info.get("provider_url"),
                "postgres_dsn": redact_dsn(info.get("postgres_dsn")), "redis_url": redact_dsn(info.get("redis_url"))},
            "versions": _versions(), **more}

    def write_meta(self, **more: Any) -> None:
        assert self.dir is not None
        self.dir.write_json("run.json", self.meta(**more))

    # -- finish -----------------------------------------------------------------------
    def finish(self, *, interrupted: bool | None = None, lost_workers: list[str] | tuple[str, ...] = (),
               **more: Any) -> dict[str, Any]:
        """Stop what this run started (logs kept), then check and report. Safe on a half-started run."""
        from sessionstorm.checker import check_run
        from sessionstorm.report import render_report

        if self.dir is None:
            self._stop_stack()
            raise RuntimeError("the run never started")
        finished = time.time()
        self.interrupted = self.interrupted if interrupted is None else interrupted
        self.write_meta(finished=finished, duration_s=round(finished - (self.started or finished), 3),
                        interrupted=self.interrupted, lost_workers=list(lost_workers), **more)
        self._stop_stack()
        results = check_run(self.dir)
        results["report"] = str(render_report(self.dir, results))
        self.results = results
        return results

    @property
    def exit_code(self) -> int:
        from sessionstorm.checker import exit_code
        assert self.results is not None, "finish() first"
        return exit_code(self.results)

    def summary(self) -> list[str]:
        from sessionstorm.checker.summary import summary_lines
        assert self.results is not None and self.dir is not None, "finish() first"
        return [*summary_lines(self.results, self.dir.path), f"report: {self.results['report']}"]

    @contextmanager
    def interruptible(self) -> Iterator[threading.Event]:
        """While driving: the first Ctrl-C or SIGTERM asks the driver to stop (in-flight
        operations finish or time out and are recorded); a second aborts at once."""
        stop = threading.Event()
        if threading.current_thread() is not threading.main_thread():
            yield stop
            return

        def on_signal(signum: int, frame: Any) -> None:
            if stop.is_set():
                raise KeyboardInterrupt
            stop.set()
            self.interrupted = True
            self.progress("stopping: letting in-flight operations finish (Ctrl-C again to abort)")

        saved = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield stop
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        finally:
            for s, h in saved.items():
                signal.signal(s, h)

    def _stop_stack(self) -> None:
        stack, self.stack = self.stack, None
        if stack is None:
            return
        try:
            if self.dir is not None:
                stack.save_logs(self.dir.path / "logs")
        finally:
            stack.stop()

