"""Every bad input: one line naming the setting, exit 2, before anything starts.

A table: the command line (and a profile, where the mistake is in one), the words the one
line must hold. `sessionstorm` runs in-process (fast); Locust in a subprocess. Remote
targets are not in this table: the guard's tests run in a network namespace of their own
(tests/safety/test_guard.py), so nothing can leave the machine even if the guard broke.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessionstorm.cli import main

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[target]
base_url = "http://127.0.0.1:9"
flavors = ["gateway"]
[keys]
source = "literal"
literal = ["k1"]
"""

PROFILES = {  # name -> profile text with one mistake (but "good")
    "good": GOOD,
    "syntax": "[target\nbase_url = 1",
    "section": GOOD + "\n[nosuch]\nx = 1\n",
    "key": GOOD.replace("[target]", "[target]\nbogus = 1"),
    "type": GOOD.replace("[target]", "[target]\ntimeout_s = \"soon\""),
    "both": GOOD.replace("[target]", "[target]\ncommand = [\"x\"]"),
    "scheme": GOOD.replace("http://127.0.0.1:9", "ftp://127.0.0.1:9"),
    "flavor": GOOD.replace('["gateway"]', '["telepathy"]'),
    "rate": GOOD + "\n[thresholds]\nerror_rate = 2.0\n",
    "keysource": GOOD.replace('source = "literal"', 'source = "nope"'),
    "authformat": GOOD + "\n[auth]\nformat = \"Bearer\"\n",
    "placeholder": GOOD + "\n[paths]\nchat = \"/v1/{nosuch}/chat\"\n",
    "negative": GOOD.replace("[target]", "[target]\ntimeout_s = -1"),
}

CASES = [  # (argv, words that the one line must hold); {p:NAME} is a profile above, {tmp} the test's folder
    (["run", "nosuch"], "nosuch"),
    (["run", "shared_key", "--users", "0"], "users=0"),
    (["run", "shared_key", "--users", "-5"], "users=-5"),
    (["run", "shared_key", "--rounds", "0"], "rounds=0"),
    (["run", "shared_key", "--users", "many"], "many"),
    (["run", "shared_key", "--bugs", "nope"], "bugs=nope"),
    (["run", "shared_key", "--bugs", "no-request-id", "--target-profile", "{p:good}"], "bugs=no-request-id"),
    (["run", "shared_key", "--expect", "CROSSTLK"], "did you mean CROSSTALK"),
    (["run", "shared_key", "--max-error-rate", "5"], "error-rate=5.0"),
    (["run", "shared_key", "--max-error-rate", "-0.1"], "error-rate=-0.1"),
    (["run", "shared_key", "--max-info-rate", "2"], "info-rate=2.0"),
    (["run", "shared_key", "--max-rps", "0"], "max-rps"),
    (["run", "shared_key", "--max-requests", "0"], "max-requests=0"),
    (["run", "shared_key", "--abort-error-rate", "0"], "abort-error-rate=0"),
    (["run", "shared_key", "--abort-error-rate", "1.5"], "abort-error-rate=1.5"),
    (["run", "shared_key", "--metrics-port", "70000"], "metrics-port=70000"),
    (["run", "shared_key", "--reports-dir", "/proc/x"], "reports-dir=/proc/x"),
    (["run", "shared_key", "--backend", "nope"], "backend=nope"),
    (["run", "shared_key", "--host", "ftp://127.0.0.1:9"], "host=ftp://127.0.0.1:9"),
    (["run", "shared_key", "--host", "http://127.0.0.1:9"], "host=http://127.0.0.1:9"),
    (["run", "shared_key", "--target-profile", "{tmp}/missing.toml"], "missing.toml"),
    (["run", "shared_key", "--set", "target.timeout_s=-1"], "target.timeout_s=-1"),
    (["run", "shared_key", "--set", "target.reprobe_s=0.01"], "target.reprobe_s=0.01"),
    (["run", "shared_key", "--set", "nosection.key=1"], "nosection.key"),
    (["run", "shared_key", "--set", "garbage"], "--set=garbage"),
    (["run", "shared_key", "--target-profile", "{p:syntax}"], "TOML"),
    (["run", "shared_key", "--target-profile", "{p:section}"], "nosuch"),
    (["run", "shared_key", "--target-profile", "{p:key}"], "target.bogus"),
    (["run", "shared_key", "--target-profile", "{p:type}"], "target.timeout_s"),
    (["run", "shared_key", "--target-profile", "{p:both}"], "target.base_url"),
    (["run", "shared_key", "--target-profile", "{p:scheme}"], "ftp://127.0.0.1:9"),
    (["run", "shared_key", "--target-profile", "{p:flavor}"], "telepathy"),
    (["run", "shared_key", "--target-profile", "{p:rate}"], "thresholds.error_rate"),
    (["run", "shared_key", "--target-profile", "{p:keysource}"], "keys.source=nope"),
    (["run", "shared_key", "--target-profile", "{p:authformat}"], "auth.format"),
    (["run", "shared_key", "--target-profile", "{p:placeholder}"], "nosuch"),
    (["run", "shared_key", "--target-profile", "{p:negative}"], "target.timeout_s"),
    (["check", "{tmp}/nowhere"], "nowhere"),
    (["check", "{tmp}/empty"], "empty"),
    (["check", "{tmp}/run", "--max-error-rate", "5"], "error-rate=5.0"),
    (["check", "{tmp}/run", "--max-p95-ms", "-5"], "p95-ms=-5.0"),
    (["report", "{tmp}/nowhere"], "nowhere"),
    (["report", "{tmp}/run", "-o", "/missing/dir/x.html"], "output=/missing/dir/x.html"),
    (["compare", "{tmp}/nowhere", "{tmp}/run"], "nowhere"),
    (["compare", "{tmp}/run", "{tmp}/other"], "scenario"),
    (["compare", "{tmp}/run", "{tmp}/run", "--latency-ratio", "-1"], "latency-ratio=-1.0"),
    (["compare", "{tmp}/run", "{tmp}/run", "--html", "/missing/dir/c.html"], "html=/missing/dir/c.html"),
    (["up", "--bugs", "nope"], "bugs=nope"),
    (["up", "--backend", "nope"], "backend=nope"),
    (["doctor", "not a url"], "not a url"),
    (["check-profile", "{tmp}/missing.toml"], "missing.toml"),
]


