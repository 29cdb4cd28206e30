from sessionstorm.checker import check_op, check_run

from .conftest import op


def codes(results):
    return {a["code"]: a for a in results["anomalies"]}


def test_clean_history_is_valid(write_run):
    r = check_run(write_run([op(), op(), op(kind="chat_stream", chunk_canaries=[["SSC-X"], ["SSC-X"]])]))
    assert r["valid"] is True and r["anomalies"] == [] and r["ops"] == 3


def test_crosstalk_names_victim_and_source_with_overlap(write_run):
    a, b = op(at=0, dur=1.0), op(at=0.5, dur=1.0)
    b["canaries_seen"] = list(a["canaries_sent"])  # b received a's answer
    r = check_run(write_run([a, b]))
    ev = codes(r)["CROSSTALK"]["evidence"][0]
    assert r["valid"] is False
    assert ev["victim"] == b["id"] and ev["sources"] == [a["id"]] and ev["ops"] == [b["id"], a["id"]]
    assert ev["overlap_s"] == 0.5


def test_online_checks_each_code_and_their_clean_twins():
    assert check_op(op()) == []
    assert [c for c, _ in check_op(op(canaries_seen=[]))] == ["UNATTRIBUTED"]
    assert [c for c, _ in check_op(op(canaries_seen=[], reply_excerpt="", chunks=0))] == ["EMPTY_REPLY"]
    assert [c for c, _ in check_op(op(model_served="m2"))] == ["WRONG_MODEL"]
    assert [c for c, _ in check_op(op(request_id_sent="r1", request_id_seen="r2"))] == ["REQUEST_ID_MISMATCH"]
    assert check_op(op(request_id_sent="r1", request_id_seen="r1")) == []
    mixed = op(kind="chat_stream", chunk_canaries=[["SSC-A"], ["SSC-B"]])
    assert "STREAM_INTERLEAVED" in [c for c, _ in check_op(mixed)]
    assert [c for c, _ in check_op(op(outcome="fail", status=500, error="boom"))] == ["SERVER_ERROR"]
    assert [c for c, _ in check_op(op(outcome="fail", status=502, error="SESSION_EXPIRED"))] == ["SESSION_EXPIRED_IN_FLIGHT"]
    assert check_op(op(outcome="fail", status=401, error="INVALID_API_KEY")) == []
    assert check_op(op(outcome="info", status=None, error="timeout", canaries_seen=[])) == []  # unknown proves nothing


def test_a_garbled_copy_of_its_own_canary_is_not_crosstalk():
    """A real model's typo (half or more of the code in place) vs another request's canary."""
    own = "SSC-090K-66F2-NPKR-SD1G"
    typo, other = "SSC-090K-66F2-NTSK-SD1G", "SSC-7Q2M-XW4H-BB9C-E3RT"
    assert [c for c, _ in check_op(op(canaries_sent=[own], canaries_seen=[typo]))] == ["UNATTRIBUTED"]
    assert check_op(op(canaries_sent=[own], canaries_seen=[own, typo])) == []
    assert [c for c, _ in check_op(op(canaries_sent=[own], canaries_seen=[other]))] == ["CROSSTALK"]  # the broken twin
    assert [c for c, _ in check_op(op(canaries_sent=[own], canaries_seen=[typo, other]))] == ["CROSSTALK"]


def test_real_llm_unattributed_is_reported_but_not_failing(write_run, tmp_path):
    run = write_run([op(canaries_seen=[])])
    run.write_json("run.json", {"scenario": "x", "target": {"profile": {"target": {"llm": "real"}}}})
    r = check_run(run)
    assert "UNATTRIBUTED" in codes(r) and r["valid"] is True
    run.write_json("run.json", {"scenario": "x", "target": {"profile": {"target": {"llm": "stub"}}}})
    assert check_run(run)["valid"] is False
