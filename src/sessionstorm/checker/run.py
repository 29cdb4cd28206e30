"""Checks a run folder: one pass over its history through every checker, then results.json.

Checkers compose like Jepsen's: the run is valid only if every checker is; any false
makes it false; otherwise any unknown (a checker that could not decide or crashed)
makes it unknown. Never a pass by default.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sessionstorm.checker.availability import Availability
from sessionstorm.checker.base import Checker
from sessionstorm.checker.catalogue import CODES, Tally, describe
from sessionstorm.checker.invariants import Invariants
from sessionstorm.checker.observe import Observe
from sessionstorm.checker.replies import Replies, find_owners
from sessionstorm.checker.sessions import Churn, Conversations
from sessionstorm.checker.stats import DEFAULT_THRESHOLDS, Stats, judge_thresholds
from sessionstorm.errors import ConfigError
from sessionstorm.history import history_files, iter_records
from sessionstorm.rundir import RunDir

Valid = bool | str  # True, False or "unknown"


VERDICTS = {True: "CLEAN", False: "ANOMALIES", "unknown": "UNKNOWN"}


def compose(results: list[bool | None]) -> Valid:
    if any(r is False for r in results):
        return False
    if any(r is None for r in results):
        return "unknown"
    return True


def check_run(run_dir: RunDir | str | Path, thresholds: dict[str, float] | None = None,
              write: bool = True) -> dict[str, Any]:
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if not run.path.is_dir():
        raise ConfigError("run folder", run.path, "an existing run folder", "pass a folder under reports/")
    files = history_files(run.path)
    if not files and not (run.path / "run.json").exists():
        raise ConfigError("run folder", run.path, "a folder with run.json or history/*.jsonl",
                          "point at a run folder written by sessionstorm")
    meta = run.read_json("run.json") if (run.path / "run.json").exists() else {}
    llm_real = ((meta.get("target") or {}).get("profile") or {}).get("target", {}).get("llm") == "real"
    # defaults < what the run recorded (profile and command line) < what this check is given
    thresholds = {**DEFAULT_THRESHOLDS, **(meta.get("thresholds") or {}), **(thresholds or {})}

    replies, churn, stats, avail = Replies(unattributed_fails=not llm_real), Churn(), Stats(), Availability()
    checkers: list[Checker] = [avail, replies, churn, Conversations(), Observe(), Invariants(), stats]
    crashed: dict[str, str] = {}
    by_kind: dict[str | None, list[tuple[Checker, Callable[[dict[str, Any]], None]]]] = {}  # kind -> (checker, op)

    def route(kind: str | None) -> list[tuple[Checker, Callable[[dict[str, Any]], None]]]:
        by_kind[kind] = [(c, c.op) for c in checkers if c.name not in crashed and (c.kinds is None or kind in c.kinds)]
        return by_kind[kind]

    def crash(c: Checker) -> None:
        crashed[c.name] = traceback.format_exc(limit=3)
        by_kind.clear()

    corrupt: list[dict[str, Any]] = []
    n_ops = 0
    t0 = time.monotonic()
    for rec in iter_records(files, on_corrupt=lambda f, n, e: corrupt.append({"file": f.name, "line": n, "error": e})):
        rtype = rec["type"]
        if rtype == "op":
            n_ops += 1
            kind = rec.get("kind")
            handlers = by_kind.get(kind)  # the hot path: no call to route once a kind is known
            for c, op in route(kind) if handlers is None else handlers:
                try:
                    op(rec)
                except Exception:
                    crash(c)
        elif rtype == "event":
            for c in checkers:
                if c.name not in crashed:
                    try:
                        c.event(rec)
                    except Exception:
                        crash(c)
    wanted = replies.wanted()
    if wanted:  # rare: only runs with crosstalk pay for a second pass
        replies.resolve(find_owners(files, wanted))

    tallies: dict[str, Tally] = {}

    def report(code: str, ev: dict[str, Any]) -> None:
        tallies.setdefault(code, Tally()).add(ev)

    verdicts: dict[str, dict[str, Any]] = {}
    for c in checkers:
        if c.name in crashed:
            verdicts[c.name] = {"valid": "unknown", "error": crashed[c.name]}
            continue
        try:
            v = c.finish(report)
            verdicts[c.name] = {"valid": "unknown" if v is None else v, "error": None}
        except Exception:
            verdicts[c.name] = {"valid": "unknown", "error": traceback.format_exc(limit=3)}
    summary = stats.summary(churn.reuse_ratio())
    reasons = list(avail.reasons)
    rows: list[dict[str, Any]] = []
    if avail.verified():  # thresholds judge a service that answered; with nothing verified they prove nothing
        held, rows = judge_thresholds(summary, thresholds, report)
        verdicts["thresholds"] = {"valid": "unknown" if held is None else held, "error": None}
        reasons += [f"{r['name']} {r['value']} breaches {r['rule']}" for r in rows if r["held"] is False and held is None]
    lost = meta.get("lost_workers") or []
    if lost:  # a lost worker's operations may be missing from the history: nothing can be claimed for them
        verdicts["workers"] = {"valid": "unknown", "error": None}
        reasons.append(f"{len(lost)} Locust worker(s) lost mid-run: {', '.join(map(str, lost))}")
    if corrupt:
        verdicts["history"] = {"valid": "unknown", "error": None}
        reasons.append(f"{len(corrupt)} corrupt history line(s): those operations could not be checked")
    valid = compose([v["valid"] if v["valid"] != "unknown" else None for v in verdicts.values()])
    results = {
        "valid": valid, "verdict": VERDICTS[valid], "reasons": reasons,
        "interrupted": bool(meta.get("interrupted")), "lost_workers": lost,
        "scenario": meta.get("scenario"), "ops": n_ops, "verified_ops": avail.verified(), "outcomes": stats.outcomes,
        "anomalies": [describe(code, tallies[code]) for code in CODES if code in tallies],
        "checkers": verdicts, "corrupt_lines": corrupt[:100], "corrupt_count": len(corrupt),
        "stats": summary, "thresholds": thresholds, "threshold_rows": rows, "check_seconds": round(time.monotonic() - t0, 3),
    }
    if write:
        run.write_json("results.json", results)
    return results


def exit_code(results: dict[str, Any]) -> int:
    return {True: 0, False: 1}.get(results["valid"], 3)
