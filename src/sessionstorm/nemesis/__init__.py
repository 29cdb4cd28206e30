"""The nemesis: scheduled faults (kill, restart, pause, provider errors and latency,
dropped connections), applied at their times during a run and recorded in its history.

    faults = parse_faults(["kill:target@5+3", "restart:postgres@10"])
    check_faults(faults, backend="embedded", target_launched=True)   # one ConfigError line, before start
    nemesis = Nemesis(faults, run_dir, controls).start()              # a real thread: asyncio and gevent alike
    ... drive ...
    nemesis.stop()     # undoes an active fault, records the ones that never started

Every fault leaves ``fault`` events in ``history/<host>-<pid>-nemesis.jsonl``: one at its
start (``phase="start"``) and one at its end (``phase="end"``, once the component answers
again), each saying whether it was ``applied`` and, if not, the ``error``; a fault the run
ended before is ``phase="skipped"``. The checker (`sessionstorm.checker.faults`) judges the
run relative to these windows.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from sessionstorm.errors import ConfigError
from sessionstorm.history import HistoryWriter, process_name
from sessionstorm.nemesis.components import (
    ContainerControl,
    ProcessControl,
    ProviderSwitch,
)
from sessionstorm.nemesis.proxy import DropProxy
from sessionstorm.nemesis.spec import (
    ACTIONS,
    COMPONENTS,
    DEFAULT_LATENCY_MS,
    Fault,
    end_s,
    from_table,
    parse_fault,
    parse_faults,
)

__all__ = ["ACTIONS", "COMPONENTS", "ContainerControl", "DropProxy", "Fault", "Nemesis", "ProcessControl",
           "ProviderSwitch", "check_faults", "controls_for", "end_s", "from_table", "parse_fault", "parse_faults"]

PROCESS_ACTIONS = ("kill", "restart", "pause")


def check_faults(faults: list[Fault], *, backend: str | None, target_launched: bool) -> None:
    """Refuse, before anything starts, a fault the run could not apply."""
    for f in faults:
        if f.component == "target" and f.action in PROCESS_ACTIONS and not target_launched:
            raise ConfigError("fault", f.spec, "a target the stack launches (kill/restart/pause act on its process)",
                              "drop --host / target.base_url, or use drop:target (a proxy works for any URL)")
        if f.component in ("postgres", "redis", "provider") and backend not in ("embedded", "docker"):
            raise ConfigError("fault", f.spec, f"a {f.component} the stack runs (embedded or docker backend)",
                              f"an external {f.component} cannot be faulted: use --backend embedded or docker")
        if f.component in ("postgres", "redis", "provider") and not target_launched:
            raise ConfigError("fault", f.spec, f"a target using the stack's {f.component}",
                              "a service at --host / target.base_url does not use the stack: drop the fault or launch it")
    overlap = [(a, b) for i, a in enumerate(faults) for b in faults[i + 1:]
               if a.component == b.component and b.at_s < end_s(a) + 0.001 and a.action != "latency"]
    if overlap:
        a, b = overlap[0]
        raise ConfigError("fault", b.spec, f"no overlap with {a.spec} on the same component",
                          "start it after the other one ends")


def controls_for(stack: Any, target: Any) -> dict[str, Any]:
    """component -> its control (process or container), from a running stack and target handle."""
    out: dict[str, Any] = {}
    backend = getattr(stack, "backend", None)
    if backend is not None and hasattr(backend, "fault_control"):
        for comp in ("postgres", "redis", "provider"):
            c = backend.fault_control(comp)
            if c is not None:
                out[comp] = c
    handle = getattr(target, "handle", None)
    control = getattr(handle, "control", None)
    if control is not None:
        out["target"] = control
    return out


class Nemesis:
    """Applies faults at their times (seconds after `start`) in a thread of its own."""

    def __init__(self, faults: list[Fault], history_path: Any, controls: Mapping[str, Any], *,
                 provider_url: str | None = None, proxy: DropProxy | None = None,
                 progress: Callable[[str], None] | None = None, gate: threading.Event | None = None) -> None:
        self.faults = faults
        # With a gate, fault times count from when it opens instead of from start(): a driver
        # that prepares before its load (keys, sessions: seconds on a busy machine) opens it once
        # the load runs, so a fault never lands in the preparation.
        self.gate = gate
        self.controls = dict(controls)
        self.provider_url, self.proxy = provider_url, proxy
        self.progress = progress or (lambda m: None)
        self.history = HistoryWriter(history_path, process_name("nemesis"))
        # A thread of its own: an OS thread beside an asyncio driver; under Locust, where gevent
        # patched threading, a greenlet whose waits, sockets and subprocesses are gevent's too.
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sessionstorm-nemesis", daemon=True)
        self._t0 = 0.0
        self._state: dict[str, str] = {}  # spec -> "pending" | "active" | "done"
        self._switch: dict[str, ProviderSwitch] = {}
        self._ended: list[float] = []  # time.time() after each fault's end record
        self.records: list[dict[str, Any]] = []

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> Nemesis:
        self._t0 = time.monotonic()
        self.history.event("nemesis", faults=[f.as_dict() for f in self.faults])
        self._state = {f.spec: "pending" for f in self.faults}
        self._thread.start()
        return self

    def stop(self) -> None:
        """End what is active (components start again), record what never started. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(READY_JOIN_S)
        for f in self.faults:
            state = self._state.get(f.spec)
            if state == "active":
                self._end(f, cut_short=True)
            elif state == "pending":
                self._record(f, "skipped", False, "the run ended before its start time")
                self._state[f.spec] = "done"
        if self.proxy is not None:
            self.proxy.stop()
        self.history.close()

    def _loop(self) -> None:
        if self.gate is not None:
            waiting = time.monotonic()
            while not self.gate.wait(0.02):
                if self._stop.is_set() or time.monotonic() - waiting > GATE_MAX_S:
                    break
            if self._stop.is_set():
                return  # stop() records the faults as skipped
            self._t0 = time.monotonic()
            self.history.event("fault_clock", opened=self.gate.is_set(), waited_s=round(self._t0 - waiting, 3))
        steps = sorted([(f.at_s, 0, i, f) for i, f in enumerate(self.faults)]
                       + [(end_s(f), 1, i, f) for i, f in enumerate(self.faults)], key=lambda s: s[:3])
        for when, phase, _, f in steps:
            if self._stop.wait(max(0.0, self._t0 + when - time.monotonic())):
                return
            try:
                if phase == 0 and self._state.get(f.spec) == "pending":
                    self._begin(f)
                elif phase == 1 and self._state.get(f.spec) == "active":
                    self._end(f)
            except Exception:  # never let the scheduler die silently: the record says why
                self._record(f, "error", False, traceback.format_exc(limit=2))

    def ended_wall(self) -> float | None:
        """When the last fault ended (``time.time()``, taken after its end record, so an op
        invoked later is after the end for the checker too); None while any is pending or
        active, or when one never ended (not applied: the run is unknown anyway)."""
        if len(self._ended) < len(self.faults):
            return None
        return max(self._ended, default=None)

    # -- actions ------------------------------------------------------------------------
    def _record(self, f: Fault, phase: str, applied: bool, error: str | None, **more: Any) -> None:
        rec = {"id": f.spec, "spec": f.spec, "action": f.action, "component": f.component, "phase": phase,
               "applied": applied, "error": error, "planned_s": f.at_s if phase != "end" else end_s(f),
               "at_s": round(time.monotonic() - self._t0, 3), **more}
        self.records.append(rec)
        self.history.event("fault", **rec)
        self.history.flush()
        word = "applied" if applied else f"NOT applied ({error})"
        self.progress(f"fault {f.spec}: {phase} {word if phase == 'start' or not applied else ''}".rstrip())

    def _begin(self, f: Fault) -> None:
        self._state[f.spec] = "active"
        began = time.time()  # the window opens when the action begins (a graceful stop takes a while)
        try:
            self._apply(f)
        except Exception as e:
            self._state[f.spec] = "done"
            self._record(f, "start", False, f"{type(e).__name__}: {e}"[:300], began_wall=began)
            return
        self._record(f, "start", True, None, began_wall=began)

    def _end(self, f: Fault, cut_short: bool = False) -> None:
        self._state[f.spec] = "done"
        t = time.monotonic()
        try:
            self._undo(f)
        except Exception as e:
            self._record(f, "end", False, f"{type(e).__name__}: {e}"[:300], cut_short=cut_short)
            return
        self._record(f, "end", True, None, cut_short=cut_short, back_in_s=round(time.monotonic() - t, 3))
        self._ended.append(time.time())

    def _control(self, f: Fault) -> Any:
        c = self.controls.get(f.component)
        if c is None:
            raise RuntimeError(f"no control of {f.component} in this run")
        return c

    def _apply(self, f: Fault) -> None:
        if f.action == "kill":
            self._control(f).kill()
        elif f.action == "restart":
            self._control(f).stop()
        elif f.action == "pause":
            self._control(f).pause()
        elif f.action in ("error", "latency"):
            if not self.provider_url:
                raise RuntimeError("no stub provider in this run")
            sw = self._switch[f.spec] = ProviderSwitch(self.provider_url)
            sw.set({"fault_500": f.options.get("rate", 1.0)} if f.action == "error"
                   else {"delay_ms": f.options.get("latency", DEFAULT_LATENCY_MS)})
        elif f.action == "drop":
            if self.proxy is None:
                raise RuntimeError("no drop proxy in front of the target")
            self.proxy.drop(True)

    def _undo(self, f: Fault) -> None:
        if f.action in ("kill", "restart"):
            self._control(f).start()
        elif f.action == "pause":
            self._control(f).resume()
        elif f.action in ("error", "latency"):
            self._switch[f.spec].restore()
        elif f.action == "drop":
            assert self.proxy is not None
            self.proxy.drop(False)


