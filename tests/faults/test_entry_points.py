"""--fault through every entry point, as a user types it: `sessionstorm run`, Locust (master),
and `Run` itself; a bad fault is one line before anything starts."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessionstorm.driver import run_scenario
from sessionstorm.run import Run

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "SESSIONSTORM_BACKEND": "embedded"}


def cli(tmp_path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("sessionstorm")), "run", *args, "--reports-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=timeout, env=ENV, cwd=tmp_path)


@pytest.mark.parametrize(("args", "words"), [
    (["steady", "--fault", "kill:target"], "ACTION:COMPONENT@START"),
    (["steady", "--fault", "pause:redis@2"], "a duration for pause"),
    (["steady", "--fault", "drop:postgres@2+1"], "drop on target"),
    (["steady", "--seconds", "3", "--fault", "kill:target@5+1"], "the steady scenario with --seconds 16"),
    (["shared_key", "--fault", "kill:target@1+1"], "run the steady scenario"),
    (["steady", "--backend", "external", "--fault", "restart:postgres@1"], "an external postgres cannot be faulted"),
])
def test_a_bad_fault_is_one_line_exit_2_before_anything_starts(tmp_path, args, words):
    p = cli(tmp_path, *args, timeout=60)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr
    assert "ready on" not in p.stderr and not list(tmp_path.rglob("run.json"))  # no stack, no run folder


def test_sessionstorm_run_with_a_kill(tmp_path):
    p = cli(tmp_path, "steady", "--seconds", "6", "--fault", "kill:target@2+1")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "fault kill:target@2+1: window" in p.stdout and "recovered in" in p.stdout
    run = next((tmp_path / "r" / "steady").glob("2*"))
    meta, results = (json.loads((run / n).read_text()) for n in ("run.json", "results.json"))
    assert meta["faults"][0]["spec"] == "kill:target@2+1"
    assert results["faults"][0]["applied"] and results["faults"][0]["excused"]
    html = (run / "report.html").read_text()
    assert "kill:target@2+1" in html and 'class="fault"' in html


def test_locust_master_shows_the_fault_in_its_summary_and_report(tmp_path):
    p = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "mixed.py"), "--headless",
                        "-u", "5", "-r", "5", "-t", "8s", "--fault", "kill:target@2+1",
                        "--reports-dir", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=180, env=ENV, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "fault kill:target@2+1: window" in p.stderr, p.stderr[-3000:]
    run = next((tmp_path / "r" / "mixed").glob("2*"))
    results = json.loads((run / "results.json").read_text())
    assert results["faults"][0]["spec"] == "kill:target@2+1" and results["faults"][0]["applied"]
    assert "kill:target@2+1" in (run / "report.html").read_text()
    # its clock started with the load (test_start), after the stack and the keys
    events = [json.loads(line) for f in (run / "history").glob("*nemesis*.jsonl") for line in f.read_text().splitlines()]
    clock = [e for e in events if e.get("kind") == "fault_clock"]
    assert len(clock) == 1 and clock[0]["data"]["opened"], events


def test_a_fault_the_run_ended_before_makes_it_unknown(tmp_path):
    r = Run("steady", driver="test", faults=["restart:redis@60"], reports_dir=tmp_path).start()
    try:
        asyncio.run(run_scenario("steady", r.target, r.dir, seconds=1))
    finally:
        results = r.finish()
    # never CLEAN: the faults checker cannot decide (a finding elsewhere could still make it ANOMALIES)
    assert results["checkers"]["faults"]["valid"] == "unknown" and results["valid"] is not True
    assert r.exit_code == (3 if results["valid"] == "unknown" else 1)
    assert any("restart:redis@60 could not be applied" in x for x in results["reasons"])
