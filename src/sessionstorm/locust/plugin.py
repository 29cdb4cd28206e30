"""Locust wiring: our options, the zero-setup stack, histories, the end-of-run verdict.

Importing this module (every locustfile does, through ``sessionstorm.locust``) registers
the listeners. On the local runner or the master:

- with no ``--host`` and no ``--target-profile``, the embedded stack and the reference
  target start (bug flags from ``--target-bugs`` / SESSIONSTORM_TARGET_BUGS) and stop at exit;
- API keys are made, the run folder ``reports/<scenario>/<timestamp>/`` is created;
- at exit the checker reads every process's history, results.json is written, a summary
  printed, and the exit code set: 0 clean, 1 anomalies, 3 unknown.

Workers (``--processes N`` or ``--worker``) get the host, keys and run folder from the
master in one message and write their own history file into the same folder. A worker
that stops sending heartbeats is reported as lost, and the verdict cannot be CLEAN.

Ctrl-C or SIGTERM: users stop after the request in flight (bounded by the profile's
``target.timeout_s``), every op is recorded, and the run is checked and marked
``interrupted``; only then does the stack stop. The run's life is `sessionstorm.run.Run`.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
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
# Locust logs at INFO: the harness's own requests (preflight, keys) are not the load's news.
logging.getLogger("httpx").setLevel(logging.WARNING)
SETUP_MESSAGE = "sessionstorm_setup"
HELLO_MESSAGE = "sessionstorm_hello"
REFUSED_MESSAGE = "sessionstorm_refused"
TOKEN_ENV = "SESSIONSTORM_WORKER_TOKEN"
# Keys reach a worker only once it proves this shared secret. `--processes` workers are forked
# from this process and inherit it; workers started elsewhere need the same value set.
os.environ.setdefault(TOKEN_ENV, secrets.token_urlsafe(24))


@dataclass
class Context:
    profile: Any
    keys: list[str]
    run_dir: RunDir
    history: HistoryWriter
    prompts: Any
    tag: str
    wire: Any                  # sessionstorm.run.Wire
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
    run: Any = None            # sessionstorm.run.Run, on the local runner or the master
    setup: dict[str, Any] | None = None
    ctx: Context | None = None
    snapshots: Any = None      # (history writer, greenlet) of the invariant snapshots, on the master
    lost: list[str] = field(default_factory=list)
    approved: set[str] = field(default_factory=set)   # workers that proved the token
    waiting: set[str] = field(default_factory=set)    # ... and said hello before the setup was ready


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
    g.add_argument("--max-error-rate", env_var="SESSIONSTORM_MAX_ERROR_RATE", type=float, default=None,
                   help="CLEAN needs at most this share of operations not verified ok (0..1)")
    g.add_argument("--max-info-rate", env_var="SESSIONSTORM_MAX_INFO_RATE", type=float, default=None,
                   help="CLEAN needs at most this share of operations with an unknown outcome (0..1)")
    g.add_argument("--max-p95-ms", env_var="SESSIONSTORM_MAX_P95_MS", type=float, default=None)
    g.add_argument("--allow-remote", env_var="SESSIONSTORM_ALLOW_REMOTE", action="store_true", default=None,
                   help="allow a non-loopback target (then capped: --max-rps, --max-requests, --abort-error-rate)")
    g.add_argument("--max-rps", env_var="SESSIONSTORM_MAX_RPS", type=float, default=None,
                   help="at most this many requests per second per process (remote default 50)")
    g.add_argument("--max-requests", env_var="SESSIONSTORM_MAX_REQUESTS", type=int, default=None,
                   help="stop after this many requests per process")
    g.add_argument("--abort-error-rate", env_var="SESSIONSTORM_ABORT_ERROR_RATE", type=float, default=None,
                   help="abort when this share of the last 30 s of requests failed (remote default 0.5)")
    g.add_argument("--fault", dest="faults", action="append", default=None,
                   help="ACTION:COMPONENT@START[+DURATION], repeatable (master only): kill:target@5+3, "
                        "restart:postgres@10, pause:redis@8+4, error:provider@5+5, latency:provider@5+5, drop:target@5+2")
    g.add_argument("--recovery-s", type=float, default=None,
                   help="grace after a fault ends (s): failures until then are availability (default 10)")
    g.add_argument("--metrics-port", env_var="SESSIONSTORM_METRICS_PORT", type=int, default=None,
                   help="serve Prometheus metrics on 127.0.0.1:PORT (local runs)")
    # Closed doors: the master and the web UI listen on loopback unless told otherwise.
    parser.set_defaults(master_bind_host="127.0.0.1", web_host="127.0.0.1")


def _scenario(environment: Any) -> str:
    locustfile = getattr(environment.parsed_options, "locustfile", None) or "locust"
    return Path(str(locustfile).split(",")[0]).stem or "locust"


def _fail(message: str) -> None:
    sys.stderr.write(f"sessionstorm: error: {message}\n")
    sys.stderr.flush()
    if _state.run is not None:
        _state.run._stop_stack()
    os._exit(2)  # before any load; gevent and Locust's own teardown would only add noise


def _setup_master(environment: Any) -> dict[str, Any]:
    """Validate, start (or reach) the target, make keys, open the run folder: `Run` does it."""
    from sessionstorm.profiles import REFERENCE
    from sessionstorm.run import Run

    o = environment.parsed_options
    if o.shared_keys < 1:
        raise ConfigError("shared-keys", o.shared_keys, "an integer >= 1", "pass --shared-keys 1 or more")
    users = getattr(o, "num_users", None)
    if users is not None and users < 0:
        raise ConfigError("users", users, "an integer >= 0", "pass -u / --users 1 or more")
    say = lambda m: sys.stderr.write(f"sessionstorm: {m}\n")  # noqa: E731
    from sessionstorm.envvars import warn_unknown
    warn_unknown(say)
    run = Run(_scenario(environment), driver="locust", profile=o.target_profile, host=o.host, bugs=o.target_bugs,
              backend=o.backend, reports_dir=o.reports_dir, progress=say, allow_remote=o.allow_remote,
              max_rps=o.max_rps, max_requests=o.max_requests, abort_error_rate=o.abort_error_rate,
              metrics_port=o.metrics_port if not isinstance(environment.runner, MasterRunner) else None,
              faults=o.faults, thresholds={"error_rate": o.max_error_rate, "info_rate": o.max_info_rate, "p95_ms": o.max_p95_ms,
                                          "recovery_s": o.recovery_s},
              settings={"users": users, "spawn_rate": getattr(o, "spawn_rate", None),
                        "run_time": getattr(o, "run_time", None), "processes": getattr(o, "processes", None),
                        "shared_keys": o.shared_keys})
    _state.run = run
    if run.faults:  # fault times count from the load's start (test_start), not from the stack's
        run.fault_gate = threading.Event()
    run.start()
    environment.host = run.url
    if not environment.stop_timeout:  # users finish the request in flight when the run stops
        environment.stop_timeout = run.profile.target.timeout_s
    keys = run.keys([f"team-{i}" for i in range(o.shared_keys)])
    return {"host": run.url, "keys": list(keys.values()), "run_dir": str(run.dir.path),
            "profile": o.target_profile or str(REFERENCE), "tag": secrets.token_hex(3), "llm": run.profile.target.llm,
            "allow_remote": run.allow_remote, "rails": run.rails}


def _make_context(setup: dict[str, Any], role: str) -> Context:
    """This process's context; on the local runner the run's own Wire, on a worker one built
    the same way from the master's setup (one Spreader per process: every user spreads)."""
    from sessionstorm.run import Wire
    from sessionstorm.profile import load_profile, with_base_url
    from sessionstorm.workload.prompts import PromptMaker

    profile = with_base_url(load_profile(setup["profile"], check=False), setup["host"])
    run_dir = RunDir(setup["run_dir"])
    proc = process_name(role)
    run = _state.run
    wire = run.wire if run is not None else Wire.build(profile, setup["host"], allow_remote=setup["allow_remote"],
                                                       rails=setup["rails"], secrets=setup["keys"])
    return Context(profile, setup["keys"], run_dir, HistoryWriter(run_dir.history_path(proc), proc),
                   PromptMaker(setup["llm"]), setup["tag"], wire, expect_canary=True)


