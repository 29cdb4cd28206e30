"""Synthetic histories in the real schema, for benchmarks and report tests.

`write_run(root, n_ops, anomalies=("CROSSTALK",), seed=1)` writes a run folder whose
ops look like a mixed run (gateway chats and streams on shared keys, observes with
read-backs, conversation turns) and injects a few ops of each named anomaly. The history goes
through `HistoryWriter`, as the drivers write it: its segments are converted to columns as it grows.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from sessionstorm.canary import canary_for
from sessionstorm.history import SEGMENT_RECORDS, HistoryWriter
from sessionstorm.rundir import RunDir

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MODELS = ("qwen3-235b", "llama-70b", "mistral-7b")


def _ids(rng: random.Random) -> str:
    return "".join(rng.choice(_CROCKFORD) for _ in range(16))


def write_run(root: str | Path, n_ops: int, anomalies: tuple[str, ...] = (), seed: int = 1,
              scenario: str = "synthetic", latency_ms: float = 120.0,
              segment_records: int | None = SEGMENT_RECORDS) -> RunDir:
    """``segment_records``: as `HistoryWriter` takes it (None: no columns written with the history)."""
    rng = random.Random(seed)
    run = RunDir.create(scenario, root=root)
    run.write_json("run.json", {"scenario": scenario, "driver": "synthetic", "settings": {"ops": n_ops},
                                "target": {"url": "http://127.0.0.1:0"}, "started": 1_800_000_000.0})
    keys = [f"fp_{i:012x}" for i in range(20)]
    t0, step = 1_800_000_000.0, 0.002
    inject = {code: set(rng.sample(range(n_ops), min(3, n_ops))) for code in anomalies}
    prev_canary = canary_for(_ids(rng))
    session_values: dict[str, list[str]] = {}
    with HistoryWriter(run.history_path("synthetic-1"), process="synthetic-1", segment_records=segment_records) as h:
        w = h.record_op
        for i in range(n_ops):
            oid = _ids(rng)
            c = canary_for(oid)
            t = t0 + i * step
            dur = rng.expovariate(1000 / latency_ms)
            key = keys[i % len(keys)]
            op: dict[str, Any] = {"type": "op", "id": oid, "process": "synthetic-1", "outcome": "ok", "status": 200,
                                  "invoke_wall": t, "complete_wall": t + dur, "invoke_mono": t - t0,
                                  "complete_mono": t - t0 + dur, "key": key, "canaries_sent": [c], "in_flight": 10}
            r = i % 10
            if r < 6:  # gateway chat (every third streamed)
                model = MODELS[0]
                op.update(kind="chat_stream" if r % 3 == 0 else "chat", flavor="gateway", model_asked=model,
                          model_served=model, session_seen=f"0xs{key}", request_id_sent=oid, request_id_seen=oid,
                          canaries_seen=[c], user=f"dev-{i % 50}", prompt_excerpt=f"Tell me about topic {i} {c}",
                          reply_excerpt=f"[sstorm model={model} canaries={c}] filler")
                if op["kind"] == "chat_stream":
                    op.update(chunks=8, ttft=dur / 4, chunk_canaries=[[c]] * 8)
                if i in inject.get("CROSSTALK", ()):
                    op["canaries_seen"] = [prev_canary]
                if i in inject.get("WRONG_MODEL", ()):
                    op["model_served"] = MODELS[1]
                if i in inject.get("SERVER_ERROR", ()):
                    op.update(outcome="fail", status=500, error="INTERNAL", canaries_seen=[])
            elif r < 9:  # observe on one of 100 sessions
                sid = f"{i % 100:032x}"
                op.update(kind="observe", flavor="observe", session_sent=sid, session_seen=sid, value=c)
                session_values.setdefault(sid, []).append(c)
                if i in inject.get("SPURIOUS_NOT_FOUND", ()):
                    op.update(outcome="fail", status=404, error="SESSION_NOT_FOUND")
            else:  # conversation turn
                user = f"user-{i % 200}"
                op.update(kind="message", flavor="conversation", user=user, session_seen=f"conv-{user}",
                          turn=i // 2000 + 1, value=None, key=None)
            prev_canary = c
            w(op)
        t_end = t0 + n_ops * step + 1
        for sid, values in session_values.items():
            if "LOST_WRITE" in anomalies and sid == next(iter(session_values)):
                values = values[1:]
            w({"type": "op", "id": _ids(rng), "process": "synthetic-1", "kind": "read_session",
               "flavor": "observe", "outcome": "ok", "status": 200, "invoke_wall": t_end,
               "complete_wall": t_end + 0.01, "session_sent": sid, "values": values, "canaries_sent": []})
    return run
