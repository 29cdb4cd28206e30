"""Issue 13, "Honest verdicts": the fault cases, each through both drivers, as real processes.

Every case starts real servers on 127.0.0.1 and runs the real commands in subprocesses:

- driver ``run``:    ``sessionstorm run SCENARIO ...`` (the console script of this venv);
- driver ``locust``: ``python -m locust -f locustfiles/shared_key.py --headless ...``.

The rules asserted are issue 13's (docs in /work/shared/DESIGN.md, "Outcomes and verdicts"):
a run that verified nothing is UNKNOWN (exit 3), a service that answers 401 to everything,
drops every connection or dies mid-run is never CLEAN, an interrupted run is marked
``interrupted`` and loses no operation, a lost Locust worker is reported, and the clean
reference target stays CLEAN.

The misbehaving servers are tests/verdicts/servers.py (standard library only); their target
profile is tests/verdicts/profiles/fault.toml, filled with the server's port at test time.

    .venv/bin/pytest tests/verdicts -p no:randomly -n 0        # or -n 2
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import portpicker
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers.py"
PROFILES = HERE / "profiles"
LOCUSTFILE = ROOT / "locustfiles" / "shared_key.py"
OUTCOMES = ("ok", "fail", "info")
NOT_CLEAN_CODES = ("UNAVAILABLE", "THRESHOLD_BREACHED")

RUN_TIMEOUT = 240      # s: any one harness process, start of the stack included
SHORT_TIMEOUT = 60     # s: a harness process that must only stop (after SIGINT, etc.)

# Variables of the environment that would point a run elsewhere than the test says.
_LEAKY = ("SESSIONSTORM_TARGET_PROFILE", "SESSIONSTORM_REPORTS", "SESSIONSTORM_TARGET_BUGS",
          "SESSIONSTORM_MAX_ERROR_RATE", "SESSIONSTORM_MAX_P95_MS", "SESSIONSTORM_SHARED_KEYS")


def _sessionstorm() -> list[str]:
    """The installed console script (what a user types); the module if it is missing."""
    script = Path(sys.executable).parent / "sessionstorm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sessionstorm.cli"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _LEAKY and not k.startswith(("SESSIONSTORM_TARGET_", "SESSIONSTORM_KEYS_", "SESSIONSTORM_THRESHOLDS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---------------------------------------------------------------- processes

@dataclass
class Proc:
    """A started subprocess whose output goes to files (so tests can poll while it runs)."""

    name: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)  # descendants ever seen

    def note_children(self) -> None:
        """Remember its descendants (forked Locust workers, stack services): if it dies without
        stopping them, the test's teardown ends them by pid."""
        try:
            for c in psutil.Process(self.pid).children(recursive=True):
                self.seen.setdefault(c.pid, c)
        except psutil.Error:
            pass

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def tail(self, n: int = 3000) -> str:
        return f"--- {self.name} stdout ---\n{self.stdout()[-n:]}\n--- {self.name} stderr ---\n{self.stderr()[-n:]}"

    def wait(self, timeout: float) -> int:
        """Its exit code; a process that outlives ``timeout`` is stopped and the test fails."""
        self.note_children()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(self.popen)
            pytest.fail(f"{self.name} did not exit within {timeout:g} s\n{self.tail()}")


