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
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sessionstorm import guard
from sessionstorm.errors import ConfigError
from sessionstorm.rundir import DEFAULT_ROOT, RunDir
from sessionstorm.profile import Profile, load_profile, with_base_url
from sessionstorm.stack.launch import RunningTarget, attach, launch, provider_args

SCHEMA_VERSION = 1
# Fresh connections per address before load: two listeners sharing a port (SO_REUSEPORT) are
# each met with odds 1 - 2**(1 - n): 16 leave a split unseen once in 32,768 runs.
PREFLIGHT_CONNECTIONS = 16
RATE_THRESHOLDS = ("error_rate", "info_rate", "session_reuse_ratio")


@dataclass
class Wire:
    """How every client of a run meets the wire, the same in every driver and process:
    the addresses its connections spread over, the rails of a remote target (rate and
    request caps, abort on an error spike), the secrets never recorded, the metrics."""

    spreader: Any = None                 # endpoints.Spreader
    rails: Any = None                    # guard.RemoteRails, or None: no caps
    redact: Any = None                   # redact.Redactor, or None: nothing to hide
    metrics: Any = None                  # metrics.Metrics, or None

    @classmethod
    def build(cls, profile: Profile, url: str, *, allow_remote: bool, rails: Mapping[str, Any] | None,
              secrets: list[str], metrics_port: int | None = None) -> Wire:
        from sessionstorm import endpoints
        from sessionstorm.guard import RemoteRails
        from sessionstorm.redact import Redactor

        t = profile.target
        spreader = endpoints.Spreader.for_url(url, t.resolve or None, t.addresses, allow_remote=allow_remote)
        metrics = None
        if metrics_port is not None:
            from sessionstorm.metrics import Metrics
            metrics = Metrics(metrics_port)
        return cls(spreader, RemoteRails(**rails) if rails else None, Redactor(secrets) or None, metrics)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("sessionstorm", "locust", "httpx"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def check_thresholds(thresholds: Mapping[str, float | None]) -> dict[str, float]:
    """Command-line thresholds as numbers; a rate outside 0..1 or a negative time is one line."""
    from sessionstorm.checker.stats import THRESHOLD_KEYS

    out: dict[str, float] = {}
    for name, value in thresholds.items():
        if value is None:
            continue
        if name not in THRESHOLD_KEYS and name != "recovery_s":  # recovery_s: the grace after a fault (checker.faults)
            raise ConfigError(f"thresholds.{name}", value, f"one of {', '.join(THRESHOLD_KEYS)}, recovery_s",
                              "fix the threshold name")
        limit = 1.0 if name in RATE_THRESHOLDS else float("inf")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= limit:
            what = "a rate between 0 and 1 (0.05 is 5 %)" if limit == 1.0 else "a number of ms >= 0"
            example = "0.05" if limit == 1.0 else "500"
            raise ConfigError(name.replace("_", "-"), value, what, f"pass e.g. {example}")
        out[name] = float(value)
    return out


def writable_dir(path: Path, setting: str) -> Path:
    """``path`` as a folder this process can write into (made if missing), or one line saying why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        ok = os.access(path, os.W_OK | os.X_OK)
    except OSError as e:
        raise ConfigError(setting, path, "a folder that can be created and written", f"pick another ({e.strerror})") from None
    if not ok:
        raise ConfigError(setting, path, "a writable folder", "pick a folder you can write to")
    return path


def check_and_report(run_dir: RunDir | str | os.PathLike[str]) -> dict[str, Any]:
    """Check a finished run (results.json), then render report.html, over one `Columns`: the history is
    read once and one database serves both (results["report"]: the page's path)."""
    from sessionstorm.checker import check_run
    from sessionstorm.columns import Columns
    from sessionstorm.report import render_report

    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    with Columns(run.path) as cols:  # a folder that is no run: check_run says so, inside
        results = check_run(run, cols=cols)
        results["report"] = str(render_report(run, results, cols=cols))
    return results


def _no_password(dsn: str | None) -> str | None:
    from sessionstorm.redact import redact_dsn
    return redact_dsn(dsn) if dsn else dsn


class Run:
    """A run: validated input, its stack and target, its folder, and its verdict."""

    def __init__(self, scenario: str, *, driver: str, profile: str | os.PathLike[str] | Profile | None = None,
                 sets: Mapping[str, str] | None = None, host: str | None = None, bugs: str = "",
                 backend: str | None = None, reports_dir: str | os.PathLike[str] | None = None,
                 thresholds: Mapping[str, float | None] | None = None, settings: Mapping[str, Any] | None = None,
                 target: RunningTarget | None = None, command: list[str] | None = None,
                 progress: Callable[[str], None] | None = None, allow_remote: bool | None = None,
                 max_rps: float | None = None, max_requests: int | None = None,
                 abort_error_rate: float | None = None, metrics_port: int | None = None,
                 faults: Sequence[str] | None = None, fault_stack: Any = None) -> None:
        from sessionstorm.profiles import REFERENCE

        self.scenario, self.driver = scenario, driver
        self.progress = progress or (lambda msg: None)
        self.own_profile = profile is not None or target is not None
        if isinstance(profile, Profile):
            self.profile = profile
        elif target is not None:
            self.profile = target.profile
        else:  # reachability is checked below, after the guard: no request before it
            self.profile = load_profile(profile or REFERENCE, sets, check=False)
        if bugs and profile is not None:
            raise ConfigError("bugs", bugs, "no bug flags with your own target profile",
                              "drop --bugs (they belong to the reference target)")
        if bugs:
            from sessionstorm.target.bugs import parse_bugs
            parse_bugs(bugs)  # a typo is one line now, not a failed start later
        self.allow_remote = guard.remote_allowed(allow_remote, config=self.profile.target.allow_remote)
        self.rails = self._rails(max_rps, max_requests, abort_error_rate)
        self.metrics_port = metrics_port
        if metrics_port is not None and not 0 <= metrics_port <= 65535:
            raise ConfigError("metrics-port", metrics_port, "a port number 0..65535", "pass --metrics-port 9108")
        self.addresses: list[str] = []  # the target's, resolved by the guard before any request
        if host and not host.startswith(("http://", "https://")):
            raise ConfigError("host", host, "an http:// or https:// URL", "pass --host http://127.0.0.1:8000")
        if target is None and (host or self.profile.target.base_url):
            from sessionstorm.profile import check_reachable
            url = host or str(self.profile.target.base_url)
            self.addresses = guard.check_target(url, self.allow_remote, self.profile.target.resolve or None)
            setting, fix = ("host", "start the service or fix --host") if host else ("target.base_url", None)
            check_reachable(url, self.profile.target.ready_path, setting=setting, **({"fix": fix} if fix else {}),
                            resolve=self.profile.target.resolve or None, allow_remote=self.allow_remote)
        if host:
            self.profile = with_base_url(self.profile, host.rstrip("/"))
        if target is not None and not bugs:  # a target launched elsewhere (regression) says its flags
            bugs = str(target.values.get("bugs") or "")
        self.bugs, self.backend = bugs, backend
        self.reports_dir = writable_dir(Path(reports_dir) if reports_dir is not None else DEFAULT_ROOT, "reports-dir")
        from sessionstorm.checker.stats import DEFAULT_THRESHOLDS
        profile_limits = {k: v for k, v in vars(self.profile.thresholds).items() if v is not None}
        self.thresholds = {**DEFAULT_THRESHOLDS, **profile_limits, **check_thresholds(thresholds or {})}
        self.settings = dict(settings or {})
        # faults (sessionstorm.nemesis): --fault and the profile's [[faults]], checked before anything
        # starts; ``fault_stack``: a stack started elsewhere (regression) that the faults act on
        from sessionstorm import nemesis
        self.faults = nemesis.plan(faults, self.profile, backend=backend, stack=fault_stack, target=target, host=host)
        self.fault_stack, self.nemesis, self._proxy = fault_stack, None, None
        # set before start(): fault times count from when the driver opens it (its load is
        # running), not from start(), however long the preparation takes on a busy machine
        self.fault_gate: threading.Event | None = None
        self.command = list(command if command is not None else sys.argv)
        self.target = target
        self.launched = False
        self.interrupted = False
        self.stopped_by: str | None = None  # the rails' reason, when a cap or an abort ended the run
        self.wire: Wire | None = None
        self.secrets: list[str] = []
        self.stack: Any = None
        self.dir: RunDir | None = None
        self.started: float | None = None
        self.results: dict[str, Any] | None = None
        self._reprober: threading.Thread | None = None
        self._reprobe_stop, self._probe_lock = threading.Event(), threading.Lock()
        self._told: set[tuple[Any, ...]] = set()  # findings already on the console

    def _rails(self, max_rps: float | None, max_requests: int | None,
               abort_error_rate: float | None) -> dict[str, Any] | None:
        """The remote rails' settings (validated now): on for a remote target, else only when asked."""
        asked = {k: v for k, v in (("max_rps", max_rps), ("max_requests", max_requests),
                                   ("abort_error_rate", abort_error_rate)) if v is not None}
        if not (asked or self.allow_remote):
            return None
        guard.RemoteRails(**asked)  # a bad value is one line now
        return asked

    # -- start ------------------------------------------------------------------------
    def start(self) -> Run:
        """Start (or reach) the target, open the run folder, write run.json."""
        try:
            if self.target is None:
                if self.profile.target.base_url:
                    self.target = attach(self.profile)
                else:
                    from sessionstorm.stack import Stack
                    self.stack = Stack(self.backend, progress=self.progress,
                                       provider_args=provider_args(self.profile)).start()
                    self.target = launch(self.profile, self.stack,
                                         vars=None if self.own_profile else {"bugs": self.bugs})
                    self.launched = True
            if self.faults:
                from sessionstorm import nemesis
                self._proxy = nemesis.put_proxy(self)  # drop faults: the target's URL becomes the proxy's
            self.addresses = guard.check_target(self.url, self.allow_remote, self.profile.target.resolve or None)
            self.dir = RunDir.create(self.scenario, root=self.reports_dir)
            self.started = time.time()
            self.write_meta()
            self.wire = Wire.build(self.profile, self.url, allow_remote=self.allow_remote, rails=self.rails,
                                   secrets=self._secrets(), metrics_port=self.metrics_port)
            if self.wire.rails is not None:
                self.progress(self.wire.rails.banner(self.url, self.addresses))
            if self.wire.metrics is not None:
                self.progress(f"metrics on {self.wire.metrics.url}")
            self.preflight()
            if self.profile.target.reprobe_s:
                self._reprober = threading.Thread(target=self._reprobe, name="sessionstorm-reprobe", daemon=True)
                self._reprober.start()
            if self.faults:
                from sessionstorm import nemesis
                self.nemesis = nemesis.start_for(self, self._proxy, self.stack or self.fault_stack)
        except BaseException:
            self._stop_reprobe()
            if self._proxy is not None:
                self._proxy.stop()
            self._stop_stack()
            raise
        return self

    @property
    def url(self) -> str:
        assert self.target is not None, "start() first"
        return self.target.url

    def keys(self, users: list[str]) -> dict[str, str]:
        """API keys for ``users``; from now on they are redacted wherever they would be recorded."""
        from sessionstorm.redact import Redactor
        from sessionstorm.workload.keys import make_keys
        assert self.target is not None and self.wire is not None, "start() first"
        keys = make_keys(self.target, users)
        self.secrets += [k for k in keys.values() if k]
        self.wire.redact = Redactor(self.secrets) or None
        return keys

    def _secrets(self) -> list[str]:
        """What must never be recorded: literal keys, the admin token, DSN passwords of the
        user's own databases (the stack's are throwaway and not secrets)."""
        from sessionstorm.redact import dsn_password
        t = self.target
        found = list(self.profile.keys.literal)
        if t is not None and t.values.get("admin_token"):
            found.append(t.values["admin_token"])
        if t is not None and t.dsn and not self.launched:
            found.append(dsn_password(t.dsn) or "")
        self.secrets = [s for s in found if s]
        return self.secrets

    def preflight(self, probe: int = 0) -> list[dict[str, Any]]:
        """Fingerprint every address of the target; a split is a SPLIT_ENDPOINT finding in the
        history (and on the console), checked like any other. Probe 0 runs before load; probes
        1, 2, ... every ``[target] reprobe_s`` during it (`_reprobe`), for a split that appears later."""
        from sessionstorm import endpoints

        assert self.dir is not None
        t = self.profile.target
        t0 = time.monotonic()
        session_path = self.profile.paths.observe if "observe" in t.flavors else None
        fps = endpoints.survey(self.url, t.resolve or None, allow_remote=self.allow_remote, ready_path=t.ready_path,
                               identity_header=t.identity_header or None, session_path=session_path,
                               connections=PREFLIGHT_CONNECTIONS)
        findings = endpoints.compare(self.url, fps, skip_unwell=probe > 0)
        # connections that answered, by address: what the probe could compare
        answered = Counter(fp["address"] for fp in fps if "error" not in fp)
        self._record_probe(probe, findings=findings, answered=dict(answered), seconds=round(time.monotonic() - t0, 3))
        return findings

    def _record_probe(self, probe: int, **data: Any) -> None:
        from sessionstorm.checker.endpoints import split_key
        from sessionstorm.history import HistoryWriter, process_name

        assert self.dir is not None
        with self._probe_lock:  # never a probe's record after finish() has stopped the probes
            if probe and self._reprobe_stop.is_set():
                return
            with HistoryWriter(self.dir.history_path(process_name("preflight"))) as h:
                h.event("preflight", url=self.url, addresses=self.addresses, probe=probe,
                        after_s=round(time.time() - (self.started or time.time()), 1), **data)
        for f in data.get("findings") or []:
            if split_key(f) not in self._told:
                self._told.add(split_key(f))
                when = f"probe {probe} during the run" if probe else "preflight"
                self.progress(f"{when}: {f['code']}: {f['detail']}; {f['fix']}")

    def _reprobe(self) -> None:
        """The preflight again every ``[target] reprobe_s`` until finish(): in a soak of hours a
        second server can appear long after the first probe (a deploy that left the old one)."""
        every, probe = self.profile.target.reprobe_s, 0
        while not self._reprobe_stop.wait(every):
            probe += 1
            try:
                self.preflight(probe)
            except Exception as e:  # a probe that could not run is noted; the run goes on
                self._record_probe(probe, findings=[], error=f"{type(e).__name__}: {e}"[:200])

    def _stop_reprobe(self) -> None:
        with self._probe_lock:
            self._reprobe_stop.set()
        if self._reprober is not None:
            self._reprober.join(timeout=10)  # a probe's own timeouts bound it; the record is dropped anyway

    def meta(self, **more: Any) -> dict[str, Any]:
        """run.json's content (one schema for every driver)."""
        t, stack = self.target, self.stack
        info = stack.info() if stack is not None and stack.backend is not None else {}
        return {
            "schema_version": SCHEMA_VERSION, "scenario": self.scenario, "driver": self.driver,
            "command": self.command, "started": self.started, "interrupted": False, "lost_workers": [],
            "settings": self.settings, "thresholds": self.thresholds, "stopped_by": self.stopped_by,
            "allow_remote": self.allow_remote, "addresses": self.addresses,
            "target": {"url": t.url if t else None, "launched": self.launched, "bugs": self.bugs or None,
                       "profile": self.profile.redacted()},
            "stack": None if stack is None else {
                "backend": stack.backend_name, "provider_url": info.get("provider_url"),
                "postgres_dsn": _no_password(info.get("postgres_dsn")),
                "redis_url": _no_password(info.get("redis_url"))},
            "faults": [f.as_dict() for f in self.faults], "versions": _versions(), **more}

    def write_meta(self, **more: Any) -> None:
        assert self.dir is not None
        self.dir.write_json("run.json", self.meta(**more))

    # -- finish -----------------------------------------------------------------------
    def finish(self, *, interrupted: bool | None = None, lost_workers: list[str] | tuple[str, ...] = (),
               **more: Any) -> dict[str, Any]:
        """Stop what this run started (logs kept), then check and report. Safe on a half-started run."""
        if self.dir is None:
            self._stop_stack()
            raise RuntimeError("the run never started")
        self._stop_reprobe()
        if self.nemesis is not None:  # an active fault ends (its component starts again) before the stack stops
            self.nemesis.stop()
        finished = time.time()
        self.interrupted = self.interrupted if interrupted is None else interrupted
        rails = self.wire.rails if self.wire is not None else None
        self.stopped_by = self.stopped_by or (rails.stop_reason if rails is not None else None)
        self.write_meta(finished=finished, duration_s=round(finished - (self.started or finished), 3),
                        interrupted=self.interrupted, lost_workers=list(lost_workers), **more)
        self._stop_stack()
        if self.wire is not None:
            self.wire.close()
        self.results = check_and_report(self.dir)
        return self.results

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

