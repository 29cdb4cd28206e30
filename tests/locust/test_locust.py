"""The real `locust` command in a subprocess, headless, on the embedded stack."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import portpicker
import pytest

from sessionstorm.history import history_files, iter_records

ROOT = Path(__file__).resolve().parents[2]


def locust(tmp_path: Path, locustfile: str, *args: str, bugs: str = "", run_time: str = "5s") -> tuple[subprocess.CompletedProcess, Path]:
    reports = tmp_path / "reports"
    env = {**os.environ, "SESSIONSTORM_TARGET_BUGS": bugs}
    p = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile), "--headless",
                        "-u", "16", "-r", "16", "-t", run_time, "--reports-dir", str(reports), *args],
                       capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    return p, reports


def results_of(reports: Path) -> dict:
    return json.loads((reports / "latest" / "results.json").read_text())


def test_clean_run_exits_0_with_a_full_history(tmp_path):
    p, reports = locust(tmp_path, "shared_key.py")
    assert p.returncode == 0, p.stderr[-2000:]
    r = results_of(reports)
    assert r["valid"] is True and r["outcomes"]["ok"] > 20 and "verdict: CLEAN" in p.stderr
    ops = [rec for rec in iter_records(history_files(reports / "latest")) if rec["type"] == "op"]
    assert len(ops) == r["ops"] and all(o["kind"] == "chat" and o["canaries_sent"] for o in ops)
    assert all(o["key"].startswith("fp_") for o in ops)  # keys are fingerprinted ...
    assert not any("sk-ss-" in f.read_text() for f in history_files(reports / "latest"))  # ... never written
    snaps = [rec["data"] for rec in iter_records(history_files(reports / "latest")) if rec.get("kind") == "snapshot"]
    assert "after" in {s["when"] for s in snaps} and all(s["rows"] == [] and s["error"] is None for s in snaps)
    assert (reports / "latest" / "report.html").is_file()


@pytest.mark.parametrize(("locustfile", "bugs", "code"), [
    ("shared_key.py", "no-request-id", "CROSSTALK"),
    ("parallel_observe.py", "lost-update-observe", "LOST_WRITE"),
    ("parallel_observe.py", "unlocked-lazy-init", "SPURIOUS_NOT_FOUND"),
])
def test_seeded_bug_exits_1_with_its_code(tmp_path, locustfile, bugs, code):
    p, reports = locust(tmp_path, locustfile, bugs=bugs)
    assert p.returncode == 1, p.stderr[-2000:]
    assert code in {a["code"] for a in results_of(reports)["anomalies"]}
    assert code in p.stderr  # shown online (Locust's failures) and in the summary


def test_processes_2_merge_into_one_history_and_one_verdict(tmp_path):
    port = str(portpicker.pick_unused_port())  # not Locust's 5557: another test may run a master now
    p, reports = locust(tmp_path, "shared_key.py", "--processes", "2", "--master-port", port, "--master-bind-port", port,
                        bugs="no-request-id")
    assert p.returncode == 1, p.stderr[-2000:]
    files = [f for f in history_files(reports / "latest") if "worker" in f.name or "local" in f.name]
    assert len(files) == 2 and all("worker" in f.name for f in files)
    r = results_of(reports)
    assert r["ops"] == sum(1 for f in files for rec in iter_records([f]) if rec["type"] == "op")
    assert p.stderr.count("== sessionstorm") == 1 and "CROSSTALK" in {a["code"] for a in r["anomalies"]}


@pytest.mark.parametrize(("args", "words"), [
    (("--target-bugs", "no-such-bug"), "bugs=no-such-bug"),
    (("--host", "http://127.0.0.1:9"), "host=http://127.0.0.1:9"),
    (("--shared-keys", "0"), "shared-keys=0"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    p, _ = locust(tmp_path, "shared_key.py", *args, run_time="2s")
    assert p.returncode == 2
    errors = [line for line in p.stderr.splitlines() if line.startswith("sessionstorm: error:")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in p.stderr


def test_a_worker_without_the_token_gets_no_keys(tmp_path):
    """Keys reach a worker only once it proves SESSIONSTORM_WORKER_TOKEN; a wrong one is refused
    with a line on both sides, and a worker with the right one runs the test."""
    port = str(portpicker.pick_unused_port())
    base = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "shared_key.py")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSTORM_")}
    # 15 s: on a busy machine (4 CPU hogs) a 3 s run ended before the worker's first reply
    master = subprocess.Popen([*base, "--master", "--headless", "-u", "2", "-r", "2", "-t", "15s", "--expect-workers", "1",
                               "--master-bind-port", port, "--reports-dir", str(tmp_path / "reports")],
                              env={**env, "SESSIONSTORM_WORKER_TOKEN": "tok-5e1f-right"}, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    worker = [*base, "--worker", "--master-port", port]
    try:
        rogue = subprocess.run(worker, env={**env, "SESSIONSTORM_WORKER_TOKEN": "wrong"}, cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
        assert rogue.returncode == 2, rogue.stderr[-2000:]
        assert "sessionstorm: error: the master refused this worker" in rogue.stderr
        good = subprocess.run(worker, env={**env, "SESSIONSTORM_WORKER_TOKEN": "tok-5e1f-right"}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        _, err = master.communicate(timeout=120)
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
    assert "refused worker" in err and "SESSIONSTORM_WORKER_TOKEN" in err, err[-2000:]
    r = results_of(tmp_path / "reports")
    assert r["verified_ops"] > 0 and good.returncode == 0, (good.stderr[-1000:], err[-2000:])
    history = "".join(f.read_text() for f in history_files(tmp_path / "reports" / "latest"))
    assert "tok-5e1f-right" not in history  # the token itself is never recorded
