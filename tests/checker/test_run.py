import json
import subprocess
import sys

from sessionstorm.checker import check_run, compose
from sessionstorm.checker.observe import Observe

from .conftest import op


def test_compose_ranks_false_over_unknown_over_true():
    assert compose([True, True]) is True
    assert compose([True, None]) == "unknown"
    assert compose([None, False, True]) is False


def test_a_crashing_checker_is_unknown_never_pass(write_run, monkeypatch):
    def boom(self, op):
        raise RuntimeError("checker bug")
    monkeypatch.setattr(Observe, "scan", boom)  # the checker's pass over the history (columnar: scan)
    r = check_run(write_run([op("observe", session_sent="S", value="v")]))
    assert r["valid"] == "unknown" and "checker bug" in r["checkers"]["observe"]["error"]


def test_corrupt_lines_are_reported_and_the_rest_checked(write_run, storage):
    run = write_run([op(), op()])
    path = next((run.path / "history").glob("*.jsonl"))
    path.write_bytes(path.read_bytes() + b"{truncated")
    r = check_run(run)
    assert r["ops"] == 2 and r["corrupt_count"] == 1 and r["valid"] == "unknown"  # unchecked ops prove nothing
    assert any("corrupt" in reason for reason in r["reasons"])


def cli(*args):
    return subprocess.run([sys.executable, "-m", "sessionstorm.cli", "check", *args], capture_output=True, text=True)


def test_cli_exit_codes(write_run, tmp_path):
    clean = write_run([op()])
    p = cli(str(clean.path))
    assert p.returncode == 0 and "CLEAN" in p.stdout
    bad = op()
    bad["model_served"] = "m9"
    dirty = write_run([bad])
    p = cli(str(dirty.path))
    assert p.returncode == 1 and "WRONG_MODEL" in p.stdout
    assert json.loads((dirty.path / "results.json").read_text())["valid"] is False
    p = cli(str(tmp_path / "missing"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "run folder" in p.stderr


def test_plugin_entry_points_are_looked_up_once_per_process_and_path(monkeypatch):
    from sessionstorm import plugins
    calls = []
    monkeypatch.setattr(plugins, "entry_points", lambda group: calls.append(group) or [])
    plugins._entry_points.cache_clear()
    try:
        assert plugins.checkers({}) == [] and plugins.checkers({}) == []
        assert calls == [plugins.CHECKER_GROUP]  # once: the second check reuses the scan
        monkeypatch.syspath_prepend("/nonexistent-plugin-dir")  # a path where a plugin may have appeared
        plugins.checkers({})
        assert len(calls) == 2
    finally:
        plugins._entry_points.cache_clear()