def stop(p: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """End a process this test started, by its pid: SIGTERM, then SIGKILL."""
    if p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)
    except ProcessLookupError:
        pass


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Every process a test starts; whatever still runs at the end is stopped (by pid), and so
    is any descendant it left behind (e.g. workers of a Locust master that crashed)."""
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        p.note_children()
        stop(p.popen)
    for p in started:
        for c in p.seen.values():
            try:
                if c.is_running() and c.status() != psutil.STATUS_ZOMBIE:  # is_running checks pid reuse
                    c.kill()
            except psutil.Error:
                pass


def spawn(procs: list[Proc], tmp_path: Path, name: str, cmd: list[str]) -> Proc:
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = Proc(name, subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, cwd=tmp_path, env=_env()),
                 out, err)
    procs.append(p)
    p.note_children()
    return p


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, proc: Proc | None = None) -> Any:
    """Poll until ``predicate()`` is truthy; fail naming ``what`` (and ``proc``'s output)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None:
            proc.note_children()
        value = predicate()
        if value:
            return value
        if proc is not None and not proc.running():
            pytest.fail(f"{proc.name} exited (code {proc.popen.returncode}) before {what}\n{proc.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}" + (f"\n{proc.tail()}" if proc else ""))
        time.sleep(0.2)


# ---------------------------------------------------------------- the drivers

def sessionstorm(procs: list[Proc], tmp_path: Path, *args: str, name: str = "sessionstorm") -> Proc:
    return spawn(procs, tmp_path, name, [*_sessionstorm(), *args])


def run_driver(procs: list[Proc], tmp_path: Path, scenario: str, *args: str,
               profile: Path | None = None) -> tuple[Proc, Path]:
    """``sessionstorm run SCENARIO [--target-profile P] --reports-dir R``."""
    reports = tmp_path / "reports"
    prof = ["--target-profile", str(profile)] if profile is not None else []
    return sessionstorm(procs, tmp_path, "run", scenario, *prof, "--reports-dir", str(reports), *args,
                        name="sessionstorm-run"), reports


def locust_driver(procs: list[Proc], tmp_path: Path, *args: str, users: int = 4,
                  run_time: str = "5s", profile: Path | None = None) -> tuple[Proc, Path]:
    """Headless Locust on locustfiles/shared_key.py; never ``--host`` (the profile's base_url must do)."""
    reports = tmp_path / "reports"
    prof = ["--target-profile", str(profile)] if profile is not None else []
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
           "-r", str(max(users, 1)), "-t", run_time, *prof, "--reports-dir", str(reports), *args]
    return spawn(procs, tmp_path, "locust", cmd), reports


def drive(driver: str, procs: list[Proc], tmp_path: Path, profile: Path) -> tuple[Proc, Path]:
    if driver == "run":
        return run_driver(procs, tmp_path, "shared_key", profile=profile)
    return locust_driver(procs, tmp_path, profile=profile)


# ---------------------------------------------------------------- run folders

def run_folder(reports: Path) -> Path | None:
    latest = reports / "latest"
    return latest.resolve() if latest.exists() else None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class History:
    records: list[dict[str, Any]]
    corrupt: list[str]

    @property
    def ops(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("type") == "op"]


def history(run: Path | None) -> History:
    """Every record of every history file of the run, read as plain JSON lines."""
    records: list[dict[str, Any]] = []
    corrupt: list[str] = []
    if run is None:
        return History(records, corrupt)
    for f in sorted((run / "history").glob("*.jsonl")):
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                corrupt.append(f"{f.name}:{n}: {line[:80]}")
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return History(records, corrupt)


def count_ops(reports: Path, outcome: str | None = None) -> int:
    ops = history(run_folder(reports)).ops
    return sum(1 for o in ops if outcome is None or o.get("outcome") == outcome)


@dataclass
class Outcome:
    """What a finished harness process left behind."""

    code: int
    run: Path | None
    results: dict[str, Any] | None
    meta: dict[str, Any] | None
    hist: History
    proc: Proc

    @property
    def valid(self) -> Any:
        return None if self.results is None else self.results.get("valid")

    @property
    def anomalies(self) -> list[dict[str, Any]]:
        return list((self.results or {}).get("anomalies") or [])

    def summary(self) -> str:
        """One line for assertion messages: the before/after figure of a case."""
        ops = self.hist.ops
        outcomes = {o: sum(1 for op in ops if op.get("outcome") == o) for o in OUTCOMES}
        missing = sum(1 for op in ops if op.get("outcome") not in OUTCOMES)
        return (f"exit={self.code} valid={self.valid!r} anomalies={[a.get('code') for a in self.anomalies]} "
                f"history ops={len(ops)} {outcomes} no-outcome={missing} corrupt={len(self.hist.corrupt)} "
                f"results.json={'yes' if self.results is not None else 'NO'} "
                f"run.json={'yes' if self.meta is not None else 'NO'}")

    def why(self) -> str:
        return f"{self.summary()}\n{self.proc.tail()}"


