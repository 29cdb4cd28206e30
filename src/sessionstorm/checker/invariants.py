"""Database invariants, from the snapshot events the stack and drivers record."""
from __future__ import annotations

from typing import Any

from sessionstorm.checker.base import Checker, Report


class Invariants(Checker):
    name = "invariants"
    kinds = frozenset()

    def __init__(self) -> None:
        self.snapshots: list[dict[str, Any]] = []

    def scan(self, cols: Any) -> None:
        pass  # events only: they arrive by `event`

    def event(self, ev: dict[str, Any]) -> None:
        if ev.get("kind") == "snapshot":
            self.snapshots.append({**ev.get("data", {}), "wall": ev.get("wall")})

    def finish(self, report: Report) -> bool | None:
        if not self.snapshots:
            return True  # nothing asked of the database
        ok: bool | None = True
        for s in self.snapshots:
            if s.get("error"):
                ok = None if ok else ok  # could not look: unknown unless already false
                continue
            rows = s.get("rows") or []
            if rows:
                ok = False
                report("INVARIANT_VIOLATED", {"ops": [], "keys": [], "sessions": [], "times": [[s.get("wall")] * 2],
                                              "invariant": s.get("invariant"), "when": s.get("when"),
                                              "rows": rows[:20], "sql": s.get("sql"),
                                              "detail": f"{s.get('invariant')}: {len(rows)} violating row(s) "
                                                        f"({s.get('when')})"})
        return ok
