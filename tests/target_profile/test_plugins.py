"""Scenarios and checkers of one's own, registered through entry points (no package edit):
a distribution on the path declares them, `sessionstorm run` runs the scenario by name and
the checker judges every run, against the thread service (clean and lost-update twins)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

THREADS = Path(__file__).resolve().parents[1] / "services" / "threads.toml"

PLUGIN = '''
from sessionstorm.checker.base import Checker
from sessionstorm.scenarios import Scenario
from sessionstorm.workload import observe


class ReadTwice(Scenario):
    """One session, a burst of writes, then two read-backs."""
    name = "read_twice"
    flavor = "observe"
    users = 8

    async def run(self, d):
        made = await self.burst(d, [observe.build_create(d.profile, user="rt")], "create")
        sid = made[0]["session_seen"]
        await self.burst(d, [observe.build_observe(d.profile, d.prompts, sid) for _ in range(self.users)], "write")
        for i in range(2):
            await self.burst(d, [observe.build_read(d.profile, sid)], f"read-{i}")


class ShortReads(Checker):
    """A read-back shorter than the writes acknowledged before it, by the plugin's own code."""
    name = "short_reads"
    kinds = frozenset({"observe", "read_session"})
    codes = {"SHORT_READ": ("high", "a read-back returned fewer items than were acknowledged")}

    def __init__(self, contract=None):
        self.acked, self.short = 0, []

    def op(self, op):
        if op["kind"] == "observe" and op.get("outcome") == "ok":
            self.acked += 1
        elif op["kind"] == "read_session" and op.get("outcome") == "ok" and len(op.get("values") or []) < self.acked:
            self.short.append(op["id"])

    def finish(self, report):
        for op_id in self.short:
            report("SHORT_READ", {"ops": [op_id], "detail": f"fewer than {self.acked} items"})
        return not self.short
'''


def install(tmp_path: Path, plugin: str, checker: str = "myplug:ShortReads") -> Path:
    site = tmp_path / "site"
    (site / "myplug-0.1.dist-info").mkdir(parents=True)
    (site / "myplug.py").write_text(plugin)
    (site / "myplug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (site / "myplug-0.1.dist-info" / "entry_points.txt").write_text(
        f"[sessionstorm.scenarios]\nread_twice = myplug:ReadTwice\n\n[sessionstorm.checkers]\nshort_reads = {checker}\n")
    return site


def run(tmp_path: Path, site: Path, *args: str, bug: str | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSTORM_")}
    env.update(PYTHONPATH=str(site), SESSIONSTORM_REPORTS=str(tmp_path / "reports"))
    if bug:
        env["SESSIONSTORM_TARGET_VARS"] = f'{{bug = "{bug}"}}'
    p = subprocess.run([sys.executable, "-m", "sessionstorm.cli", "run", *args], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=180)
    found = list((tmp_path / "reports").rglob("results.json"))
    return p, json.loads(found[0].read_text()) if found else {}


ROUNDS = 4


@pytest.mark.parametrize(("bug", "exit_code"), [(None, 0), ("lost-update", 1)])
def test_scenario_and_checker_from_entry_points(tmp_path, bug, exit_code):
    """A lost update needs two writes to meet: a round can miss it (CI did, 1 in many), so
    the bug gets up to ROUNDS rounds until caught and the clean twin as many, all clean."""
    site = install(tmp_path, PLUGIN)
    for n in range(ROUNDS):
        (tmp_path / f"round-{n}").mkdir()
        p, r = run(tmp_path / f"round-{n}", site, "read_twice", "--target-profile", str(THREADS), bug=bug)
        if p.returncode != 0:
            break
    assert p.returncode == exit_code, p.stdout + p.stderr
    assert r["scenario"] == "read_twice" and r["checkers"]["short_reads"]["valid"] is (bug is None)
    codes = {a["code"] for a in r["anomalies"]}
    assert codes == (set() if bug is None else {"SHORT_READ", "LOST_WRITE"})


def test_a_checker_that_cannot_load_makes_the_verdict_unknown(tmp_path):
    site = install(tmp_path, PLUGIN, checker="myplug:NoSuchChecker")
    p, r = run(tmp_path, site, "read_twice", "--target-profile", str(THREADS))
    assert p.returncode == 3 and r["verdict"] == "UNKNOWN", p.stdout + p.stderr
    assert "NoSuchChecker" in r["checkers"]["short_reads"]["error"]