def finish(proc: Proc, reports: Path | None, timeout: float = RUN_TIMEOUT) -> Outcome:
    code = proc.wait(timeout)
    run = run_folder(reports) if reports is not None else None
    results = read_json(run / "results.json") if run else None
    meta = read_json(run / "run.json") if run else None
    return Outcome(code, run, results, meta, history(run), proc)


def outcome_of(path: Path, code: int, proc: Proc) -> Outcome:
    return Outcome(code, path, read_json(path / "results.json"), read_json(path / "run.json"), history(path), proc)


# ---------------------------------------------------------------- servers and profiles

@pytest.fixture
def fault_server(procs: list[Proc], tmp_path: Path) -> Callable[[str], str]:
    """Start tests/verdicts/servers.py MODE on a free port; returns its base URL once /healthz is 200."""
    def start(mode: str) -> str:
        proc = spawn(procs, tmp_path, f"server-{mode}", [sys.executable, str(SERVERS), mode, "--port", "0"])
        line = wait_for(lambda: re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout()), 20,
                        f"{mode} server to listen", proc)
        url = line.group(1)

        def healthy() -> bool:
            try:
                return httpx.get(url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(healthy, 20, f"{mode} server's /healthz", proc)
        return url
    return start


def fill_template(name: str, tmp_path: Path, **values: str) -> Path:
    """tests/verdicts/profiles/NAME with ``{name}`` replaced (only the given names), in tmp_path."""
    text = (PROFILES / name).read_text()
    for k, v in values.items():
        text = text.replace("{" + k + "}", v)
    out = tmp_path / name
    out.write_text(text)
    return out


def fault_profile(tmp_path: Path, url: str) -> Path:
    return fill_template("fault.toml", tmp_path, port=url.rsplit(":", 1)[1])


def assert_verified_and_no_failures(o: Outcome) -> None:
    """A clean target: verified ops, none failed (an op cut at the run's end may be info)."""
    assert any(op.get("outcome") == "ok" for op in o.hist.ops), o.summary()
    failed = [op for op in o.hist.ops if op.get("outcome") == "fail"]
    assert not failed, f"{len(failed)} ops failed, e.g. {failed[0].get('error')!r}: {o.summary()}"


def mentions_401(anomaly: dict[str, Any]) -> bool:
    """The finding's own evidence names the 401s (a count or detail), not only the ops it quotes."""
    quoted = ("op_details", "ops", "times", "keys", "sessions")
    evidence = [{k: v for k, v in e.items() if k not in quoted} if isinstance(e, dict) else e
                for e in anomaly.get("evidence") or []]
    summary = {k: v for k, v in anomaly.items() if k != "evidence"}
    return re.search(r"\b401\b", json.dumps([summary, evidence])) is not None


# ---------------------------------------------------------------- 1. 401 to everything

@pytest.mark.parametrize("driver", ["run", "locust"])
def test_401_to_everything_is_a_finding_never_clean(driver, procs, tmp_path, fault_server):
    profile = fault_profile(tmp_path, fault_server("unauthorized"))
    proc, reports = drive(driver, procs, tmp_path, profile)
    o = finish(proc, reports)
    assert o.code == 1, o.why()
    assert o.valid is False, o.why()
    evidence = [a for a in o.anomalies if a.get("code") in NOT_CLEAN_CODES]
    assert evidence, f"no UNAVAILABLE/THRESHOLD_BREACHED finding: {o.why()}"
    assert any(mentions_401(a) for a in evidence), f"the finding does not name the 401s: {evidence}"
    assert any(op.get("outcome") == "fail" for op in o.hist.ops), o.summary()
    assert not any(op.get("outcome") == "ok" for op in o.hist.ops), f"a 401 counted ok: {o.summary()}"


# ---------------------------------------------------------------- 2. every connection dropped

@pytest.mark.parametrize("driver", ["run", "locust"])
def test_dropped_connections_are_never_clean(driver, procs, tmp_path, fault_server):
    profile = fault_profile(tmp_path, fault_server("close"))
    proc, reports = drive(driver, procs, tmp_path, profile)
    o = finish(proc, reports)
    assert o.code in (1, 3), o.why()
    assert o.results is not None and o.valid is not True, o.why()
    assert not any(op.get("outcome") == "ok" for op in o.hist.ops), f"an unanswered request counted ok: {o.summary()}"


# ---------------------------------------------------------------- 3. ready, then never answers

@pytest.mark.parametrize("driver", ["run", "locust"])
def test_server_that_never_answers_is_unknown(driver, procs, tmp_path, fault_server):
    profile = fault_profile(tmp_path, fault_server("hang"))
    proc, reports = drive(driver, procs, tmp_path, profile)
    o = finish(proc, reports)
    assert o.code == 3, o.why()
    assert o.valid == "unknown", o.why()
    assert o.hist.ops, f"no op recorded (timeout_s = 2 s must end each as info): {o.why()}"
    assert all(op.get("outcome") == "info" for op in o.hist.ops), o.summary()


# ---------------------------------------------------------------- 4. zero operations

def test_locust_with_zero_users_is_unknown(procs, tmp_path):
    """Zero-setup Locust (clean reference target) with -u 0: nothing was verified."""
    proc, reports = locust_driver(procs, tmp_path, users=0, run_time="3s")
    o = finish(proc, reports)
    assert o.code == 3, o.why()
    assert o.results is not None and o.valid == "unknown", o.why()
    assert not o.hist.ops, o.summary()


EVENT_ONLY = json.dumps({"type": "event", "kind": "phase", "process": "x", "wall": 0, "mono": 0,
                         "data": {"name": "start"}}) + "\n"


@pytest.mark.parametrize("content", ["", EVENT_ONLY], ids=["empty", "events-only"])
def test_check_of_a_history_without_ops_is_unknown(procs, tmp_path, content):
    run = tmp_path / "reports" / "shared_key" / "20260101T000000"
    (run / "history").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"scenario": "shared_key", "driver": "regression", "started": 0}))
    (run / "history" / "x.jsonl").write_text(content)
    proc = sessionstorm(procs, tmp_path, "check", str(run), name="sessionstorm-check")
    o = outcome_of(run, proc.wait(SHORT_TIMEOUT), proc)
    assert o.code == 3, o.why()
    assert o.results is None or o.valid == "unknown", o.why()


