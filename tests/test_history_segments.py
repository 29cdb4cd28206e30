"""HistoryWriter seals its file in segments and converts each to a Parquet part in the background
(real files, real DuckDB); the check uses those parts and converts only the rest, whatever happened
to the writer (killed, several processes, gevent-patched)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
from killed_writer import write_then_sigkill

from sessionstorm.checker import check_run
from sessionstorm.columns import Columns
from sessionstorm.history import HistoryWriter, iter_records
from sessionstorm.rundir import RunDir


def stamps(run: Path) -> list[dict]:
    return sorted((orjson.loads(p.read_bytes()) for p in (run / "columns").glob("*.json")), key=lambda s: s["start"])


def ids_in_history_order(location: Path) -> list[str]:
    with Columns(location) as cols:
        return [i for (i,) in cols.con.execute("SELECT id FROM h ORDER BY seq").fetchall()]


def op(i: int) -> dict:
    return {"id": str(i), "kind": "chat", "outcome": "ok", "invoke_wall": 1000.0 + i, "complete_wall": 1000.1 + i}


def test_sealed_segments_are_converted_during_the_run_and_the_check_adds_only_the_tail(tmp_path):
    path = tmp_path / "history" / "p.jsonl"
    w = HistoryWriter(path, process="p", segment_records=100)
    for i in range(500):
        w.record_op(op(i))
    w._sealer.wait()  # the run goes on; what was sealed so far is converted
    made = stamps(tmp_path)
    assert made and made[0]["start"] == 0 and w._sealer.errors == []
    covered(made, 0)
    assert all(100 <= s["lines"] < 100 + 64 for s in made)  # sealed once full (lines go out 64 at a time at most)
    for i in range(500, 1050):
        w.record_op(op(i))
    w.close()
    by_writer = stamps(tmp_path)
    assert ids_in_history_order(tmp_path) == [str(i) for i in range(1050)]
    after = stamps(tmp_path)
    assert after[: len(by_writer)] == by_writer  # reused; at most the last < 100 lines converted by the check
    assert len(after) - len(by_writer) == (by_writer[-1]["end"] < path.stat().st_size)
    covered(after, path.stat().st_size)


def covered(parts: list[dict], size: int) -> None:
    """The parts follow each other from byte 0 (to ``size``, when given)."""
    assert parts[0]["start"] == 0 and all(a["end"] == b["start"] for a, b in zip(parts, parts[1:]))
    assert not size or parts[-1]["end"] == size


def test_a_killed_writer_loses_at_most_a_second_and_the_check_sees_every_record(tmp_path):
    run = RunDir.create("unit", root=tmp_path)
    path = run.history_path("victim")
    write_then_sigkill(f"""
        from sessionstorm.history import HistoryWriter
        w = HistoryWriter({str(path)!r}, process="victim", segment_records=200)
        for i in range(1000):
            w.op(id=str(i), kind="chat", outcome="ok", invoke_wall=1000.0 + i, complete_wall=1000.5 + i)
        w._sealer.wait()
        for i in range(1000, 1100):  # an unsealed tail
            w.op(id=str(i), kind="chat", outcome="ok", invoke_wall=1000.0 + i, complete_wall=1000.5 + i)
    """)
    assert len(list(iter_records([path]))) == 1100
    sealed = stamps(run.path)
    assert sealed and sum(s["lines"] for s in sealed) >= 768  # sealed at 256, 512 and 768 lines at least
    r = check_run(run, write=False)
    assert r["ops"] == 1100 and r["corrupt_count"] == 0
    assert ids_in_history_order(run.path) == [str(i) for i in range(1100)]
    assert stamps(run.path)[: len(sealed)] == sealed  # the writer's parts were used, not redone


def test_two_writer_processes_write_into_one_run_folder(tmp_path):
    run = RunDir.create("unit", root=tmp_path)
    code = textwrap.dedent("""
        import sys
        from sessionstorm.history import HistoryWriter
        with HistoryWriter(sys.argv[1], process=sys.argv[2], segment_records=100) as w:
            for i in range(700):
                w.op(id=f"{sys.argv[2]}-{i}", kind="chat", outcome="ok", invoke_wall=1000.0 + i, complete_wall=1000.5 + i)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(run.history_path(name)), name]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    made = stamps(run.path)
    assert {s["file"] for s in made} == {"a.jsonl", "b.jsonl"}
    for name in ("a", "b"):  # each writer's parts follow each other from the start of its file
        covered([s for s in made if s["file"] == f"{name}.jsonl"], 0)
    r = check_run(run, write=False)
    assert r["ops"] == 1400
    after = stamps(run.path)
    assert all(s in after for s in made)  # used as they were
    for name in ("a", "b"):
        covered([s for s in after if s["file"] == f"{name}.jsonl"], run.history_path(name).stat().st_size)
    ids = ids_in_history_order(run.path)
    assert [i for i in ids if i.startswith("a-")] == [f"a-{i}" for i in range(700)]
    assert [i for i in ids if i.startswith("b-")] == [f"b-{i}" for i in range(700)]