def _proof(client_id: str) -> str:
    return hmac.new(os.environ[TOKEN_ENV].encode(), client_id.encode(), hashlib.sha256).hexdigest()


def _init_worker(environment: Any, runner: Any) -> None:
    def on_setup(msg: Any, **__: Any) -> None:
        _state.setup = msg.data
        environment.host = msg.data["host"]
        _state.ctx = _make_context(msg.data, f"worker{runner.worker_index}")

    def on_refused(msg: Any, **__: Any) -> None:
        sys.stderr.write(f"sessionstorm: error: {msg.data}\n")
        sys.stderr.flush()
        os._exit(2)

    runner.register_message(SETUP_MESSAGE, on_setup)
    runner.register_message(REFUSED_MESSAGE, on_refused)
    runner.send_message(HELLO_MESSAGE, {"proof": _proof(runner.client_id)})


def _on_hello(environment: Any, msg: Any) -> None:
    """A worker asks for the run's setup (keys included): only with the right token."""
    runner, wid = environment.runner, msg.node_id
    if not hmac.compare_digest(str((msg.data or {}).get("proof", "")), _proof(wid)):
        sys.stderr.write(f"sessionstorm: refused worker {wid}: wrong or missing {TOKEN_ENV}\n")
        runner.send_message(REFUSED_MESSAGE, f"the master refused this worker: set {TOKEN_ENV} to the master's value "
                                             "on every worker", client_id=wid)
        # Out of the master's count at once: it exits without a quit message, and until its heartbeats
        # lapse (3 s) the master would count it for --expect-workers, give it users, then report it lost.
        if wid in runner.clients:
            del runner.clients[wid]
        return
    _state.approved.add(wid)
    if _state.setup is None:
        _state.waiting.add(wid)
    else:
        runner.send_message(SETUP_MESSAGE, _state.setup, client_id=wid)


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        _init_worker(environment, runner)
        return
    if isinstance(runner, MasterRunner):  # before the (slow) setup: workers say hello meanwhile
        runner.register_message(HELLO_MESSAGE, lambda msg, **__: _on_hello(environment, msg))
    try:
        _state.setup = _setup_master(environment)
    except SessionstormError as e:
        _fail(str(e))
    if isinstance(runner, MasterRunner):
        for wid in sorted(_state.waiting):
            runner.send_message(SETUP_MESSAGE, _state.setup, client_id=wid)
        _state.waiting.clear()
        gevent.spawn(_watch_workers, runner)
    else:
        _state.ctx = _make_context(_state.setup, "local")
    from sessionstorm.locust.webui import attach
    attach(environment)  # the "sessionstorm" tab in Locust's web UI; nothing with --headless