# ---------------------------------------------------------------- 5. target killed mid-run

def start_attached_reference(start_target: Callable[..., Any], tmp_path: Path) -> tuple[Any, Path]:
    """The reference target, started by this test (so it can kill it), and a base_url profile for it."""
    handle = start_target(["{python}", "-m", "sessionstorm.target", "serve"],
                          env={"SESSIONSTORM_TARGET_BUGS": ""}, name="attached")
    admin = handle.env.get("SESSIONSTORM_ADMIN_TOKEN", "sessionstorm-admin")
    keys = []
    for user in ("team-0", "team-1"):
        r = httpx.post(handle.url + "/admin/keys", json={"user": user},
                       headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        assert r.status_code == 200, r.text
        keys.append(r.json()["api_key"])
    assert handle.postgres is not None
    profile = fill_template("reference-attached.toml", tmp_path, port=handle.url.rsplit(":", 1)[1],
                            dsn=handle.postgres.dsn, keys=json.dumps(keys))
    return handle, profile


def attached_driver(driver: str, procs, tmp_path: Path, profile: Path, long: bool) -> tuple[Proc, Path]:
    if driver == "run":
        return run_driver(procs, tmp_path, "mixed", "--rounds", "400" if long else "3", profile=profile)
    return locust_driver(procs, tmp_path, run_time="12s" if long else "5s", profile=profile)


@pytest.mark.parametrize("driver", ["run", "locust"])
def test_attached_reference_target_is_clean(driver, procs, tmp_path, sessionstorm_start_target):
    """The control of the kill case: the same target and profile, not killed, is CLEAN."""
    _, profile = start_attached_reference(sessionstorm_start_target, tmp_path)
    proc, reports = attached_driver(driver, procs, tmp_path, profile, long=False)
    o = finish(proc, reports)
    assert o.code == 0, o.why()
    assert o.valid is True, o.why()
    assert_verified_and_no_failures(o)


@pytest.mark.parametrize("driver", ["run", "locust"])
def test_target_killed_mid_run_is_never_clean(driver, procs, tmp_path, sessionstorm_start_target):
    handle, profile = start_attached_reference(sessionstorm_start_target, tmp_path)
    proc, reports = attached_driver(driver, procs, tmp_path, profile, long=True)
    # Mid-run: some operations verified, then the target dies under the load.
    wait_for(lambda: count_ops(reports, "ok") >= 5, 90, "5 ok operations in the history", proc)
    time.sleep(1.0)
    assert proc.running(), f"the run ended before the kill (make it longer)\n{proc.tail()}"
    assert handle.pid is not None
    os.kill(handle.pid, signal.SIGKILL)
    o = finish(proc, reports)
    assert o.code != 0, o.why()
    assert o.results is not None and o.valid is not True, o.why()
    assert o.code in (1, 3), o.why()


# ---------------------------------------------------------------- 6. SIGINT mid-run

def assert_nothing_lost(o: Outcome) -> None:
    """Every invoked op has a completion (ok/fail) or an info record; the history is whole."""
    assert o.hist.ops, f"no op in the history: {o.why()}"
    assert not o.hist.corrupt, f"corrupt history lines: {o.hist.corrupt[:5]}"
    by_id: dict[Any, list[dict[str, Any]]] = {}
    for rec in o.hist.records:
        if rec.get("type") in ("op", "invoke"):  # an in-flight mark, if the history has one, needs its end
            by_id.setdefault(rec.get("id"), []).append(rec)
    open_ids = [i for i, recs in by_id.items() if not any(r.get("outcome") in OUTCOMES for r in recs)]
    assert not open_ids, f"{len(open_ids)} invoked ops without an outcome, e.g. {by_id[open_ids[0]][:2]}"


def locust_requests(proc: Proc) -> int | None:
    """Requests Locust itself counted (its last "Aggregated" stats row), or None if it printed none."""
    rows = re.findall(r"^\s*Aggregated\s+(\d+)\s+\d+\(", proc.stderr() + "\n" + proc.stdout(), re.MULTILINE)
    return int(rows[-1]) if rows else None


def descendants(proc: Proc) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return []


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def assert_no_leftovers(kids: list[psutil.Process], procs: list[Any]) -> None:
    """The harness's own children (stack services, target, workers) are gone after it exits."""
    deadline = time.monotonic() + 30
    alive = kids
    while alive and time.monotonic() < deadline:
        alive = [k for k in alive if _alive(k)]
        time.sleep(0.5)
    if alive:
        names = []
        for k in alive:
            try:
                names.append(f"{k.pid} {' '.join(k.cmdline()[:4])}")
            except psutil.Error:
                names.append(str(k.pid))
        for k in alive:  # started (indirectly) by this test: end them, by pid
            try:
                k.kill()
            except psutil.Error:
                pass
        pytest.fail(f"processes of the harness still running after it exited: {names}")


def signal_mid_run(proc: Proc, reports: Path, signals: tuple[int, ...]) -> tuple[Outcome, list[psutil.Process]]:
    wait_for(lambda: count_ops(reports, "ok") >= 5, 120, "5 ok operations in the history", proc)
    time.sleep(2.0)
    assert proc.running(), f"the run ended before the signal (make it longer)\n{proc.tail()}"
    kids = descendants(proc)
    for i, sig in enumerate(signals):
        if i:
            time.sleep(0.5)
        os.kill(proc.pid, sig)
    # Bounded: drain in-flight ops (timeout_s at most, 30 s for the reference profile), check, stop the stack.
    return finish(proc, reports, timeout=120), kids


def start_long_run(driver: str, procs: list[Any], tmp_path: Path) -> tuple[Proc, Path]:
    if driver == "run":
        return run_driver(procs, tmp_path, "mixed", "--rounds", "1000")
    return locust_driver(procs, tmp_path, run_time="30s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("driver", ["run", "locust"])
def test_signal_mid_run_marks_it_interrupted_and_loses_nothing(driver, sig, procs, tmp_path):
    proc, reports = start_long_run(driver, procs, tmp_path)
    o, kids = signal_mid_run(proc, reports, (sig,))
    assert o.meta is not None and o.meta.get("interrupted") is True, \
        f"run.json interrupted={(o.meta or {}).get('interrupted')!r}: {o.why()}"
    assert o.results is not None, f"no results.json after {sig.name}: {o.why()}"
    assert_nothing_lost(o)
    if driver == "locust":  # every request Locust counted is an op in the history
        counted = locust_requests(proc)
        assert counted is not None and len(o.hist.ops) >= counted, \
            f"Locust counted {counted} requests, the history has {len(o.hist.ops)} ops: {o.why()}"
    # The clean reference target: an op that failed means the stack was stopped under live users.
    failed = [op for op in o.hist.ops if op.get("outcome") == "fail"]
    assert not failed, f"{len(failed)} ops failed after {sig.name}, e.g. {failed[0].get('error')!r}: {o.summary()}"
    assert_no_leftovers(kids, procs)


@pytest.mark.parametrize("driver", ["run", "locust"])
def test_second_sigint_aborts_but_closes_the_history(driver, procs, tmp_path):
    proc, reports = start_long_run(driver, procs, tmp_path)
    o, kids = signal_mid_run(proc, reports, (signal.SIGINT, signal.SIGINT))
    assert o.run is not None and o.meta is not None, o.why()
    assert o.hist.ops and not o.hist.corrupt, f"history not closed cleanly: {o.hist.corrupt[:3]} {o.why()}"
    assert all(op.get("outcome") in OUTCOMES for op in o.hist.ops), o.summary()
    assert_no_leftovers(kids, procs)


# ---------------------------------------------------------------- 7. a Locust worker SIGKILLed

LOST_WORKER = re.compile(r"lost\W+(?:\w+\W+){0,3}worker|worker\W+(?:\S+\W+){0,6}lost", re.IGNORECASE)


def locust_workers(master: Proc) -> list[psutil.Process]:
    """The forked workers of `locust --processes N`: children running the master's command line
    (the stack's services are children too, with their own command lines)."""
    try:
        parent = psutil.Process(master.pid)
        cmdline = parent.cmdline()
        return [c for c in parent.children() if c.status() != psutil.STATUS_ZOMBIE and c.cmdline() == cmdline]
    except psutil.Error:
        return []


def worker_ops(reports: Path) -> int:
    return sum(1 for op in history(run_folder(reports)).ops
               if "worker" in str(op.get("process")) and op.get("outcome") == "ok")


def test_worker_sigkilled_is_reported_and_not_clean(procs, tmp_path):
    port = str(portpicker.pick_unused_port())  # not Locust's 5557: another test may run a master now
    proc, reports = locust_driver(procs, tmp_path, "--processes", "2", "--master-port", port, "--master-bind-port", port,
                                  run_time="15s")
    workers = wait_for(lambda: len(locust_workers(proc)) == 2 and locust_workers(proc), 60, "2 Locust workers", proc)
    wait_for(lambda: worker_ops(reports) >= 5, 90, "5 ok operations from the workers", proc)
    victim = workers[0]
    os.kill(victim.pid, signal.SIGKILL)
    o = finish(proc, reports)
    lost = (o.results or {}).get("lost_workers") or (o.meta or {}).get("lost_workers")
    assert isinstance(lost, list) and lost, f"lost_workers missing in results.json / run.json: {o.why()}"
    assert o.valid in (False, "unknown"), o.why()
    assert o.code in (1, 3), o.why()
    assert LOST_WORKER.search(proc.stderr()), f"stderr does not mention the lost worker\n{proc.tail()}"


# ---------------------------------------------------------------- 8. the clean twin

def test_clean_reference_target_locust_is_clean(procs, tmp_path):
    proc, reports = locust_driver(procs, tmp_path, run_time="5s")
    o = finish(proc, reports)
    assert o.code == 0, o.why()
    assert o.valid is True, o.why()
    assert_verified_and_no_failures(o)


def test_clean_reference_target_run_is_clean(procs, tmp_path):
    proc, reports = run_driver(procs, tmp_path, "shared_key")
    o = finish(proc, reports)
    assert o.code == 0, o.why()
    assert o.valid is True, o.why()
    assert_verified_and_no_failures(o)
