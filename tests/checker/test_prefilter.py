"""The columnar prefilter is conservative: every op on which `check_op` (the one definition of the
per-reply rules, shared with the online check) finds something is among the rows SQL selects."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionstorm.checker.online import check_op
from sessionstorm.checker.replies import suspects
from sessionstorm.columns import Columns
from sessionstorm.history import HistoryWriter


def maybe(*xs):
    """Small alphabets, so that equal and unequal values, nulls and empties all turn up."""
    return st.sampled_from([None, *xs])


canaries = st.one_of(st.none(), st.lists(st.sampled_from(["A", "B", "C"]), max_size=3))
OPS = st.fixed_dictionaries({
    "id": st.just("x"),
    "kind": maybe("chat", "chat_stream", "observe", "message"),
    "outcome": maybe("ok", "fail", "info"),
    "status": maybe(0, 200, 404, 499, 500, 503),
    "error": maybe("", "boom", "session expired", "SESSION_EXPIRED", "Session_Expired now"),
    "canaries_sent": canaries,
    "canaries_seen": canaries,
    "model_asked": maybe("", "m1", "m2"),
    "model_served": maybe("", "m1", "m2"),
    "request_id_sent": maybe("", "r1", "r2"),
    "request_id_seen": maybe("", "r1", "r2"),
    "chunk_canaries": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.lists(st.sampled_from(["A", "B"]), max_size=2)),
                                                    max_size=4)),
    "reply_excerpt": maybe("", "text"),
    "chunks": maybe(0, 3),
    "session_seen": maybe("s1"),
    "in_flight": maybe(1),
})


def selected(tmp: Path, ops: list[dict[str, Any]], request_id: str) -> set[int]:
    with HistoryWriter(tmp / "history" / "p.jsonl", process="p") as w:
        for o in ops:
            w.op(**{k: v for k, v in o.items() if v is not None})
    with Columns(tmp) as cols:  # a small history: a table (the Parquet way is compared in test_columns_small.py)
        cols.con.execute("CREATE TEMP VIEW o AS SELECT *, false AS excused FROM h WHERE type = 'op'")
        return {seq for (seq,) in cols.con.execute(f"SELECT seq FROM o WHERE {suspects(request_id)}").fetchall()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=1, max_size=40), request_id=st.sampled_from(["forwarded", "own", "none"]),
       expect=st.booleans())
def test_every_op_check_op_flags_is_selected(tmp_path_factory, ops, request_id, expect):
    tmp = tmp_path_factory.mktemp("h")
    chosen = selected(tmp, ops, request_id)
    for i, o in enumerate(ops):
        rec = {k: v for k, v in o.items() if v is not None}
        if check_op(rec, expect, request_id):
            assert i in chosen, (rec, check_op(rec, expect, request_id))


def test_the_prefilter_leaves_out_clean_replies(tmp_path):
    """Not all of a clean run: the point of it (its own canary back, the model asked, the id sent)."""
    clean = {"id": "x", "kind": "chat", "outcome": "ok", "status": 200, "canaries_sent": ["A"], "canaries_seen": ["A"],
             "model_asked": "m", "model_served": "m", "request_id_sent": "r", "request_id_seen": "r",
             "chunk_canaries": [["A"], ["A"]], "reply_excerpt": "t"}
    crossed = {**clean, "canaries_seen": ["B"]}
    assert selected(tmp_path, [clean, crossed, clean], "forwarded") == {1}
