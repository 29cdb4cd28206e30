"""A small history that no writer converted is read straight into a table of the process's shared DuckDB
database (`sessionstorm.columns`): the same verdicts as through Parquet parts, nothing written beside the
run, and each history kept apart from the others the process reads (threads, closed ones)."""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from sessionstorm import columns
from sessionstorm.checker import check_run
from sessionstorm.columns import Columns, shared_cursor
from sessionstorm.history import HistoryWriter
from sessionstorm.synth import write_run


def checked(run: Path) -> dict:
    r = check_run(run, write=False)
    r.pop("check_seconds")
    return json.loads(json.dumps(r, default=str))


@pytest.mark.parametrize("n", [40, 600])
def test_a_small_history_is_judged_as_through_parquet_parts(tmp_path, monkeypatch, n):
    run = write_run(tmp_path / "a", n, anomalies=("CROSSTALK", "WRONG_MODEL", "LOST_WRITE", "SERVER_ERROR")).path
    twin = tmp_path / "twin"
    shutil.copytree(run, twin)
    with Columns(run) as cols:
        assert cols._schema is not None  # the table way
    small = checked(run)
    assert not list((run / "columns").glob("*.parquet"))
    monkeypatch.setattr(columns, "SMALL_BYTES", -1)
    with Columns(twin) as cols:
        assert cols._schema is None  # the Parquet way
    big = checked(twin)
    assert list((twin / "columns").glob("*.parquet"))
    assert "CROSSTALK" in {a["code"] for a in small["anomalies"]}  # findings with evidence, not an empty verdict
    assert small == big


def test_a_history_a_writer_converted_keeps_its_parts(tmp_path):
    path = tmp_path / "history" / "p.jsonl"
    with HistoryWriter(path, process="p", segment_records=100) as w:
        for i in range(300):
            w.record_op({"id": str(i), "kind": "chat", "outcome": "ok", "invoke_wall": 1000.0 + i})
    with Columns(tmp_path) as cols:
        assert cols._schema is None  # the writer's parts are used as they are
        assert [i for (i,) in cols.con.execute("SELECT id FROM h ORDER BY seq").fetchall()] == [str(i) for i in range(300)]


def write(folder: Path, files: dict[str, list[dict]]) -> Path:
    for name, ops in files.items():
        with HistoryWriter(folder / "history" / f"{name}.jsonl", process=name, segment_records=None) as w:
            for o in ops:
                w.record_op(o)
    return folder


def test_seq_follows_the_files_and_their_lines(tmp_path):
    run = write(tmp_path, {"a": [{"id": f"a{i}", "kind": "chat"} for i in range(3)],
                           "b": [{"id": f"b{i}", "kind": "chat"} for i in range(2)]})
    with Columns(run) as cols:
        got = cols.con.execute("SELECT seq, id FROM h ORDER BY seq").fetchall()
        assert got == [(0, "a0"), (1, "a1"), (2, "a2"), (1 << 32, "b0"), ((1 << 32) + 1, "b1")]
        assert [r[:2] for r in cols.rows(["id"], [1, 1 << 32])] == [(1, "a1"), (1 << 32, "b0")]


def test_each_history_is_kept_apart_and_dropped_on_close(tmp_path):
    runs = [write(tmp_path / str(k), {"p": [{"id": f"{k}-{i}", "kind": "chat"} for i in range(5 + k)]}) for k in range(4)]
    seen: dict[int, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(runs))

    def read(k: int) -> None:
        try:
            with Columns(runs[k]) as cols:
                cols.derive("o", "SELECT * FROM h WHERE type = 'op'")  # a temporary table of this connection only
                barrier.wait(timeout=60)  # all open at once
                seen[k] = [i for (i,) in cols.con.execute("SELECT id FROM o ORDER BY seq").fetchall()]
        except BaseException as e:  # noqa: BLE001  reported below, from the test's thread
            errors.append(e)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(len(runs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert seen == {k: [f"{k}-{i}" for i in range(5 + k)] for k in range(len(runs))}
    cur = shared_cursor()
    try:
        left = cur.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name LIKE 'history_%'").fetchone()[0]
    finally:
        cur.close()
    assert left == 0  # every table went with its Columns


def test_a_failed_load_leaves_nothing_behind(tmp_path, monkeypatch):
    run = write(tmp_path, {"p": [{"id": "x", "kind": "chat"}]})

    def boom(*a, **k):
        raise RuntimeError("disk gone")
    monkeypatch.setattr(columns, "_rows_of", boom)
    with pytest.raises(RuntimeError):
        Columns(run)
    cur = shared_cursor()
    try:
        assert cur.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name LIKE 'history_%'").fetchone()[0] == 0
    finally:
        cur.close()


def test_a_forked_child_reads_into_a_database_of_its_own(tmp_path):
    import os
    import signal
    import time
    run = write(tmp_path, {"p": [{"id": "x", "kind": "chat"}]})
    with Columns(run):
        pass  # the parent's shared database exists
    parent = columns._shared
    pid = os.fork()
    if pid == 0:  # the child: exit status says what it saw
        ok = False
        try:
            with Columns(run) as cols:
                ok = columns._shared is not parent and cols.con.execute("SELECT id FROM h").fetchall() == [("x",)]
        finally:
            os._exit(0 if ok else 1)
    for _ in range(1200):  # at most 60 s: a child stuck on a lock another thread held at the fork is killed
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child did not finish in 60 s")
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_shared_database_has_the_checks_limits(tmp_path):
    run = write(tmp_path, {"p": [{"id": "x", "kind": "chat"}]})
    with Columns(run) as cols:
        own = columns.connect()
        try:
            query = "SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory')"
            assert cols.con.execute(query).fetchone() == own.execute(query).fetchone()  # as a database of its own
        finally:
            own.close()