def test_under_gevent_the_conversion_runs_in_an_os_thread_and_the_hub_keeps_ticking(tmp_path):
    """A greenlet ticking every 10 ms goes on ticking while a segment converts: ticks are logged
    between the conversion's start and end (order, not duration: a busy machine only adds ticks)."""
    path = tmp_path / "history" / "g.jsonl"
    code = textwrap.dedent(f"""
        import gevent.monkey
        gevent.monkey.patch_all()
        import json, threading, gevent
        from sessionstorm import columns
        from sessionstorm.history import HistoryWriter

        log = []
        real_id = gevent.monkey.get_original("_thread", "get_native_id")
        convert = columns.convert_range
        def logged(*a, **k):
            log.append(("start", real_id()))
            try:
                return convert(*a, **k)
            finally:
                log.append(("end", real_id()))
        columns.convert_range = logged

        def tick():
            while True:
                log.append(("tick", real_id()))
                gevent.sleep(0.01)
        ticker = gevent.spawn(tick)
        w = HistoryWriter({str(path)!r}, process="g", segment_records=30000)
        for i in range(30100):  # one segment sealed: converted while the hub runs the ticker
            w.op(id=str(i), kind="chat", outcome="ok", invoke_wall=1000.0 + i, complete_wall=1000.5 + i,
                 canaries_sent=["SSC-A"], canaries_seen=["SSC-A"], prompt_excerpt="x" * 200)
            if i % 1000 == 0:
                gevent.sleep(0)
        for _ in range(12000):  # at most 120 s: until the conversion ended
            if any(e == "end" for e, _ in log):
                break
            gevent.sleep(0.01)
        ticker.kill()
        w.close()
        print(json.dumps({{"log": log, "errors": w._sealer.errors}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    log, errors = result["log"], result["errors"]
    assert errors == []
    events = [e for e, _ in log]
    start, end = events.index("start"), events.index("end")
    hub = log[0][1]
    assert log[start][1] != hub  # converted in another OS thread than the hub's
    assert "tick" in events[start:end]  # the hub ran greenlets while the segment converted
    assert ids_in_history_order(path)[-1] == "30099"


def test_a_file_rewritten_in_place_is_converted_again(tmp_path):
    path = tmp_path / "history" / "p.jsonl"
    with HistoryWriter(path, process="p", segment_records=100) as w:
        for i in range(300):
            w.record_op({"id": f"a{i:03d}", "kind": "chat", "outcome": "ok"})
    assert stamps(tmp_path) and ids_in_history_order(tmp_path)[0] == "a000"
    path.write_bytes(path.read_bytes().replace(b'"a', b'"b'))  # same size, other bytes
    assert ids_in_history_order(tmp_path) == [f"b{i:03d}" for i in range(300)]


def test_a_run_folder_whose_columns_cannot_be_written_is_checked_from_a_temporary_folder(tmp_path):
    run = RunDir.create("unit", root=tmp_path)
    with HistoryWriter(run.history_path("p"), process="p", segment_records=None) as w:
        w.op(id="x", kind="chat", outcome="ok", invoke_wall=1000.0, complete_wall=1000.5)
    (run.path / "columns").write_text("not a folder")
    assert check_run(run, write=False)["ops"] == 1