WATCH_EVERY_S = 1.0


def _watch_workers(runner: Any) -> None:
    """A worker whose heartbeats stopped (killed, hung, cut off) is lost: its ops may be missing."""
    while True:
        gevent.sleep(WATCH_EVERY_S)
        _check_workers(runner)


def _check_workers(runner: Any) -> None:
    # Locust marks a worker "missing" after 3 missed heartbeats and forgets it ~60 s later:
    # polled every second, none slips through.
    for client in runner.clients.missing:
        if client.id not in _state.lost:
            _state.lost.append(client.id)
            sys.stderr.write(f"sessionstorm: worker {client.id} lost (no heartbeat): its operations are unknown\n")


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    run = _state.run
    if run is not None and run.fault_gate is not None:
        run.fault_gate.set()
    if run is not None and run.target is not None and _state.snapshots is None:
        proc = process_name("snapshots")
        history = HistoryWriter(run.dir.history_path(proc), proc)
        _state.snapshots = (history, gevent.spawn(_snapshot_loop, history))


SNAPSHOT_EVERY_S = 5.0


def _snapshot(history: HistoryWriter, when: str) -> None:
    """The profile's SQL invariants, read in a real thread so the load's greenlets keep running."""
    import asyncio

    from sessionstorm.workload import snapshots

    t = _state.run.target
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
    from sessionstorm.locust.users import judge_held
    judge_held()  # replies held for a batch: into the history (and Locust's stats) first
    if _state.ctx is not None:
        _state.ctx.history.flush()


def _stop_users(environment: Any) -> bool:
    """Locust fires `quitting` before it stops the users on Ctrl-C/SIGTERM: stop them here
    first (each finishes its request in flight), so no op is cut off. True if they were running."""
    runner = environment.runner
    if runner is None or runner.state not in ("spawning", "running"):
        return False
    runner.stop()
    return True


@events.quitting.add_listener
def _quitting(environment: Any, **_: Any) -> None:
    interrupted = _stop_users(environment)
    from sessionstorm.locust.users import judge_held
    judge_held()  # replies held for a batch: into the history before it closes
    if _state.ctx is not None:
        _state.ctx.history.close()
    run = _state.run
    if isinstance(environment.runner, WorkerRunner) or run is None or run.dir is None:
        return
    try:
        if isinstance(environment.runner, MasterRunner):
            _check_workers(environment.runner)
        if _state.snapshots is not None:
            history, loop = _state.snapshots
            loop.kill()
            _snapshot(history, "after")
            history.close()
        if isinstance(environment.runner, MasterRunner):
            time.sleep(1.5)  # workers close their files on quit; give the last flush time to land
    finally:
        run.stopped_by = getattr(environment, "sessionstorm_stopping", None)
        run.finish(interrupted=interrupted or None, lost_workers=_state.lost)
    sys.stderr.write("\n".join(["", "== sessionstorm", *run.summary(), ""]) + "\n")
    environment.process_exit_code = run.exit_code
