"""Checks a run folder: its history as columns (`sessionstorm.columns`), queried by every checker's
`scan`, its events fed one by one, then results.json.

Checkers compose like Jepsen's: the run is valid only if every checker is; any false
makes it false; otherwise any unknown (a checker that could not decide or crashed)
makes it unknown. Never a pass by default.
"""
from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from sessionstorm import plugins
from sessionstorm.checker.availability import Availability
from sessionstorm.checker.base import Checker
from sessionstorm.checker.catalogue import CODES, Tally, describe
from sessionstorm.checker.endpoints import Endpoints
from sessionstorm.checker.faults import Faults, fault_events
from sessionstorm.checker.invariants import Invariants
from sessionstorm.checker.observe import Observe
from sessionstorm.checker.replies import Replies, owners_of
from sessionstorm.checker.sessions import Churn, Conversations
from sessionstorm.checker.stats import DEFAULT_THRESHOLDS, Stats, judge_thresholds
from sessionstorm.columns import Columns
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


def contract_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The [contract] the run was judged against: the profile's, over the defaults."""
    from dataclasses import asdict

    from sessionstorm.profile.schema import ContractSection
    given = (((meta.get("target") or {}).get("profile") or {}).get("contract")) or {}
    fields = ContractSection.__dataclass_fields__
    return asdict(ContractSection(**{k: v for k, v in given.items() if k in fields}))


def check_run(run_dir: RunDir | str | Path, thresholds: dict[str, float] | None = None,
              write: bool = True, progress: bool = False, cols: Columns | None = None) -> dict[str, Any]:
    """`progress`: show a bar on a terminal (the commands do); off one it costs nothing. `cols`: the run's
    columns, opened by the caller (who closes them) to share them with the report (`Run.finish`)."""
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

    contract = contract_of(meta)  # what the service promises: each check judges only that
    replies = Replies(unattributed_fails=not llm_real, request_id=contract["request_id"])
    churn, stats, avail = Churn(contract), Stats(), Availability()
    checkers: list[Checker] = [avail, replies, churn, Conversations(), Observe(contract["observe"]), Invariants(),
                               Endpoints(), stats, *plugins.checkers(contract)]
    # Failures inside a fault window (+ grace) are availability under the fault: counted by
    # `faults`, kept out of availability, the error/unknown rates and per-reply failure codes.
    faults = Faults(fault_events(files), thresholds.get("recovery_s"))
    has_faults = bool(faults)
    if has_faults:
        checkers.append(faults)
    crashed: dict[str, str] = {}

    def crash(c: Checker) -> None:
        crashed.setdefault(c.name, traceback.format_exc(limit=3))

    t0 = time.monotonic()
    if cols is not None:
        opened: contextlib.AbstractContextManager[Columns] = contextlib.nullcontext(cols)  # the caller closes them
    else:
        from sessionstorm.progress import for_files
        update = for_files("checking", files) if progress else None  # None off a terminal: no bar
        opened = Columns(run.path, progress=update)
    with opened as cols:  # noqa: PLR1704  the columns given, or those opened here
        corrupt = [{"file": Path(c["path"]).name, "line": c["line"], "error": c["error"]} for c in cols.corrupt]
        # o: the ops; excused: a failure inside a fault window (+ grace), judged by `faults` alone
        cols.derive("o", f"SELECT *, {faults.excused_sql()} AS excused FROM h WHERE type = 'op'")
        n_ops = cols.one("SELECT count(*) FROM o")[0]
        events = [{"type": "event", "kind": kind, "process": process, "wall": wall, "mono": mono,
                   "data": orjson.loads(data) if data is not None else {}}
                  for kind, process, wall, mono, data in cols.con.execute(
                      "SELECT kind, process, wall, mono, data FROM h WHERE type = 'event' ORDER BY seq").fetchall()]
        for c in checkers:
            if getattr(c, "scan", None) is None:
                continue  # a plugin: fed below, record by record
            try:
                c.scan(cols)
            except Exception:
                crash(c)
        for ev in events:
            if has_faults and faults.excuse_event(ev):  # a snapshot that failed while its database was faulted
                continue
            for c in checkers:
                if c.name not in crashed and getattr(c, "scan", None) is not None:
                    try:
                        c.event(ev)
                    except Exception:
                        crash(c)
        wanted = replies.wanted() if replies.name not in crashed else set()
        if wanted:  # rare: only runs with crosstalk look for the canaries' owners
            replies.resolve(owners_of(cols, wanted))
    _feed([c for c in checkers if getattr(c, "scan", None) is None], files, crashed, crash)

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
    reasons = list(avail.reasons) + faults.reasons
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
        "interrupted": bool(meta.get("interrupted")), "lost_workers": lost, "stopped_by": meta.get("stopped_by"),
        "scenario": meta.get("scenario"), "ops": n_ops, "verified_ops": avail.verified(), "outcomes": stats.outcomes,
        "peers": avail.by_peer(),
        "anomalies": [_with_logs(describe(code, tallies[code]), run.path) for code in
                      [*CODES, *(c for c in tallies if c not in CODES)] if code in tallies],
        "checkers": verdicts, "corrupt_lines": corrupt[:100], "corrupt_count": len(corrupt),
        "stats": summary, "contract": contract, "faults": faults.summary(), "thresholds": thresholds, "threshold_rows": rows, "check_seconds": round(time.monotonic() - t0, 3),
    }
    if write:
        run.write_json("results.json", results)
    return results


def _feed(plugins: list[Checker], files: list[Path], crashed: dict[str, str], crash: Callable[[Checker], None]) -> None:
    """Checkers without `scan` (plugins) see every record, as the history holds it, in history order."""
    if not plugins:
        return
    for rec in iter_records(files):
        rtype = rec["type"]
        for c in plugins:
            if c.name in crashed:
                continue
            try:
                if rtype == "op" and (c.kinds is None or rec.get("kind") in c.kinds):
                    c.op(rec)
                elif rtype == "event":
                    c.event(rec)
            except Exception:
                crash(c)


LOG_MARKERS = ("Traceback", "Error", "ERROR", "Exception", "FATAL", "panic")


def _with_logs(anomaly: dict[str, Any], run_path: Path, lines: int = 40) -> dict[str, Any]:
    """A SERVER_ERROR finding carries what the target logged about it: the lines around its
    log's error markers (logs/ of the run folder, kept by the Run)."""
    if anomaly["code"] != "SERVER_ERROR":
        return anomaly
    excerpt: list[str] = []
    for log in sorted((run_path / "logs").glob("target-*.log")):
        text = log.read_text(errors="replace").splitlines()
        hits = [i for i, line in enumerate(text) if any(m in line for m in LOG_MARKERS)]
        if hits:
            start = max(0, hits[0] - 2)
            excerpt += [f"{log.name}:{start + k + 1}: {line}" for k, line in enumerate(text[start:start + lines])]
    anomaly["log_excerpt"] = excerpt[:lines]
    return anomaly


def exit_code(results: dict[str, Any]) -> int:
    return {True: 0, False: 1}.get(results["valid"], 3)
