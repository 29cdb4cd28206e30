from sessionstorm.checker import check_run

from .conftest import op


def codes(results):
    return {a["code"]: a for a in results["anomalies"]}


def test_spurious_not_found_only_for_live_acknowledged_sessions(write_run):
    created = op("create_session", at=0, session_seen="S")
    bad = op("observe", at=1, session_sent="S", outcome="fail", status=404, error="SESSION_NOT_FOUND",
             peer="127.0.0.1:9", server_id="target-h-1")
    never = op("observe", at=1, session_sent="T", outcome="fail", status=404, error="SESSION_NOT_FOUND")
    deleted = op("create_session", at=0, session_seen="D")
    gone = op("delete_session", at=1, session_sent="D")
    after = op("observe", at=2, session_sent="D", outcome="fail", status=404, error="SESSION_NOT_FOUND")
    routing = op("observe", at=1, session_sent="S", outcome="fail", status=404, error="Not Found")
    r = check_run(write_run([created, bad, never, deleted, gone, after, routing]))
    ev = codes(r)["SPURIOUS_NOT_FOUND"]
    assert ev["count"] == 1 and ev["evidence"][0]["ops"] == [bad["id"]]
    assert "127.0.0.1:9" in ev["evidence"][0]["detail"]


def test_a_framework_404_where_the_route_also_answered_is_a_second_server(write_run):
    """Seed 004: the same route answers on one peer and is missing (a framework's 404) on another."""
    created = op("create_session", at=0, session_seen="S")
    good = op("observe", at=1, session_sent="S", value="v1", peer="127.0.0.1:8000")
    stale = [op("observe", at=1, session_sent="S", outcome="fail", status=404, error="Not Found", peer="[::1]:8000")
             for _ in range(3)]
    r = check_run(write_run([created, good, *stale]))
    ev = codes(r)["SPURIOUS_NOT_FOUND"]
    assert ev["count"] == 3 and {e["peer"] for e in ev["evidence"]} == {"[::1]:8000"}
    assert all(e["body"] == "generic" for e in ev["evidence"])
    assert "3 from [::1]:8000 (a framework 404: route missing)" in ev["evidence"][0]["detail"]


def test_lost_write_only_for_writes_acknowledged_before_the_read(write_run):
    w1 = op("observe", at=0, dur=0.1, session_sent="S", value="v1")
    w2 = op("observe", at=0, dur=0.1, session_sent="S", value="v2")
    late = op("observe", at=5, dur=0.1, session_sent="S", value="v3")  # after the read: may be missing
    read = op("read_session", at=1, session_sent="S", values=["v1"])
    r = check_run(write_run([w1, w2, late, read]))
    ev = codes(r)["LOST_WRITE"]
    assert ev["count"] == 1 and ev["evidence"][0]["ops"] == [w2["id"], read["id"]]
    ok = check_run(write_run([w1, w2, op("read_session", at=1, session_sent="S", values=["v2", "v1"])]))
    assert ok["valid"] is True


def test_invariants_rows_fail_errors_are_unknown(write_run):
    snap = {"invariant": "one_active", "sql": "SELECT 1", "when": "after"}
    assert check_run(write_run([op()], [("snapshot", {**snap, "rows": [], "error": None})]))["valid"] is True
    bad = check_run(write_run([op()], [("snapshot", {**snap, "rows": [[1, 2]], "error": None})]))
    assert bad["valid"] is False and codes(bad)["INVARIANT_VIOLATED"]["evidence"][0]["rows"] == [[1, 2]]
    unk = check_run(write_run([op()], [("snapshot", {**snap, "rows": None, "error": "connection refused"})]))
    assert unk["valid"] == "unknown"


def test_thresholds(write_run):
    run = write_run([op(dur=0.5), op(dur=0.5)])
    assert check_run(run, {"p95_ms": 1000})["valid"] is True
    r = check_run(run, {"p95_ms": 100})
    assert codes(r)["THRESHOLD_BREACHED"]["evidence"][0]["threshold"] == "p95_ms"
