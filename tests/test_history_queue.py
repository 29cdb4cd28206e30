"""HistoryWriter's queue: records from many threads all written, each thread's in order, the
record taken when given; what is queued at close is written."""
from __future__ import annotations

import threading

from sessionstorm.history import HistoryWriter, iter_records


def test_history_writer_loses_nothing_from_many_threads(tmp_path):
    path = tmp_path / "h.jsonl"
    w = HistoryWriter(path, process="p")

    def write(t: int) -> None:
        for i in range(3000):
            w.record_op({"id": f"{t}-{i}", "kind": "chat", "outcome": "ok"})

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.op(id="last", kind="chat", outcome="ok")
    assert w.count == 12001
    w.close()
    w.record_op({"id": "after-close"})  # refused, as before
    recs = list(iter_records([path]))
    assert len(recs) == 12001 and recs[-1]["id"] == "last"
    assert all(list(r)[0] == "type" and r["process"] == "p" for r in recs)
    for t in range(4):  # each thread's records in its order
        mine = [r["id"] for r in recs if r["id"].startswith(f"{t}-")]
        assert mine == [f"{t}-{i}" for i in range(3000)]


def test_history_record_is_taken_when_given(tmp_path):
    """Encoded at once: a caller changing its op afterwards does not change the record."""
    with HistoryWriter(tmp_path / "h.jsonl", process="p") as w:
        op = {"id": "a", "kind": "chat", "canaries_seen": ["SSC-1"]}
        w.record_op(op)
        op["canaries_seen"].append("SSC-2")
        op["outcome"] = "ok"
    (rec,) = iter_records([tmp_path / "h.jsonl"])
    assert rec == {"type": "op", "id": "a", "kind": "chat", "canaries_seen": ["SSC-1"], "process": "p"}
