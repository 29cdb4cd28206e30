"""`sessionstorm init --openapi URL` against the thread service's own /openapi.json, then
`check-profile --probe` and a first run, as the README walks it. The proposed profile must
work unedited against the clean twin and catch the seeded lost update in the other."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessionstorm.profile import load_profile
from sessionstorm.stack.launch import launch

THREADS = Path(__file__).resolve().parents[1] / "services" / "threads.toml"


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSTORM_")}
    env["SESSIONSTORM_REPORTS"] = str(tmp_path / "reports")
    return subprocess.run([sys.executable, "-m", "sessionstorm.cli", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=180)


@pytest.mark.parametrize(("bug", "exit_code"), [("none", 0), ("lost-update", 1)])
def test_init_probe_first_run(tmp_path, sessionstorm_stack, bug, exit_code):
    profile = load_profile(THREADS, {"target.vars": f'{{bug = "{bug}"}}'}, env={}, check=False)
    target = launch(profile, sessionstorm_stack, name=f"threads-{bug}")
    try:
        p = cli(tmp_path, "init", "--openapi", f"{target.url}/openapi.json", "-o", "mine.toml")
        assert p.returncode == 0 and "3 operation(s) proposed" in p.stdout, p.stdout + p.stderr
        text = (tmp_path / "mine.toml").read_text()
        assert 'session_id = "thread.id"' in text and 'canaries = "items[].text"' in text and "{canary}" in text
        p = cli(tmp_path, "check-profile", "mine.toml", "--probe")
        assert p.returncode == 0 and "every operation works (3 probed)" in p.stdout, p.stdout + p.stderr
        p = cli(tmp_path, "run", "parallel_observe", "--target-profile", "mine.toml")
        assert p.returncode == exit_code, p.stdout + p.stderr
        results = json.loads(next((tmp_path / "reports").rglob("results.json")).read_text())
        assert {a["code"] for a in results["anomalies"]} == (set() if bug == "none" else {"LOST_WRITE"})
    finally:
        target.stop()


def test_init_without_openapi_writes_a_starter_that_loads(tmp_path):
    p = cli(tmp_path, "init")
    assert p.returncode == 0 and "0 operation(s) proposed" in p.stdout
    text = (tmp_path / "sessionstorm.toml").read_text()
    assert "[contract]" in text and "# [ops.create_session]" in text and "TODO" in text
    assert cli(tmp_path, "check-profile", "sessionstorm.toml", "--offline").returncode == 0


@pytest.mark.parametrize(("args", "words"), [
    (("--openapi", "http://10.1.2.3/openapi.json"), ["openapi=http://10.1.2.3/openapi.json", "loopback"]),
    (("--openapi", "nope.json"), ["openapi=nope.json", "existing file"]),
    (("--openapi", "http://127.0.0.1:9/openapi.json"), ["openapi=", "start the service"]),
])
def test_init_bad_input_is_one_line(tmp_path, args, words):
    p = cli(tmp_path, "init", *args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), p.stderr


def test_init_never_overwrites(tmp_path):
    (tmp_path / "sessionstorm.toml").write_text("# mine\n")
    p = cli(tmp_path, "init")
    assert p.returncode == 2 and "--force" in p.stderr
    assert (tmp_path / "sessionstorm.toml").read_text() == "# mine\n"
