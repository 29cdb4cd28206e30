from __future__ import annotations

import itertools
from typing import Any

import pytest

from sessionstorm.canary import canary_for, new_op_id
from sessionstorm.history import HistoryWriter
from sessionstorm.rundir import RunDir

_clock = itertools.count()


def op(kind: str = "chat", *, at: float | None = None, dur: float = 0.1, **fields: Any) -> dict[str, Any]:
    """A history op with sane defaults: ok, own canary seen, model served as asked."""
    oid = new_op_id()
    t = float(next(_clock)) if at is None else at
    c = canary_for(oid)
    base = {"id": oid, "kind": kind, "flavor": "gateway", "outcome": "ok", "status": 200, "key": "fp_k1",
            "invoke_wall": 1000 + t, "complete_wall": 1000 + t + dur, "canaries_sent": [c], "canaries_seen": [c],
            "model_asked": "m1", "model_served": "m1", "session_seen": "s1", "reply_excerpt": "x"}
    if kind not in ("chat", "chat_stream"):
        base.update(flavor="observe", canaries_seen=[], model_asked=None, model_served=None)
    base.update(fields)
    return base


@pytest.fixture(params=["table", "parquet"])
def storage(request, monkeypatch):
    """Both ways a history is read (`sessionstorm.columns`): a small one into a table, a large one (or one a
    writer converted) through Parquet parts; the checkers' SQL is the same, and so must their findings be."""
    from sessionstorm import columns
    if request.param == "parquet":
        monkeypatch.setattr(columns, "SMALL_BYTES", -1)
    return request.param


@pytest.fixture
def write_run(tmp_path):
    def write(ops: list[dict[str, Any]], events: list[tuple[str, dict[str, Any]]] = ()) -> RunDir:
        run = RunDir.create("unit", root=tmp_path)
        with HistoryWriter(run.history_path("p1"), process="p1") as w:
            for o in ops:
                w.op(**o)
            for kind, data in events:
                w.event(kind, **data)
        return run
    return write