READY_JOIN_S = 120.0  # stop() waits this long for a step in progress (a component starting again)
GATE_MAX_S = 120.0    # a gate that never opens: the clock starts anyway (the run's own bound ends it first)


# -- the Run's side (sessionstorm.run.Run calls these three) ------------------------------
def plan(faults: Any, profile: Any, *, backend: str | None, stack: Any, target: Any, host: str | None) -> list[Fault]:
    """The run's faults (command line, then the profile's ``[[faults]]``), validated before start."""
    out = parse_faults([*(faults or ()), *getattr(profile, "faults", ())])
    if not out:
        return out
    if stack is not None:
        backend_name = getattr(stack, "backend_name", None)
    else:
        from sessionstorm.stack import resolve_backend
        backend_name = resolve_backend(backend)
    if target is not None:
        launched = getattr(getattr(target, "handle", None), "control", None) is not None
    else:
        launched = not (host or profile.target.base_url)
    check_faults(out, backend=backend_name, target_launched=launched)
    return out


def put_proxy(run: Any) -> DropProxy | None:
    """With a drop fault, a proxy in front of the target: the run's target URL becomes the proxy's."""
    if not any(f.action == "drop" for f in run.faults):
        return None
    from urllib.parse import urlsplit

    from sessionstorm.profile import with_base_url
    from sessionstorm.stack.launch import RunningTarget

    t = run.target
    u = urlsplit(t.url)
    if u.scheme != "http":
        raise ConfigError("fault", "drop:target", "an http:// target (the proxy does not speak TLS)",
                          "drop the drop fault for an https target")
    proxy = DropProxy(u.hostname or "127.0.0.1", u.port or 80).start()
    run.target = RunningTarget(with_base_url(t.profile, proxy.url), proxy.url, t.dsn, t.values, t.handle)
    run.progress(f"drop proxy on {proxy.url} in front of {t.url}")
    return proxy


def start_for(run: Any, proxy: DropProxy | None, stack: Any) -> Nemesis:
    """The run's nemesis, started: its clock is the run's (fault times count from here)."""
    provider = None
    try:
        provider = stack.provider.url if stack is not None else None
    except Exception:
        provider = None
    # run.fault_gate: opened by a driver whose fault times count from its load (runner, regression)
    n = Nemesis(run.faults, run.dir.history_path(process_name("nemesis")), controls_for(stack, run.target),
                provider_url=provider, proxy=proxy, progress=run.progress, gate=run.fault_gate)
    run.progress("faults: " + ", ".join(f.spec for f in run.faults))
    return n.start()
