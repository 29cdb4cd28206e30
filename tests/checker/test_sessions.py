from sessionstorm.checker import check_run

from .conftest import op


def codes(results):
    return {a["code"]: a for a in results["anomalies"]}


def test_churn_on_one_model_is_caught(write_run):
    r = check_run(write_run([op(at=0, session_seen="s1"), op(at=1, session_seen="s2"), op(at=2, session_seen="s3")]))
    assert codes(r)["SESSION_CHURN"]["count"] == 2 and r["stats"]["session_reuse_ratio"] < 0.95


def test_model_switch_sessions_are_not_churn(write_run):
    ops = [op(at=0, session_seen="s1", model_asked="m1", model_served="m1"),
           op(at=1, session_seen="s2", model_asked="m2", model_served="m2"),
           op(at=2, session_seen="s3", model_asked="m1", model_served="m1")]
    r = check_run(write_run(ops))
    assert r["valid"] is True, r["anomalies"]


def test_sessions_far_apart_are_not_churn_but_lower_reuse(write_run):
    r = check_run(write_run([op(at=0, session_seen="s1"), op(at=100, session_seen="s2")]))
    assert "SESSION_CHURN" not in codes(r)


def msg(user, session, turn, value, values, at, dur=0.1):
    return op(kind="message", flavor="conversation", user=user, session_seen=session, turn=turn, value=value,
              values=values, at=at, dur=dur, key=None)


def test_duplicate_fresh_sessions_for_overlapping_first_messages(write_run):
    r = check_run(write_run([msg("u1", "A", 1, "c1", ["c1"], 0, 1.0), msg("u1", "B", 1, "c2", ["c2"], 0.2, 1.0)]))
    ev = codes(r)["DUPLICATE_ACTIVE_SESSION"]["evidence"][0]
    assert set(ev["sessions"]) == {"A", "B"} and len(ev["ops"]) == 2


def test_sequential_conversation_is_clean(write_run):
    ops = [msg("u1", "A", 1, "c1", ["c1"], 0), msg("u1", "A", 2, "c2", ["c1", "c2"], 1),
           msg("u1", "A", 3, "c3", ["c1", "c2", "c3"], 2)]
    assert check_run(write_run(ops))["valid"] is True


def test_context_loss_names_the_missing_message(write_run):
    first = msg("u1", "A", 1, "c1", ["c1"], 0)
    lost = msg("u1", "B", 1, "c2", ["c2"], 1)
    r = check_run(write_run([first, lost]))
    ev = codes(r)["CONTEXT_LOSS"]["evidence"][0]
    assert ev["ops"] == [first["id"], lost["id"]]
