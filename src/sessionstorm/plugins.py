"""Extension points reached without editing sessionstorm: entry points of installed packages.

In your package's pyproject.toml::

    [project.entry-points."sessionstorm.scenarios"]
    bulk_observe = "mypkg.load:BulkObserve"        # a sessionstorm.scenarios.Scenario subclass

    [project.entry-points."sessionstorm.checkers"]
    quota = "mypkg.checks:QuotaChecker"           # a sessionstorm.checker.base.Checker subclass

A scenario is run by its entry-point name (``sessionstorm run bulk_observe``, the regression
suite); a checker class is instantiated once per check (with the run's contract if its
constructor takes ``contract``) and sees every op like the built-in ones. A plugin that
cannot be loaded is reported, never skipped silently: a scenario as a one-line error when
named, a checker as an ``unknown`` verdict.
"""
from __future__ import annotations

import functools
import inspect
import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Any

SCENARIO_GROUP = "sessionstorm.scenarios"
CHECKER_GROUP = "sessionstorm.checkers"


def add_scenarios(registry: dict[str, Any]) -> dict[str, Any]:
    """Add the installed scenario entry points to ``registry`` (built-in names win)."""
    from sessionstorm.errors import ConfigError

    for ep in entry_points(group=SCENARIO_GROUP):
        if ep.name in registry:
            continue
        try:
            cls = ep.load()
        except Exception as e:  # noqa: BLE001  a broken plugin must not break every command
            registry[ep.name] = _broken(ep.name, ep.value, e, ConfigError)
            continue
        registry[ep.name] = cls
    return registry


def _broken(name: str, value: str, exc: Exception, error: type) -> type:
    from sessionstorm.scenarios import Scenario

    class Broken(Scenario):
        def __init__(self, **overrides: int) -> None:
            raise error(f"scenario {name}", value, f"an importable Scenario ({type(exc).__name__}: {exc})",
                        f"fix the entry point {name!r} in group {SCENARIO_GROUP}")
    Broken.name = name  # type: ignore[misc]
    return Broken


class _Unloadable:
    """A checker entry point that failed to load: its verdict is unknown, with the reason."""

    kinds: frozenset[str] | None = frozenset()

    def __init__(self, name: str, error: str) -> None:
        self.name, self.error = name, error

    def op(self, op: dict[str, Any]) -> None:
        pass

    def event(self, ev: dict[str, Any]) -> None:
        pass

    def finish(self, report: Any) -> bool | None:
        raise RuntimeError(self.error)


@functools.lru_cache(maxsize=8)
def _entry_points(group: str, path: tuple[str, ...]) -> tuple[EntryPoint, ...]:
    """Entry points scan every installed distribution (~3-10 ms): once per process and ``sys.path``."""
    return tuple(entry_points(group=group))


def checkers(contract: dict[str, Any]) -> list[Any]:
    """One instance of every installed checker entry point."""
    out: list[Any] = []
    for ep in _entry_points(CHECKER_GROUP, tuple(sys.path)):
        try:
            cls = ep.load()
            from sessionstorm.checker.catalogue import CATALOGUE
            for code, meta in (getattr(cls, "codes", None) or {}).items():  # {"CODE": (severity, explanation)}
                CATALOGUE.setdefault(code, tuple(meta))
            takes = "contract" in inspect.signature(cls).parameters
            c = cls(contract=contract) if takes else cls()
            c.name = getattr(c, "name", None) if getattr(c, "name", "checker") != "checker" else ep.name
        except Exception as e:  # noqa: BLE001
            c = _Unloadable(ep.name, f"entry point {ep.name} = {ep.value} failed to load: {type(e).__name__}: {e}")
        out.append(c)
    return out
