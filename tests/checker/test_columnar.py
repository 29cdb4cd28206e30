"""Columnar checking: each checker's `scan` (SQL over the columns) decides as its record-by-record `op`
does; corrupt lines are named wherever they are; the columnar cache is reused until a file changes."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from sessionstorm.checker import check_run
from sessionstorm.checker.observe import Observe
from sessionstorm.checker.replies import Replies
from sessionstorm.checker.sessions import Churn, Conversations
from sessionstorm.columns import Columns
from sessionstorm.history import HistoryWriter


def random_history(seed: int, n: int = 400) -> list[dict[str, Any]]:
    """Few users, sessions, values and times, so that every rule meets collisions, ties and gaps."""
    rng = random.Random(seed)
    pick = rng.choice
    ops = []
    for i in range(n):
        t = round(rng.uniform(0, 60), 1)  # coarse: equal times happen
        kind = pick(["chat", "chat_stream", "message", "create_session", "observe", "read_session", "delete_session"])
        op: dict[str, Any] = {"id": f"op{i % (n - 3)}", "kind": kind, "outcome": pick(["ok"] * 6 + ["fail", "info"]),
                              "status": pick([200, 200, 404, 500]), "invoke_wall": 1000 + t,
                              "complete_wall": 1000 + t + pick([0.1, 0.5, 3.0]), "key": pick(["fp_a", "fp_b", None]),
                              "user": pick(["u1", "u2", "u3"]), "session_seen": pick(["s1", "s2", "s3", None, ""]),
                              "session_sent": pick(["s1", "s2", None]), "model_asked": pick(["m1", "m2", None]),
                              "model_served": pick(["m1", "m2"]), "canaries_sent": [f"C{i}"],
                              "canaries_seen": pick([[f"C{i}"], [f"C{i}"], [f"C{max(i - 1, 0)}"], []]),
                              "request_id_sent": f"r{i}", "request_id_seen": pick([f"r{i}", f"r{i}", f"g{i % 7}", None]),
                              "error": pick([None, "SESSION_NOT_FOUND", "session expired"]), "turn": pick([1, 1, 2, 3, None]),
                              "value": pick([f"v{i % 30}", None, ""]), "not_found": pick([None, None, True]),
                              "reply_excerpt": pick(["x", None]), "peer": pick(["127.0.0.1:1", "[::1]:1"])}
        if kind in ("read_session", "message") and rng.random() < 0.7:
            op["values"] = rng.sample([f"v{j}" for j in range(30)], rng.randint(0, 30))
        ops.append({k: v for k, v in op.items() if v is not None})
    return ops


def write(tmp: Path, ops: list[dict[str, Any]]) -> Path:
    with HistoryWriter(tmp / "history" / "p.jsonl", process="p") as w:
        for o in ops:
            w.op(**o)
    return tmp


def findings(checker: Any) -> tuple[Any, list[tuple[str, Any]]]:
    found: list[tuple[str, Any]] = []
    valid = checker.finish(lambda code, ev: found.append((code, ev)))
    return valid, found


FACTORIES = {
    "churn": lambda: Churn(),
    "churn-pooled": lambda: Churn({"provider_sessions": "pooled", "max_new_sessions_per_key": 2}),
    "conversations": Conversations,
    "observe": Observe,
    "replies": lambda: Replies(),
    "replies-own": lambda: Replies(request_id="own"),
}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_scan_decides_as_op_does(tmp_path, seed, name, storage):
    ops = random_history(seed)
    by_op = FACTORIES[name]()
    for o in ops:
        if by_op.kinds is None or o["kind"] in by_op.kinds:
            by_op.op({"type": "op", "process": "p", **o})
    by_scan = FACTORIES[name]()
    with Columns(write(tmp_path, ops)) as cols:
        cols.con.execute("CREATE TEMP VIEW o AS SELECT *, false AS excused FROM h WHERE type = 'op'")
        by_scan.scan(cols)
        if isinstance(by_scan, Replies) and by_scan.wanted():
            from sessionstorm.checker.replies import owners_of
            by_scan.resolve(owners_of(cols, by_scan.wanted()))
            by_op.resolve(owners_of(cols, by_op.wanted()))
    expected, got = findings(by_op), findings(by_scan)
    assert got == expected
    if seed == 0 and name in ("churn", "conversations", "observe", "replies"):
        assert expected[0] is False and expected[1]  # the histories do hold findings


def test_corrupt_lines_anywhere_are_named_and_the_rest_checked(write_run, storage):
    from .conftest import op
    run = write_run([op() for _ in range(4)])
    path = next((run.path / "history").glob("*.jsonl"))
    lines = path.read_bytes().splitlines(keepends=True)
    bad = [b"{truncated\n", b"\n", b'["not", "a record"]\n', b'{"no_type": 1}\n',
           orjson.dumps({**op(), "type": "op", "status": "five hundred"}) + b"\n"]
    path.write_bytes(lines[0] + bad[0] + lines[1] + bad[1] + bad[2] + lines[2] + bad[3] + bad[4] + lines[3])
    r = check_run(run)
    assert r["ops"] == 4 and r["valid"] == "unknown"
    assert [(c["line"], c["error"].split(":")[0]) for c in r["corrupt_lines"]] == [
        (2, "unexpected character, expected a string key"), (5, "not a history record"), (7, "not a history record"),
        (8, "field 'status' is not BIGINT")]


def test_the_columns_are_kept_until_a_history_file_changes(write_run, monkeypatch):
    from sessionstorm import columns

    from .conftest import op
    monkeypatch.setattr(columns, "SMALL_BYTES", -1)  # a large history's way: Parquet parts, kept in columns/
    run = write_run([op(), op()])
    assert check_run(run)["ops"] == 2
    part = next((run.path / "columns").glob("*.parquet"))
    made = part.stat().st_mtime_ns
    assert check_run(run)["ops"] == 2 and part.stat().st_mtime_ns == made  # reused
    with HistoryWriter(next((run.path / "history").glob("*.jsonl")), process="p1") as w:
        w.op(**op())
    assert check_run(run)["ops"] == 3  # converted again


def test_a_small_history_is_read_without_parts(write_run):
    from .conftest import op
    run = write_run([op(), op()])
    assert check_run(run)["ops"] == 2
    assert not list((run.path / "columns").glob("*.parquet"))  # read into a table: nothing written beside it


def test_a_plugin_checker_still_sees_every_record(write_run, monkeypatch):
    from sessionstorm import plugins
    from sessionstorm.checker.base import Checker

    from .conftest import op

    class Count(Checker):
        name = "count"
        kinds = frozenset({"observe"})

        def __init__(self) -> None:
            self.ops, self.events = [], []

        def op(self, op):
            self.ops.append(op["id"])

        def event(self, ev):
            self.events.append(ev["kind"])

        def finish(self, report):
            report("COUNTED", {"ops": self.ops, "detail": f"{len(self.ops)} ops, events {self.events}"})
            return True

    monkeypatch.setattr(plugins, "checkers", lambda contract: [Count()])
    ops = [op("observe", session_sent="S", value="v"), op(), op("observe", session_sent="S", value="w")]
    r = check_run(write_run(ops, events=[("note", {"x": 1})]))
    counted = next(a for a in r["anomalies"] if a["code"] == "COUNTED")
    assert counted["evidence"][0]["ops"] == [ops[0]["id"], ops[2]["id"]]
    assert "events ['note']" in counted["evidence"][0]["detail"]


def test_a_run_folder_whose_columns_cannot_be_written_is_still_checked(write_run, storage):
    from .conftest import op
    run = write_run([op(), op()])
    (run.path / "columns").write_text("not a folder")  # parts (the Parquet way) go to a temporary folder then
    assert check_run(run, write=False)["ops"] == 2
