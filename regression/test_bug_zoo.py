"""The bug zoo: each seeded bug of the reference target must be caught, with evidence
naming the right operations, and its clean twin -- the same scenario against the clean
target, for the same number of rounds -- must find nothing.

A race needs the requests to overlap on the target. The scenarios make that happen with the
barrier (bursts released at the last byte, see sessionstorm.scenarios), not by luck, so a
bug shows in most rounds even on a busy machine (bench/bugzoo_load.py: rounds caught per bug
with 4 CPU hogs beside it). A test still runs up to ROUNDS rounds and stops at the first
catch; each bug round is paired with a clean round, run at the same time (so both meet the
same busy machine), and the clean twin must be clean in every one, so the extra chances a
bug gets are given to noise too, and a false alarm fails the test instead of passing it.
"""
from __future__ import annotations

import os

import pytest

from sessionstorm.history import history_files, iter_records
from sessionstorm.scenarios import BUG_ZOO

ROUNDS = max(1, int(os.environ.get("SESSIONSTORM_BUG_ROUNDS", "8")))


@pytest.mark.parametrize(("bugs", "scenario", "codes"), BUG_ZOO, ids=[f"{b}-{s}" for b, s, _ in BUG_ZOO])
def test_bug_is_caught(bugs, scenario, codes, target_for, run_pair, is_reference, record_property):
    if not is_reference:
        pytest.skip("the bug zoo needs the reference target")
    target, clean = target_for.many(bugs, "")
    seen: list[str] = []
    for n in range(1, ROUNDS + 1):
        results, twin = run_pair(scenario, target, clean)
        found = {a["code"]: a for a in results["anomalies"]}
        seen.append(f"round {n}: {', '.join(sorted(found)) or 'nothing'}")
        assert not twin["anomalies"] and twin["valid"] is True, (
            f"the clean twin of {bugs} ({scenario}) is not clean in round {n}: the scenario raises false "
            f"alarms, so catching {sorted(codes)} proves nothing\n{twin['summary']}")
        if codes & found.keys():
            break
    record_property("rounds", n)  # in the JUnit XML: how many rounds (bug and clean twin each) it took
    assert results["valid"] is False, f"{bugs} was not caught in {ROUNDS} rounds ({'; '.join(seen)})\n{results['summary']}"
    hit = codes & found.keys()
    assert hit, f"{bugs}: expected one of {sorted(codes)} in {ROUNDS} rounds ({'; '.join(seen)})\n{results['summary']}"
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
