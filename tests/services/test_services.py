"""Two services not shaped like the reference target, each described only by a profile
(threads.toml, chat_gateway.toml: no adapter, no package edit), each with a seeded bug
and a clean twin, through every entry point a user has: `sessionstorm run`, the
regression suite (`pytest regression --target-profile`, i.e. Run + run_scenario) and
headless Locust. Clean twins must be CLEAN; bugs must be caught with the right code.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SESSIONSTORM = [sys.executable, "-m", "sessionstorm.cli"]

# name: (profile, scenario, locustfile, Locust users, bug vars, the code the bug must show)
SERVICES = {
    "threads": (HERE / "threads.toml", "parallel_observe", "parallel_observe.py", 40, '{bug = "lost-update"}',
                "LOST_WRITE"),
    "chat_gateway": (HERE / "chat_gateway.toml", "shared_key", "shared_key.py", 16, '{bug = "shared-session"}',
                     "CROSSTALK"),
}
CASES = [pytest.param(name, bug, id=f"{name}-{'bug' if bug else 'clean'}") for name in SERVICES for bug in (False, True)]


def env_for(tmp_path: Path, bug: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSTORM_")}
    env["SESSIONSTORM_REPORTS"] = str(tmp_path / "reports")
    if bug:
        env["SESSIONSTORM_TARGET_VARS"] = bug  # the profile's {bug}, as any profile key: env beats the file
    return env


def latest(reports: Path) -> dict:
    found = sorted(reports.rglob("results.json"), key=lambda p: p.stat().st_mtime)
    assert found, f"no results.json under {reports}"
    return json.loads(found[-1].read_text())


def codes(results: dict) -> set[str]:
    return {a["code"] for a in results["anomalies"]}


@pytest.mark.parametrize(("name", "bug"), CASES)
def test_sessionstorm_run(tmp_path, name, bug):
    profile, scenario, _, _, bug_vars, code = SERVICES[name]
    # three bursts of the race for bug and clean twin alike (parallel_observe makes one by default): a single
    # one missed the lost update once in a CI run beside 4 CPU hogs (8 of 8 caught when run alone beside them)
    p = subprocess.run([*SESSIONSTORM, "run", scenario, "--rounds", "3", "--target-profile", str(profile)], capture_output=True,
                       text=True, env=env_for(tmp_path, bug_vars if bug else None), cwd=tmp_path, timeout=240)
    r = latest(tmp_path / "reports")
    if bug:
        assert p.returncode == 1, p.stdout + p.stderr[-2000:]
        assert code in codes(r)
    else:
        assert p.returncode == 0, p.stdout + p.stderr[-2000:]
        assert r["verdict"] == "CLEAN" and r["outcomes"].get("ok", 0) >= 20 and not r["anomalies"]
    assert r["contract"] == json.loads(json.dumps(r["contract"]))  # the contract judged against is in results.json


@pytest.mark.parametrize(("name", "bug"), CASES)
def test_regression_suite(tmp_path, name, bug):
    """`pytest regression --target-profile FILE`: every scenario the service speaks, through Run + run_scenario."""
    profile, scenario, _, _, bug_vars, code = SERVICES[name]
    out = ""
    p = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "regression" / "test_clean.py"), "-p", "no:cacheprovider",
                        "-n", "0", "-q", "-rs", "--target-profile", str(profile), "--junitxml", str(tmp_path / "junit.xml")],
                       capture_output=True, text=True, env=env_for(tmp_path, bug_vars if bug else None), cwd=ROOT,
                       timeout=300)
    out = p.stdout + p.stderr
    if bug:
        assert p.returncode == 1 and f"test_scenario_is_clean[{scenario}]" in out, out[-3000:]
        assert code in out
    else:  # every scenario the service speaks passes; the others skip, saying why
        assert p.returncode == 0 and f"test_scenario_is_clean[{scenario}]" not in out, out[-3000:]
        assert " passed" in out and "failed" not in out


@pytest.mark.parametrize(("name", "bug"), CASES)
def test_locust(tmp_path, name, bug):
    profile, _, locustfile, users, bug_vars, code = SERVICES[name]
    p = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile), "--headless",
                        "-u", str(users), "-r", str(users), "-t", "4s", "--target-profile", str(profile),
                        "--reports-dir", str(tmp_path / "reports")],
                       capture_output=True, text=True, env=env_for(tmp_path, bug_vars if bug else None), cwd=tmp_path,
                       timeout=240)
    r = latest(tmp_path / "reports")
    if bug:
        assert p.returncode == 1, p.stderr[-3000:]
        assert code in codes(r) and code in p.stderr
    else:
        assert p.returncode == 0, p.stderr[-3000:]
        assert r["verdict"] == "CLEAN" and r["outcomes"].get("ok", 0) > 20


@pytest.mark.parametrize("bug", [False, True], ids=["clean", "bug"])
def test_chat_gateway_streams(tmp_path, bug):
    """The declared stream table (SSE, delta.text): clean streams are CLEAN, shared sessions cross."""
    profile, _, _, _, bug_vars, _ = SERVICES["chat_gateway"]
    p = subprocess.run([*SESSIONSTORM, "run", "streaming_shared_key", "--target-profile", str(profile)],
                       capture_output=True, text=True, env=env_for(tmp_path, bug_vars if bug else None), cwd=tmp_path,
                       timeout=240)
    r = latest(tmp_path / "reports")
    if bug:
        assert p.returncode == 1 and codes(r) & {"CROSSTALK", "STREAM_INTERLEAVED"}, p.stdout + p.stderr[-2000:]
    else:
        assert p.returncode == 0 and r["outcomes"].get("ok", 0) >= 20, p.stdout + p.stderr[-2000:]


@pytest.mark.parametrize(("sets", "expected"), [
    ((), set()),
    (("contract.request_id=forwarded",), {"REQUEST_ID_MISMATCH"}),
    (("contract.provider_sessions=one-per-key",), {"SESSION_CHURN"}),
], ids=["declared-contract", "forwarded-ids-promised", "one-session-per-key-promised"])
def test_contract_decides_what_is_judged(tmp_path, sets, expected):
    """The same clean gateway: judged against what its profile promises (own request ids, a
    pool of 4 sessions per key) it is CLEAN; judged against promises it never made, the
    checks fire on it, and results.json names the contract each run was judged against."""
    profile = SERVICES["chat_gateway"][0]
    args = [a for s in sets for a in ("--set", s)]
    if "contract.provider_sessions=one-per-key" in sets:
        args += ["--set", "contract.max_new_sessions_per_key=1"]
    p = subprocess.run([*SESSIONSTORM, "run", "shared_key", "--target-profile", str(profile), *args],
                       capture_output=True, text=True, env=env_for(tmp_path, None), cwd=tmp_path, timeout=240)
    r = latest(tmp_path / "reports")
    assert codes(r) == expected, p.stdout + p.stderr[-2000:]
    assert p.returncode == (1 if expected else 0)
    c = r["contract"]
    if not sets:
        assert (c["request_id"], c["provider_sessions"], c["max_new_sessions_per_key"]) == ("own", "pooled", 4)
        assert "contract: request_id own, provider_sessions pooled (max 4 new per key in 10 s)" in p.stdout
        report = next((tmp_path / "reports").rglob("report.html")).read_text()
        assert "Judged against the contract: request_id = own, provider_sessions = pooled" in report
    elif "contract.request_id=forwarded" in sets:
        assert c["request_id"] == "forwarded"
    else:
        assert c["provider_sessions"] == "one-per-key"
