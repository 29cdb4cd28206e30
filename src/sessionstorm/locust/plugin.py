"""Locust wiring: our options, the zero-setup stack, histories, the end-of-run verdict.

Importing this module (every locustfile does, through ``sessionstorm.locust``) registers
the listeners. On the local runner or the master:

- with no ``--host`` and no ``--target-profile``, the embedded stack and the reference
  target start (bug flags from ``--target-bugs`` / SESSIONSTORM_TARGET_BUGS) and stop at exit;
- API keys are made, the run folder ``reports/<scenario>/<timestamp>/`` is created;
- at exit the checker reads every process's history, results.json is written, a summary
  printed, and the exit code set: 0 clean, 1 anomalies, 3 unknown.

Workers (``--processes N`` or ``--worker``) get the host, keys and run folder from the
master in one message and write their own history file into the same folder.
"""
from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.lock import Semaphore
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from sessionstorm.errors import ConfigError, SessionstormError
from sessionstorm.history import HistoryWriter, process_name
from sessionstorm.rundir import RunDir

log = logging.getLogger("sessionstorm")
REFERENCE = Path(__file__).resolve().parents[3] / "fixtures" / "reference.toml"
SETUP_MESSAGE = "sessionstorm_setup"


@dataclass
class Context:
    profile: Any
    keys: list[str]
    run_dir: RunDir
    history: HistoryWriter
    prompts: Any
    tag: str
    peer: str | None
    expect_canary: bool = True
    observe_sessions: int = 10
    # A read-back returns every observation of its session, and the checker keeps each read's
    # values: sessions are renewed after this many observes, so a soak's records stay small
    # (unbounded, a 10-minute run wrote 30 KB per read and its verdict needed GBs).
    observes_per_session: int = 200
    _sessions: list[str] = field(default_factory=list)
    _uses: list[int] = field(default_factory=list)
    _lock: Semaphore = field(default_factory=Semaphore)

    def shared_sessions(self, user: Any) -> list[str]:
        """The sessions ObserveUsers share, created once per process by whoever asks first."""
        with self._lock:
            while len(self._sessions) < self.observe_sessions:
                self._sessions.append(self._create_session(user))
                self._uses.append(0)
        return self._sessions

    def session_to_observe(self, user: Any) -> str:
        """The user's shared session, renewed once observes_per_session observes went to it."""
        slot = user.number % self.observe_sessions
        self.shared_sessions(user)
        if self._uses[slot] >= self.observes_per_session:
            with self._lock:
                if self._uses[slot] >= self.observes_per_session:  # nobody renewed it while we waited
                    self._sessions[slot], self._uses[slot] = self._create_session(user), 0
        self._uses[slot] += 1
        return self._sessions[slot]

    def _create_session(self, user: Any) -> str:
        from sessionstorm.workload import observe
        op = user.send(observe.build_create(self.profile), name="create_session")
        if op.get("outcome") != "ok" or not op.get("session_seen"):
            raise RuntimeError(f"sessionstorm: could not create a session: {op.get('error')}")
        return str(op["session_seen"])


@dataclass
class _State:
    stack: Any = None
    target: Any = None
    setup: dict[str, Any] | None = None
    ctx: Context | None = None
    snapshots: Any = None  # (history writer, greenlet) of the invariant snapshots, on the master


_state = _State()


def context(environment: Any, timeout: float = 30.0) -> Context:
    """This process's harness context (a worker waits for the master's setup message)."""
    deadline = time.monotonic() + timeout
    while _state.ctx is None:
        if time.monotonic() > deadline:
            raise RuntimeError("sessionstorm: no setup from the master within 30 s")
        gevent.sleep(0.05)
    return _state.ctx


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    g = parser.add_argument_group("sessionstorm")
    g.add_argument("--target-profile", env_var="SESSIONSTORM_TARGET_PROFILE", default=None,
                   help="target profile (TOML) of the service under test; default: the reference target")
    g.add_argument("--target-bugs", env_var="SESSIONSTORM_TARGET_BUGS", default="",
                   help="reference target bug flags, comma-separated (zero-setup runs only)")
    g.add_argument("--backend", env_var="SESSIONSTORM_BACKEND", default=None, help="stack backend (default embedded)")
    g.add_argument("--reports-dir", env_var="SESSIONSTORM_REPORTS", default="reports", help="where run folders go")
    g.add_argument("--shared-keys", env_var="SESSIONSTORM_SHARED_KEYS", type=int, default=2,
                   help="how many API keys the users share")
    g.add_argument("--max-error-rate", env_var="SESSIONSTORM_MAX_ERROR_RATE", type=float, default=None)
    g.add_argument("--max-p95-ms", env_var="SESSIONSTORM_MAX_P95_MS", type=float, default=None)


def _scenario(environment: Any) -> str:
    locustfile = getattr(environment.parsed_options, "locustfile", None) or "locust"
    return Path(str(locustfile).split(",")[0]).stem or "locust"


def _fail(message: str) -> None:
    sys.stderr.write(f"sessionstorm: error: {message}\n")
    sys.stderr.flush()
    if _state.stack is not None:
        _state.stack.stop()
    os._exit(2)  # before any load; gevent and Locust's own teardown would only add noise


