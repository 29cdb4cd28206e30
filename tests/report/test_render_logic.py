"""Pure logic of the report: escaping and highlighting, redaction, timeline layout, compare rules."""
from __future__ import annotations

import pytest

from sessionstorm.errors import ConfigError
from sessionstorm.report.collect import TimelineOp, _keep
from sessionstorm.report.compare import Limits
from sessionstorm.report.render import hide_password, mark_canaries
from sessionstorm.report.timeline import MAX_ROWS, anomalous_ops, choose_window, layout

A, B = "SSC-AAAA-BBBB-CCCC-DDDD", "SSC-EEEE-FFFF-GGGG-HHHH"


def test_mark_escapes_html_and_highlights_canaries_by_owner():
    html = str(mark_canaries(f"<script>alert(1)</script> {A} & {B}", {A: "c-a"}))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert f'<mark class="c-a">{A}</mark>' in html
    assert f'<mark class="c-other">{B}</mark>' in html and "&amp;" in html


def test_hide_password_keeps_everything_but_the_secret():
    assert hide_password("postgresql://app:s3cret@127.0.0.1:5432/db") == "postgresql://app:***@127.0.0.1:5432/db"
    assert hide_password("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert hide_password(None) is None


def _op(i: int, t0: float, t1: float, key: str = "k1") -> TimelineOp:
    return TimelineOp(f"op{i}", "chat", key, "s1", t0, t1, "ok", 200)


def test_layout_stacks_overlaps_in_rows_and_puts_anomalous_lanes_first():
    ops = [_op(0, 0.0, 1.0), _op(1, 0.5, 1.5), _op(2, 1.2, 2.0), _op(3, 0.0, 2.0, key="busy"),
           _op(4, 0.0, 0.1, key="busy"), _op(5, 0.2, 0.3, key="busy"), _op(6, 0.4, 0.5, key="busy")]
    t = layout(ops, (0.0, 2.0), "key", {"op1": "CROSSTALK"}, [], origin=0.0)
    assert [lane["full"] for lane in t["lanes"]] == ["k1", "busy"]  # anomalous first, though smaller
    k1 = {b["title"].split()[0]: b for b in t["lanes"][0]["bars"]}
    assert k1["op0"]["y"] == k1["op2"]["y"] != k1["op1"]["y"]  # op2 starts after op0 ends: same row
    assert k1["op1"]["cls"] == "bad" and k1["op0"]["cls"] == "ok"


def test_layout_caps_rows_and_counts_what_it_hides():
    ops = [_op(i, 0.0, 1.0) for i in range(MAX_ROWS + 3)]
    t = layout(ops, (0.0, 1.0), "key", {}, [], origin=0.0)
    assert len(t["lanes"][0]["bars"]) == MAX_ROWS and t["hidden_ops"] == 3


def test_fault_events_become_bands():
    faults = [{"wall": 0.5, "name": "latency", "active": True}, {"wall": 1.5, "name": "latency", "active": False}]
    t = layout([_op(0, 0.0, 2.0)], (0.0, 2.0), "key", {}, faults, origin=0.0)
    (band,) = t["faults"]
    assert band["label"] == "latency" and band["w"] == pytest.approx(480.0)


def test_window_centres_on_first_evidence_else_the_middle():
    results = {"stats": {"latency_ms": {"p50": 100}, "duration_s": 10},
               "anomalies": [{"code": "CROSSTALK", "evidence": [{"ops": ["x", "y"], "times": [[105.0, 106.0], [104.0, 106.5]]}]}]}
    w0, w1, why = choose_window(results, started=100.0)
    assert w0 < 104.0 < w1 and "CROSSTALK" in why
    assert anomalous_ops(results) == {"x": "CROSSTALK", "y": "CROSSTALK"}
    w0, w1, why = choose_window({**results, "anomalies": []}, started=100.0)
    assert w0 < 105.0 < w1 and "middle" in why


def test_reservoir_keeps_a_uniform_sample():
    import random
    rng, sample = random.Random(1), []
    for n, v in enumerate(range(10_000), 1):
        _keep(sample, float(v), n, 500, rng)
    assert len(sample) == 500 and 3500 < sum(sample) / 500 < 6500  # mean of 0..9999 is 5000


def test_limits_reject_negative_values_with_one_line():
    with pytest.raises(ConfigError, match="latency-ratio"):
        Limits(latency_ratio=-1)


def _results(folder, samples: int, p95: float) -> str:
    import json
    folder.mkdir()
    stats = {"latency_ms": {"p50": 100.0, "p95": p95, "p99": p95, "samples": samples},
             "error_rate": 0.0, "throughput_rps": 50.0}
    (folder / "results.json").write_text(json.dumps({"valid": True, "stats": stats, "anomalies": []}))
    return str(folder)


def test_a_percentile_is_judged_only_with_enough_samples_beyond_it(tmp_path):
    from sessionstorm.report.compare import compare_runs, min_samples
    assert (min_samples(50), min_samples(95), min_samples(99)) == (20, 200, 1000)
    small = compare_runs(_results(tmp_path / "a", 40, 200.0), _results(tmp_path / "b", 40, 400.0))
    rows = {r["metric"]: r for r in small["rows"]}
    assert not small["regressed"] and rows["latency p95 (ms)"]["rule"].startswith("not judged: 40 samples")
    assert rows["latency p95 (ms)"]["judged"] is False and rows["latency p50 (ms)"]["judged"] is True
    big = compare_runs(_results(tmp_path / "c", 300, 200.0), _results(tmp_path / "d", 300, 400.0))
    rows = {r["metric"]: r for r in big["rows"]}
    assert big["regressed"] and rows["latency p95 (ms)"]["regressed"]
    assert rows["latency p99 (ms)"]["rule"].startswith("not judged: 300 samples, p99 needs 1000")
