"""`sessionstorm check-profile FILE --probe` against the thread service (tests/services): a good
profile exits 0 with a table per operation; each kind of mistake exits 2 with one line naming
the operation (or key) and the fix."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[1] / "services"
THREADS = SERVICES / "threads.toml"


def check_profile(tmp_path: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSTORM_")}
    return subprocess.run([sys.executable, "-m", "sessionstorm.cli", "check-profile", str(profile), "--probe", *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)


def errors(p: subprocess.CompletedProcess) -> list[str]:
    return [line for line in p.stderr.splitlines() if line.startswith("sessionstorm: error:")]


def test_good_profile_probes_every_operation(tmp_path):
    p = check_profile(tmp_path, THREADS)
    assert p.returncode == 0, p.stdout + p.stderr
    for op in ("[ops.create_session] (create) ok", "[ops.observe] (write) ok", "[ops.read_session] (read_back) ok"):
        assert op in p.stdout
    assert "-> found in values" in p.stdout and "every operation works (3 probed)" in p.stdout
    assert not errors(p)


def test_good_gateway_profile_redacts_the_key(tmp_path):
    p = check_profile(tmp_path, SERVICES / "chat_gateway.toml")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[ops.chat] stream (chat_stream) ok" in p.stdout and "sent -> found in the reply text" in p.stdout
    assert "team-a-key" not in p.stdout and "'<key>'" in p.stdout


@pytest.mark.parametrize(("sets", "words"), [
    # wrong JMESPath: the reply has thread.id, not thread.ident
    (("ops.create_session.session_id=thread.ident",), ["[ops.create_session]", "'thread.ident'", "fix [ops.create_session] session_id"]),
    (("ops.read_session.canaries=items[].body",), ["[ops.read_session]", "not among the values", "fix [ops.read_session] canaries"]),
    # wrong status: the service answers 202 to an append
    (("ops.observe.ok_status=[200]",), ["[ops.observe]", "status 202 not in ok_status", "add 202 to [ops.observe] ok_status"]),
    # failing SQL
    (("database.dsn={postgres_dsn}", "invariants.no_dup=SELECT * FROM no_such_table"),
     ["[invariants] no_dup", "the query failed", "no_such_table", "fix invariants.no_dup"]),
], ids=["wrong-jmespath-session", "wrong-jmespath-canaries", "wrong-status", "failing-sql"])
def test_each_mistake_is_one_line_exit_2(tmp_path, sets, words):
    args = [a for s in sets for a in ("--set", s)]
    p = check_profile(tmp_path, THREADS, *args)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = errors(p)
    assert len(lines) == 1, p.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in p.stderr


def test_missing_placeholder_fails_before_anything_starts(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(THREADS.read_text().replace('path = "/v2/threads/{session_id}/items"',
                                               'path = "/v2/threads/{thread}/items"').replace("{profile_dir}", str(SERVICES)))
    p = check_profile(tmp_path, bad)
    assert p.returncode == 2
    lines = errors(p)
    assert len(lines) == 1 and "ops.observe.path" in lines[0] and "{thread}" in lines[0] and "{session_id}" in lines[0]
    assert "ready on" not in p.stderr  # nothing was started


def test_unreachable_readiness_url(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(THREADS.read_text().split("[auth]")[0].split("[target]")[0]
                   + '[target]\nbase_url = "http://127.0.0.1:9"\nready_path = "/health"\n[auth]\nheader = ""\n'
                   + "[ops" + THREADS.read_text().split("[ops", 1)[1])
    p = check_profile(tmp_path, bad)
    assert p.returncode == 2
    lines = errors(p)
    assert len(lines) == 1 and "target.base_url=http://127.0.0.1:9" in lines[0] and "/health" in lines[0]


def test_short_form_reference_profile_probes_every_kind(tmp_path):
    """[paths] profiles (the reference gateway's) are probed per flavor, invariants and keys included."""
    from sessionstorm.profiles import REFERENCE
    p = check_profile(tmp_path, Path(REFERENCE))
    assert p.returncode == 0, p.stdout + p.stderr
    for line in ("[invariants] one_active_session_per_key (invariant) ok", "[paths] create_session (create) ok",
                 "[paths] chat (chat) ok", "[paths] message (message) ok", "every operation works (9 probed)"):
        assert line in p.stdout
