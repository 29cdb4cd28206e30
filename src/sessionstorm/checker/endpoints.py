"""What the preflight found (sessionstorm.endpoints): two servers behind one name, before
load or in a probe repeated during it (`[target] reprobe_s`)."""
from __future__ import annotations

from typing import Any

from sessionstorm.checker.base import Checker, Report, evidence


def split_key(finding: dict[str, Any]) -> tuple[Any, ...]:
    """One split however often it is probed: its addresses and what differs (counts vary)."""
    return finding["code"], tuple(sorted(finding.get("addresses") or ())), tuple(finding.get("differs") or ())


class Endpoints(Checker):
    name = "endpoints"
    kinds = frozenset()  # events only

    def __init__(self) -> None:
        self.splits: dict[tuple[Any, ...], dict[str, Any]] = {}  # split -> its first finding and probes
        self.probes: list[dict[str, Any]] = []  # every probe: number, seconds after the start, error

    def scan(self, cols: Any) -> None:
        pass  # events only: they arrive by `event`

    def event(self, ev: dict[str, Any]) -> None:
        if ev.get("kind") != "preflight":
            return
        data = ev.get("data") or {}
        probe = data.get("probe") or 0
        self.probes.append({"probe": probe, "after_s": data.get("after_s"), "error": data.get("error")})
        for f in data.get("findings") or []:
            seen = self.splits.setdefault(split_key(f), {"finding": f, "probes": [], "after_s": data.get("after_s")})
            seen["probes"].append(probe)

    def finish(self, report: Report) -> bool | None:
        for seen in self.splits.values():
            f, probes = seen["finding"], sorted(seen["probes"])
            when = ""
            if probes[0] > 0:  # the preflight before load found one server: this one came later
                when = (f" (appeared during the run: first seen by probe {probes[0]}, {seen['after_s']} s after"
                        f" the start; the preflight before load found none)")
            report(f["code"], evidence([], f"{f['detail']}{when}; {f['fix']}",
                                       **{k: v for k, v in f.items() if k not in ("code", "detail")},
                                       probes=probes, probes_run=len(self.probes), first_after_s=seen["after_s"]))
        return not self.splits
