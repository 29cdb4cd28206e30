"""`sessionstorm compare` on real runs: same build passes, a slower provider and a new bug regress."""
from __future__ import annotations

import httpx

from sessionstorm.cli import main


def _compare(capsys, old, new, *limits: str) -> tuple[int, str]:
    code = main(["compare", *limits, str(old), str(new)])
    return code, capsys.readouterr().out


# Two runs of one build on a shared machine differ by noise alone (CI saw p95 ×3.0 and
# throughput −12 %): judged with limits that noise stays within. The slowed twin below is
# judged with the default limits, and its p95 at least doubles by construction.
NOISE = ("--latency-ratio", "10", "--throughput-drop", "0.9")


LONG = {"users": 10, "rounds": 25}  # 250 samples: p95 is judged (compare.min_samples)


def test_compare_flags_a_doubled_p95_and_a_new_code_but_not_the_same_build(checked_run, sessionstorm_stack, capsys):
    base, r_base = checked_run("shared_key", **LONG)
    same, r_same = checked_run("shared_key", **LONG)
    assert r_base["valid"] is True and r_same["valid"] is True
    assert r_base["stats"]["latency_ms"]["samples"] >= 200, "premise: enough samples for p95 to be judged"
    code, out = _compare(capsys, base, same, *NOISE)
    assert code == 0, out
    assert "verdict: no regression" in out and (same / "compare.html").is_file()

    faults = sessionstorm_stack.provider.url + "/admin/faults"
    normal = httpx.get(faults).json()
    p95_old = r_base["stats"]["latency_ms"]["p95"]
    # every reply later by twice the old p95: the new p95 is at least that, however busy the machine
    slow = {"delay_ms": int(p95_old * 2) + 1}
    assert httpx.post(faults, json=slow).status_code == 200
    try:
        slower, r_slow = checked_run("shared_key", **LONG)
    finally:
        httpx.post(faults, json={k: normal[k] for k in slow})
    p95_new = r_slow["stats"]["latency_ms"]["p95"]
    assert p95_new >= 2 * p95_old, f"premise: the slower provider should double p95 ({p95_old} -> {p95_new})"
    code, out = _compare(capsys, base, slower)
    assert code == 1, out
    p95_line = next(line for line in out.splitlines() if "latency p95" in line)
    assert "REGRESSED" in p95_line and "new anomaly code" not in out

    buggy, r_bug = checked_run("shared_key", bugs="no-request-id", rounds=4)
    assert any(a["code"] == "CROSSTALK" for a in r_bug["anomalies"])
    code, out = _compare(capsys, base, buggy)
    assert code == 1 and "new anomaly code       CROSSTALK" in out, out


def test_compare_bad_input_is_one_line(tmp_path, capsys):
    code = main(["compare", str(tmp_path / "nope"), str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "results.json" in err
    code = main(["compare", "--latency-ratio", "-2", str(tmp_path), str(tmp_path)])
    assert code == 2