def _setup_master(environment: Any) -> dict[str, Any]:
    """Start (or reach) the target, make keys, create the run folder."""
    from sessionstorm.stack import Stack
    from sessionstorm.target.bugs import parse_bugs
    from sessionstorm.workload.keys import make_keys
    from sessionstorm.workload.launch import attach, launch
    from sessionstorm.workload.profile import load_profile, with_base_url

    o = environment.parsed_options
    if o.shared_keys < 1:
        raise ConfigError("shared-keys", o.shared_keys, "an integer >= 1", "pass --shared-keys 1 or more")
    own_profile = o.target_profile
    profile = load_profile(own_profile or str(REFERENCE), check=not o.host)  # --host replaces its base_url
    if o.host:
        _reachable(o.host)
        profile = with_base_url(profile, o.host.rstrip("/"))
    if profile.target.base_url:
        target = attach(profile)
    else:
        if o.target_bugs:
            parse_bugs(o.target_bugs)
        say = lambda m: sys.stderr.write(f"sessionstorm: {m}\n")  # noqa: E731
        _state.stack = Stack(o.backend, progress=say).start()
        target = launch(profile, _state.stack, vars=None if own_profile else {"bugs": o.target_bugs})
        environment.host = target.url
    _state.target = target
    keys = make_keys(target, [f"team-{i}" for i in range(o.shared_keys)])
    run_dir = RunDir.create(_scenario(environment), root=o.reports_dir)
    thresholds = {k: v for k, v in (("error_rate", o.max_error_rate), ("p95_ms", o.max_p95_ms)) if v is not None}
    run_dir.write_json("run.json", {
        "scenario": _scenario(environment), "driver": "locust", "started": time.time(),
        "users": getattr(o, "num_users", None), "run_time": getattr(o, "run_time", None),
        "target": {"url": target.url, "profile": profile.redacted(), "bugs": o.target_bugs or None},
        "thresholds": thresholds})
    return {"host": target.url, "keys": list(keys.values()), "run_dir": str(run_dir.path),
            "profile": own_profile or str(REFERENCE),
            "tag": secrets.token_hex(3), "llm": profile.target.llm}


def _reachable(url: str) -> None:
    import httpx
    try:
        httpx.get(url, timeout=5)
    except httpx.HTTPError as e:
        raise ConfigError("host", url, "a URL that answers HTTP", f"check --host ({type(e).__name__})") from None


def _make_context(setup: dict[str, Any], role: str) -> Context:
    from sessionstorm.workload.profile import load_profile, with_base_url
    from sessionstorm.workload.prompts import PromptMaker

    profile = with_base_url(load_profile(setup["profile"], check=False), setup["host"])
    run_dir = RunDir(setup["run_dir"])
    proc = process_name(role)
    host = setup["host"].split("://", 1)[-1].rstrip("/")
    return Context(profile, setup["keys"], run_dir, HistoryWriter(run_dir.history_path(proc), proc),
                   PromptMaker(setup["llm"]), setup["tag"], host, expect_canary=True)


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        def on_setup(msg: Any, **__: Any) -> None:
            _state.setup = msg.data
            environment.host = msg.data["host"]
            _state.ctx = _make_context(msg.data, f"worker{runner.worker_index}")
        runner.register_message(SETUP_MESSAGE, on_setup)
        return
    try:
        _state.setup = _setup_master(environment)
    except SessionstormError as e:
        _fail(str(e))
    if not isinstance(runner, MasterRunner):
        _state.ctx = _make_context(_state.setup, "local")


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner) and _state.setup is not None:
        environment.runner.send_message(SETUP_MESSAGE, _state.setup)
    if not isinstance(environment.runner, WorkerRunner) and _state.target is not None and _state.snapshots is None:
        proc = process_name("snapshots")
        history = HistoryWriter(RunDir(_state.setup["run_dir"]).history_path(proc), proc)
        _state.snapshots = (history, gevent.spawn(_snapshot_loop, history))


SNAPSHOT_EVERY_S = 5.0


def _snapshot(history: HistoryWriter, when: str) -> None:
    """The profile's SQL invariants, read in a real thread so the load's greenlets keep running."""
    import asyncio

    from sessionstorm.workload import snapshots

    t = _state.target
    if not t.profile.invariants:
        return
    pool = gevent.get_hub().threadpool
    for data in pool.apply(asyncio.run, (snapshots.take(t.dsn, t.profile.invariants, when),)):
        history.event("snapshot", **data)


def _snapshot_loop(history: HistoryWriter) -> None:
    while True:
        gevent.sleep(SNAPSHOT_EVERY_S)
        _snapshot(history, "during")


@events.test_stop.add_listener
def _test_stop(environment: Any, **_: Any) -> None:
    if _state.ctx is not None:
        _state.ctx.history.flush()


@events.quitting.add_listener
def _quitting(environment: Any, **_: Any) -> None:
    if _state.ctx is not None:
        _state.ctx.history.close()
    if isinstance(environment.runner, WorkerRunner) or _state.setup is None:
        return
    try:
        if _state.snapshots is not None:
            history, loop = _state.snapshots
            loop.kill()
            _snapshot(history, "after")
            history.close()
        if isinstance(environment.runner, MasterRunner):
            time.sleep(1.5)  # workers close their files on quit; give the last flush time to land
        environment.process_exit_code = _verdict(RunDir(_state.setup["run_dir"]))
    finally:
        if _state.stack is not None:
            _state.stack.stop()
            _state.stack = None


def _verdict(run_dir: RunDir) -> int:
    from sessionstorm.checker import check_run, exit_code
    from sessionstorm.checker.summary import summary_lines
    from sessionstorm.report import render_report

    results = check_run(run_dir)
    lines = [*summary_lines(results, run_dir.path), f"report: {render_report(run_dir, results)}"]
    sys.stderr.write("\n".join(["", "== sessionstorm", *lines, ""]) + "\n")
    return exit_code(results)
