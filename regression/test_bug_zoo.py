"""The bug zoo: each seeded bug of the reference target must be caught, with evidence
naming the right operations. Its clean twin is test_clean.py: the same scenario against
the clean target must find nothing.

A race is a matter of timing, so a scenario runs up to ATTEMPTS times until the bug
shows; the measured rates are in the README.
"""
from __future__ import annotations

import pytest

from sessionstorm.history import history_files, iter_records

ATTEMPTS = 3

CASES = [  # (bugs, scenario, any of these codes must be found)
    ("no-request-id", "shared_key", {"CROSSTALK"}),
    ("no-request-id", "streaming_shared_key", {"CROSSTALK", "STREAM_INTERLEAVED"}),
    ("model-switch-race", "model_switch", {"WRONG_MODEL", "SESSION_EXPIRED_IN_FLIGHT"}),
    ("racy-get-or-create", "first_messages", {"DUPLICATE_ACTIVE_SESSION"}),
    ("bad-fallback", "first_messages", {"SESSION_CHURN", "CONTEXT_LOSS"}),
    ("racy-get-or-create,no-unique-index", "shared_key", {"INVARIANT_VIOLATED"}),
    ("unlocked-lazy-init", "parallel_observe", {"SPURIOUS_NOT_FOUND"}),
    ("lost-update-observe", "parallel_observe", {"LOST_WRITE"}),
    ("model-id-not-forwarded", "model_switch", {"WRONG_MODEL"}),
]


@pytest.mark.parametrize(("bugs", "scenario", "codes"), CASES, ids=[f"{b}-{s}" for b, s, _ in CASES])
def test_bug_is_caught(bugs, scenario, codes, target_for, run_checked, is_reference):
    if not is_reference:
        pytest.skip("the bug zoo needs the reference target")
    target = target_for(bugs)
    for _ in range(ATTEMPTS):
        results = run_checked(scenario, target)
        found = {a["code"]: a for a in results["anomalies"]}
        if codes & found.keys():
            break
    assert results["valid"] is False, f"{bugs} was not caught in {ATTEMPTS} runs\n{results['summary']}"
    hit = codes & found.keys()
    assert hit, f"{bugs}: expected one of {sorted(codes)}\n{results['summary']}"
    ops = {r["id"]: r for r in iter_records(history_files(results["where"])) if r["type"] == "op"}
    for code in hit:
        for ev in found[code]["evidence"]:
            named = [o for o in ev.get("ops", []) if o]
            if code == "INVARIANT_VIOLATED":
                assert ev["rows"], ev  # evidence is the violating rows themselves
                continue
            assert named and all(o in ops for o in named), f"{code} evidence names unknown ops: {named}"
            if code == "CROSSTALK":  # the victim received a canary that some other op of the run sent
                victim, sources = ops[ev["victim"]], [ops[s] for s in ev["sources"]]
                assert sources and all(s["id"] != victim["id"] for s in sources)
                assert any(c in victim["canaries_seen"] for s in sources for c in s["canaries_sent"])
