"""Fault specs: ``ACTION:COMPONENT@START[+DURATION][,key=value...]``, parsed and validated.

    kill:target@5+3          SIGKILL the target at 5 s, start it again 3 s later
    restart:postgres@10      stop gracefully and start again (same port, same data)
    pause:redis@8+4          SIGSTOP for 4 s, then SIGCONT
    error:provider@5+5       the stub answers 500 for 5 s (rate=0.5: half of the requests)
    latency:provider@5+5     the stub adds latency for 5 s (latency=800ms; default 1000 ms)
    drop:target@5+2          connections to the target are reset for 2 s (a loopback proxy)

Times are seconds from the start of the run (``5``, ``5s``, ``500ms``, ``1.5``). The same
faults can be written in a target profile as ``[[faults]]`` tables (``fault = "kill:target@5+3"``
or ``action``, ``component``, ``at``, ``duration`` and options as keys).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sessionstorm.errors import ConfigError

COMPONENTS = ("target", "postgres", "redis", "provider")
# action -> (components it applies to, a duration is required)
ACTIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "kill": (COMPONENTS, False),
    "restart": (COMPONENTS, False),
    "pause": (COMPONENTS, True),
    "error": (("provider",), True),
    "latency": (("provider",), True),
    "drop": (("target",), True),
}
OPTIONS = {"error": {"rate": (0.0, 1.0)}, "latency": {"latency": (0.0, 600_000.0)}}  # name -> (lo, hi)
DEFAULT_LATENCY_MS = 1000.0
EXAMPLE = "kill:target@5+3"
_SPEC = re.compile(r"^(?P<action>[a-z]+):(?P<component>[a-z]+)@(?P<at>[^+,]+)(?:\+(?P<dur>[^,]+))?(?P<opts>(?:,[^,]+)*)$")
_TIME = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s)?$")


@dataclass(frozen=True, slots=True)
class Fault:
    action: str
    component: str
    at_s: float
    duration_s: float | None = None
    options: Mapping[str, float] = field(default_factory=dict)
    spec: str = ""

    @property
    def id(self) -> str:
        return self.spec

    def as_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "action": self.action, "component": self.component, "at_s": self.at_s,
                "duration_s": self.duration_s, "options": dict(self.options)}


def _seconds(text: str, spec: str, what: str) -> float:
    m = _TIME.match(text.strip())
    if not m:
        raise ConfigError("fault", spec, f"a {what} in seconds (5, 5s, 500ms) in ACTION:COMPONENT@START[+DURATION]",
                          f"write it like --fault {EXAMPLE}")
    value = float(m[1])
    return value / 1000 if m[2] == "ms" else value


def parse_fault(spec: str) -> Fault:
    """One spec, or a one-line ConfigError telling the fix."""
    text = spec.strip()
    m = _SPEC.match(text)
    if not m:
        raise ConfigError("fault", spec, "ACTION:COMPONENT@START[+DURATION] (e.g. kill:target@5+3)",
                          f"actions: {', '.join(ACTIONS)}; components: {', '.join(COMPONENTS)}")
    action, component = m["action"], m["component"]
    if action not in ACTIONS:
        raise ConfigError("fault", spec, f"an action among {', '.join(ACTIONS)}", f"write it like --fault {EXAMPLE}")
    allowed, needs_duration = ACTIONS[action]
    if component not in allowed:
        raise ConfigError("fault", spec, f"{action} on {' or '.join(allowed)}",
                          f"components of {action}: {', '.join(allowed)}")
    at = _seconds(m["at"], spec, "start")
    dur = _seconds(m["dur"], spec, "duration") if m["dur"] else None
    if needs_duration and not dur:
        raise ConfigError("fault", spec, f"a duration for {action} (+SECONDS)", f"write it like --fault {action}:{component}@{m['at']}+3")
    options: dict[str, float] = {}
    for item in filter(None, (m["opts"] or "").split(",")):
        name, sep, value = item.partition("=")
        known = OPTIONS.get(action, {})
        if not sep or name not in known:
            raise ConfigError("fault", spec, f"options of {action}: {', '.join(known) or 'none'}",
                              f"drop ',{item}' or write it like {action}:{component}@5+5,{next(iter(known), 'x')}=...")
        lo, hi = known[name]
        num = _seconds(value, spec, name) * 1000 if name == "latency" else _number(value, spec, name)
        if not lo <= num <= hi:
            raise ConfigError("fault", spec, f"{name} from {lo:g} to {hi:g}", "fix the option's value")
        options[name] = num
    return Fault(action, component, at, dur, options, text)


def _number(value: str, spec: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError("fault", spec, f"a number for {name}", "fix the option's value") from None


def from_table(table: Mapping[str, Any], where: str = "[[faults]]") -> Fault:
    """A ``[[faults]]`` table of a profile: ``fault = "..."`` or action/component/at/duration keys."""
    if "fault" in table:
        return parse_fault(str(table["fault"]))
    try:
        spec = f"{table['action']}:{table['component']}@{table['at']}"
    except KeyError as e:
        raise ConfigError(where, dict(table), f"fault = \"{EXAMPLE}\" or the keys action, component, at",
                          f"add {e.args[0]} to the table") from None
    if table.get("duration") is not None:
        spec += f"+{table['duration']}"
    for k, v in table.items():
        if k not in ("action", "component", "at", "duration"):
            spec += f",{k}={v}"
    return parse_fault(spec)


def parse_faults(specs: Iterable[str | Fault | Mapping[str, Any]] | None) -> list[Fault]:
    out = []
    for s in specs or ():
        out.append(s if isinstance(s, Fault) else from_table(s) if isinstance(s, Mapping) else parse_fault(s))
    return sorted(out, key=lambda f: f.at_s)


def end_s(f: Fault) -> float:
    return f.at_s + (f.duration_s or 0.0)