def _run_folder(path: Path, scenario: str) -> None:
    (path / "history").mkdir(parents=True)
    (path / "history" / "x.jsonl").write_text("")
    (path / "run.json").write_text(json.dumps({"scenario": scenario}))
    (path / "results.json").write_text(json.dumps({"valid": True, "scenario": scenario, "anomalies": [],
                                                   "stats": {}, "outcomes": {"ok": 1}}))


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    _run_folder(tmp_path / "run", "shared_key")
    _run_folder(tmp_path / "other", "mixed")
    (tmp_path / "empty").mkdir()
    for name, text in PROFILES.items():
        (tmp_path / f"{name}.toml").write_text(text)
    return tmp_path


def _fill(arg: str, tmp: Path) -> str:
    if arg.startswith("{p:"):
        return str(tmp / f"{arg[3:-1]}.toml")
    return arg.replace("{tmp}", str(tmp))


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_sessionstorm_bad_input_is_one_line_and_exit_2(argv, words, tmp, capsys, monkeypatch):
    reports = tmp / "reports"
    monkeypatch.setenv("SESSIONSTORM_REPORTS", str(reports))
    code = main([_fill(a, tmp) for a in argv])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("sessionstorm: error:")]
    assert code == 2, err
    assert len(errors) == 1 and words in errors[0], err
    assert "Traceback" not in err
    assert not reports.exists() or not any(reports.rglob("run.json")), "a run folder was made before the refusal"


def test_the_table_is_large_enough():
    assert len(CASES) + len(LOCUST_CASES) >= 40


LOCUST_CASES = [
    (["-u", "-5"], "users=-5"),
    (["--shared-keys", "0"], "shared-keys=0"),
    (["--max-error-rate", "5"], "error-rate=5.0"),
    (["--max-requests", "0"], "max-requests=0"),
    (["--target-profile", "/nonexistent/p.toml"], "p.toml"),
]


@pytest.mark.parametrize(("args", "words"), LOCUST_CASES, ids=[" ".join(a) for a, _ in LOCUST_CASES])
def test_locust_bad_input_is_one_line_and_exit_2(args, words, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSTORM_")}
    p = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "shared_key.py"), "--headless",
                        "-t", "2s", "--reports-dir", str(tmp_path / "reports"), *args],
                       capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    errors = [line for line in p.stderr.splitlines() if line.startswith("sessionstorm: error:")]
    assert p.returncode == 2, p.stderr[-2000:]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").rglob("run.json"))
