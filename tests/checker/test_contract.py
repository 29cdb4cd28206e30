"""Each check judges only what the profile's [contract] promises; crosstalk whatever it says.
Every detection here has its clean twin under the contract that allows it."""
from __future__ import annotations

from typing import Any

from sessionstorm.checker.observe import Observe
from sessionstorm.checker.online import check_op
from sessionstorm.checker.replies import Replies
from sessionstorm.checker.run import contract_of
from sessionstorm.checker.sessions import Churn


def chat(i: int, session: str, t: float, *, key: str = "fp_k", rid_seen: str | None = None,
         seen: list[str] | None = None) -> dict[str, Any]:
    return {"id": f"op{i}", "kind": "chat", "key": key, "outcome": "ok", "status": 200, "invoke_wall": t,
            "complete_wall": t + 0.1, "session_seen": session, "model_asked": "m", "model_served": "m",
            "canaries_sent": [f"C{i}"], "canaries_seen": seen if seen is not None else [f"C{i}"],
            "request_id_sent": f"op{i}", "request_id_seen": rid_seen, "reply_excerpt": "x"}


def judge(checker: Any, ops: list[dict[str, Any]]) -> tuple[bool | None, list[str]]:
    found: list[str] = []
    for op in ops:
        checker.op(op)
    valid = checker.finish(lambda code, ev: found.append(code))
    return valid, found


def test_own_request_ids_are_not_a_mismatch_but_a_reused_one_is():
    minted = [chat(i, "s", i, rid_seen=f"gen-{i}") for i in range(5)]
    assert judge(Replies(), [dict(o) for o in minted])[1].count("REQUEST_ID_MISMATCH") == 5  # forwarded: every reply
    assert judge(Replies(request_id="own"), [dict(o) for o in minted]) == (True, [])
    reused = [*minted, chat(9, "s", 9, rid_seen="gen-2")]  # one minted id answered two operations
    valid, found = judge(Replies(request_id="own"), reused)
    assert valid is False and found == ["REQUEST_ID_MISMATCH"]
    answers_other = [chat(1, "s", 1, rid_seen="op2"), chat(2, "s", 2, rid_seen="gen-x")]  # another op's own id
    assert judge(Replies(request_id="own"), answers_other)[1] == ["REQUEST_ID_MISMATCH"]
    assert judge(Replies(request_id="none"), [dict(o) for o in minted]) == (True, [])
    assert check_op(minted[0], request_id="forwarded") and not check_op(minted[0], request_id="own")


def test_crosstalk_is_judged_whatever_the_contract():
    crossed = [chat(1, "s", 1, rid_seen="gen-1", seen=["C2"]), chat(2, "s", 1, rid_seen="gen-2")]
    for rid in ("forwarded", "own", "none"):
        assert "CROSSTALK" in judge(Replies(request_id=rid), [dict(o) for o in crossed])[1]


def pool(n_sessions: int, *, spread_s: float = 0.1) -> list[dict[str, Any]]:
    return [chat(i, f"s{i % n_sessions}", i * spread_s) for i in range(40)]


def test_pooled_sessions_within_the_limit_are_not_churn():
    assert judge(Churn(), pool(4))[1].count("SESSION_CHURN") == 3  # one-per-key (today's default)
    pooled = {"provider_sessions": "pooled", "max_new_sessions_per_key": 4}
    assert judge(Churn(pooled), pool(4)) == (True, [])
    valid, found = judge(Churn(pooled), pool(6))  # 6 sessions in the window, 4 promised
    assert valid is False and found == ["SESSION_CHURN", "SESSION_CHURN"]
    assert judge(Churn({"provider_sessions": "per-request"}), pool(40)) == (True, [])


def test_pooled_without_a_limit_and_a_reuse_floor():
    assert judge(Churn({"provider_sessions": "pooled"}), pool(8)) == (True, [])
    low = {"provider_sessions": "pooled", "max_new_sessions_per_key": 2, "min_reuse_ratio": 0.99}
    c = Churn(low)
    valid, found = judge(c, pool(4))
    assert valid is False and "SESSION_CHURN" in found and c.reuse_ratio() < 0.99
    assert judge(Churn({**low, "min_reuse_ratio": 0.5}), pool(2)) == (True, [])


def test_best_effort_observe_does_not_promise_read_back():
    ops = [{"id": "c", "kind": "create_session", "outcome": "ok", "session_seen": "s", "complete_wall": 0.5},
           {"id": "w", "kind": "observe", "outcome": "ok", "session_sent": "s", "value": "V1", "complete_wall": 1.0},
           {"id": "r", "kind": "read_session", "outcome": "ok", "session_sent": "s", "values": [], "invoke_wall": 2.0}]
    assert judge(Observe(), [dict(o) for o in ops])[1] == ["LOST_WRITE"]
    assert judge(Observe("best-effort"), [dict(o) for o in ops]) == (True, [])


def test_declared_not_found_counts_as_spurious():
    ops = [{"id": "c", "kind": "create_session", "outcome": "ok", "session_seen": "s", "complete_wall": 0.5},
           {"id": "r", "kind": "read_session", "outcome": "fail", "status": 410, "not_found": True,
            "error": "SESSION_NOT_FOUND: gone", "session_sent": "s", "invoke_wall": 1.0, "complete_wall": 1.1}]
    assert judge(Observe(), ops)[1] == ["SPURIOUS_NOT_FOUND"]
    assert judge(Observe(), [ops[1]]) == (True, [])  # never created: a not-found is fair


def test_results_name_the_contract_defaults_are_today():
    assert contract_of({}) == {"request_id": "forwarded", "provider_sessions": "one-per-key",
                               "max_new_sessions_per_key": None, "session_window_s": 10.0, "min_reuse_ratio": None,
                               "observe": "durable"}
    assert contract_of({"target": {"profile": {"contract": {"request_id": "own"}}}})["request_id"] == "own"
