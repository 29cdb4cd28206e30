"""What the preflight found before load (sessionstorm.endpoints): two servers behind one name."""
from __future__ import annotations

from typing import Any

from sessionstorm.checker.base import Checker, Report, evidence


class Endpoints(Checker):
    name = "endpoints"
    kinds = frozenset()  # events only

    def __init__(self) -> None:
        self.findings: list[dict[str, Any]] = []

    def event(self, ev: dict[str, Any]) -> None:
        if ev.get("kind") == "preflight":
            self.findings += (ev.get("data") or {}).get("findings") or []

    def finish(self, report: Report) -> bool | None:
        for f in self.findings:
            report(f["code"], evidence([], f"{f['detail']}; {f['fix']}",
                                       **{k: v for k, v in f.items() if k not in ("code", "detail")}))
        return not self.findings
