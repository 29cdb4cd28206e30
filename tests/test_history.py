from killed_writer import write_then_sigkill

from sessionstorm.history import HistoryWriter, fingerprint, history_files, iter_records


def test_fingerprint_hides_the_key():
    fp = fingerprint("sk-secret-123")
    assert fp.startswith("fp_") and "secret" not in fp
    assert fp == fingerprint("sk-secret-123") != fingerprint("sk-secret-124")
    assert fingerprint(None) is None


def test_write_and_read_back(tmp_path):
    with HistoryWriter(tmp_path / "history" / "p1.jsonl", process="p1") as w:
        w.op(id="a", kind="chat", outcome="ok", canaries_sent=["SSC-X"])
        w.event("phase", name="burst", n=3)
    recs = list(iter_records(history_files(tmp_path)))
    assert [r["type"] for r in recs] == ["op", "event"]
    assert recs[0]["process"] == "p1" and recs[0]["canaries_sent"] == ["SSC-X"]
    assert recs[1]["kind"] == "phase" and recs[1]["data"] == {"name": "burst", "n": 3}


def test_corrupt_and_truncated_lines_are_reported_and_skipped(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_bytes(b'{"type":"op","id":"a"}\nnot json\n[1,2]\n{"type":"op","id":"b"}\n{"type":"op","id":"c"')
    bad = []
    ids = [r["id"] for r in iter_records([p], on_corrupt=lambda f, n, e: bad.append(n))]
    assert ids == ["a", "b"]
    assert bad == [2, 3, 5]


def test_a_killed_writer_loses_at_most_the_last_second(tmp_path):
    path = tmp_path / "h.jsonl"
    write_then_sigkill(f"""
        from sessionstorm.history import HistoryWriter
        w = HistoryWriter({str(path)!r}, process="victim")
        for i in range(200):
            w.op(id=str(i), kind="chat", outcome="ok")
    """)
    assert len(list(iter_records([path]))) == 200
