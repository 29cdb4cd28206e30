"""Declared operations, the one template engine, contracts and every profile mistake."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessionstorm.errors import ConfigError
from sessionstorm.exchange import Exchange
from sessionstorm.profile import load_profile
from sessionstorm.profile.templates import dsn_values, fill
from sessionstorm.workload import gateway, observe
from sessionstorm.workload.prompts import PromptMaker

# The issue's example, as written, plus a base_url so it loads without a stack.
EXAMPLE = '''
[ops.create_session]
method = "POST"
path = "/v2/threads"
body = { owner = "{user}", labels = ["load-test"] }
session_id = "thread.id"                 # JMESPath into the reply

[ops.observe]
method = "POST"
path = "/v2/threads/{session_id}/items"
body = { item = { text = "{canary}", kind = "note" } }
ok_status = [200, 201, 202]

[ops.read_session]
method = "GET"
path = "/v2/threads/{session_id}"
canaries = "items[].text"                # where the written canaries come back
not_found = { status = [404, 410] }      # what "this session does not exist" looks like

[ops.chat]
method = "POST"
path = "/api/generate"
body = { model_name = "{model}", input = "{prompt}", stream = false }
text = "output.text"                     # canaries are searched here
model = "served_by"
session_id = "meta.session"
stream = { format = "sse", text = "delta.text", done = "[DONE]" }   # or "ndjson"

[target]
identity_header = "X-Served-By"          # a server identity header, recorded per op when present
cwd = "{profile_dir}/../service"
base_url = "http://127.0.0.1:9"
'''


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def example(tmp_path: Path, extra: str = "", **sets: str) -> object:
    return load_profile(write(tmp_path, EXAMPLE + extra), {k.replace("__", "."): v for k, v in sets.items()},
                        env={}, check=False)


def reply(req, status: int, body: bytes, headers: dict | None = None) -> dict:
    ex = Exchange(req)
    ex.reply(status, headers or {}, body)
    return ex.finish()


def test_the_issue_example_builds_and_parses_as_written(tmp_path):
    p = example(tmp_path, '[keys]\nliteral = ["k1"]\n')
    assert p.target.flavors == ["observe", "gateway"]  # from the declared operations
    pm = PromptMaker(seed=1)
    create = observe.build_create(p, key="k1", user="ann")
    assert (create.method, create.path) == ("POST", "/v2/threads")
    assert create.body == b'{"owner":"ann","labels":["load-test"]}' and create.headers["Authorization"] == "Bearer k1"
    op = reply(create, 201, b'{"thread": {"id": "t/1"}}', {"X-Served-By": "node-a"})
    assert (op["kind"], op["name"], op["outcome"], op["session_seen"], op["server_id"]) == \
        ("create_session", "create_session", "ok", "t/1", "node-a")
    write_ = observe.build_observe(p, pm, "t/1", key="k1")
    assert write_.path == "/v2/threads/t%2F1/items"  # path values are URL-quoted
    canary = write_.op["value"]
    assert write_.body == b'{"item":{"text":"%s","kind":"note"}}' % canary.encode()
    assert reply(write_, 202, b"{}")["outcome"] == "ok"
    assert reply(observe.build_observe(p, pm, "t/1"), 204, b"")["outcome"] == "fail"  # 204 is not in ok_status
    read = observe.build_read(p, "t/1")
    op = reply(read, 200, b'{"items": [{"text": "%s"}, {"text": "plain"}]}' % canary.encode())
    assert op["values"] == [canary, None] and op["kind"] == "read_session"
    gone = reply(observe.build_read(p, "t/1"), 410, b'{"message": "gone"}')
    assert gone["not_found"] is True and gone["error"].startswith("SESSION_NOT_FOUND")
    chat = gateway.build_chat(p, pm, key="k1", model="m1")
    c = chat.op["canaries_sent"][0]
    assert b'"model_name":"m1"' in chat.body and c.encode() in chat.body and b'"stream":false' in chat.body
    op = reply(chat, 200, b'{"output": {"text": "ok %s"}, "served_by": "m1", "meta": {"session": "s9"}}' % c.encode())
    assert (op["canaries_seen"], op["model_served"], op["session_seen"]) == ([c], "m1", "s9")
    stream = gateway.build_chat(p, pm, key="k1", model="m1", stream=True)
    assert b'"stream":true' in stream.body and stream.op["kind"] == "chat_stream"
    ex = Exchange(stream)
    ex.begin(200, {})
    c = stream.op["canaries_sent"][0]
    ex.feed(b'data: {"delta": {"text": "a %s"}, "served_by": "m1", "meta": {"session": "s9"}}\n\n' % c.encode(), 1.0)
    ex.feed(b'data: {"delta": {"text": " b"}}\n\ndata: [DONE]\n\n', 1.1)
    ex.end_stream()
    op = ex.finish()
    assert (op["outcome"], op["canaries_seen"], op["chunks"], op["model_served"], op["session_seen"]) == \
        ("ok", [c], 2, "m1", "s9")


def test_a_reply_without_a_declared_field_is_not_verified(tmp_path):
    p = example(tmp_path, '[auth]\nheader = ""\n')
    op = reply(observe.build_create(p), 201, b'{"id": "x"}')
    assert op["outcome"] == "fail" and "thread.id" in op["error"] and op["missing"] == "session_id"
    op = reply(observe.build_read(p, "x"), 200, b'{"entries": []}')
    assert op["outcome"] == "fail" and "items[].text" in op["error"]


def test_ndjson_stream_and_header_fields(tmp_path):
    p = example(tmp_path, '[auth]\nheader = ""\n', ops__chat__stream='{format = "ndjson", text = "t", done = ""}',
                ops__chat__session_id="header:X-Session")
    req = gateway.build_chat(p, PromptMaker(seed=2), key=None, model="m", stream=True)
    c = req.op["canaries_sent"][0].encode()
    ex = Exchange(req)
    ex.begin(200, {"X-Session": "h1"})
    ex.feed(b'{"t": "x %s"}\n{"t": "y"' % c, 1.0)
    ex.feed(b'}\n', 1.1)
    ex.end_stream()
    op = ex.finish()
    assert (op["outcome"], op["chunks"], op["session_seen"]) == ("ok", 2, "h1")


def test_custom_kind_joins_a_check_family(tmp_path):
    text = '''
[target]
base_url = "http://127.0.0.1:9"
[auth]
header = ""
[ops.open_notebook]
kind = "create"
path = "/nb"
session_id = "id"
[ops.add_note]
kind = "write"
path = "/nb/{session_id}/notes"
build = "target_profile.hooks:build_form"
[ops.dump]
kind = "read_back"
method = "GET"
path = "/nb/{session_id}.csv"
parse = "target_profile.hooks:parse_csv"
'''
    p = load_profile(write(tmp_path, text), env={}, check=False)
    assert p.target.flavors == ["observe"]
    req = observe.build_observe(p, PromptMaker(seed=3), "n1", user="bo")
    assert req.op["kind"] == "observe" and req.op["name"] == "add_note"  # judged as a write
    assert req.body == f"note={req.op['value']}&who=bo".encode()
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    op = reply(observe.build_read(p, "n1"), 200, b"%s,,x\n" % req.op["value"].encode())
    assert op["kind"] == "read_session" and op["values"] == [req.op["value"], None, "x"] and op["session_seen"] == "n1"


def test_one_template_engine_and_its_values():
    assert fill("{a}-{{a}}-{\"json\": 1}", {"a": "x"}) == 'x-{a}-{"json": 1}'
    with pytest.raises(ConfigError, match=r"a value for \{b\}"):
        fill("{b}", {"a": "x"}, "target.env")
    v = dsn_values("postgres://u:p%40ss@127.0.0.1:5433/db")
    assert v["postgres_dsn_asyncpg"] == "postgresql+asyncpg://u:p%40ss@127.0.0.1:5433/db"
    assert v["postgres_dsn_psycopg"].startswith("postgresql+psycopg://") and v["postgres_dsn_libpq"].startswith("postgresql://")
    assert (v["postgres_password"], v["postgres_port"], v["postgres_db"]) == ("p@ss", "5433", "db")
    from sessionstorm.stack.base import (
        fill as stack_fill,  # the stack fills with the same engine
    )
    assert stack_fill("{port} {unknown} {}", {"port": "1"}) == "1 {unknown} {}"


def test_host_and_dsn_variants_are_template_values(tmp_path):
    text = '''
[target]
command = ["{python}", "-m", "svc", "--host", "{host}", "--port", "{port}"]
env = { DB = "{postgres_dsn_asyncpg}", PG = "{postgres_dsn_psycopg}", R = "{redis_port}" }
cwd = "{profile_dir}"
[keys]
literal = ["k"]
'''
    p = load_profile(write(tmp_path, text), env={}, check=False)
    assert p.target.command[4] == "{host}"


@pytest.mark.parametrize(("text", "words"), [
    ('[ops.observe]\npath = "/t/{thread}/items"\n', ["ops.observe.path", "{thread}", "{session_id}", "{canary}"]),
    ('[ops.create_session]\npath = "/t"\nsession_id = "thread..id"\n', ["ops.create_session.session_id", "thread..id", "JMESPath"]),
    ('[ops.create_session]\npath = "/t"\n', ["ops.create_session.session_id", "missing", "thread.id"]),
    ('[ops.read_session]\npath = "/t"\n', ["ops.read_session.canaries", "items[].text"]),
    ('[ops.add]\npath = "/t"\n', ["ops.add.kind", "missing", "create, write, read_back"]),
    ('[ops.add]\nkind = "append"\npath = "/t"\n', ["ops.add.kind", "append"]),
    ('[ops.chat]\npath = "/t"\nbodyy = "x"\n', ["ops.chat.bodyy", "one of the keys of [ops.chat]"]),
    ('[ops.chat]\npath = "t"\n', ["ops.chat.path", "starting with /"]),
    ('[ops.chat]\npath = "/t"\nok_status = [999]\n', ["ops.chat.ok_status", "999"]),
    ('[ops.chat]\npath = "/t"\nstream = { format = "ws" }\n', ["ops.chat.stream.format", "ws", "ndjson"]),
    ('[ops.chat]\npath = "/t"\nbuild = "no_such_module:f"\n', ["ops.chat.build", "no_such_module:f", "PYTHONPATH"]),
    ('[ops.chat]\npath = "/t"\nparse = "target_profile.hooks:nothing"\n', ["ops.chat.parse", "target_profile.hooks:nothing"]),
    ('[ops.a]\nkind = "write"\npath = "/a"\n[ops.b]\nkind = "write"\npath = "/b"\n', ["ops.b.kind", "one operation per family"]),
    ('[contract]\nrequest_id = "minted"\n', ["contract.request_id", "minted", '"own"']),
    ('[contract]\nprovider_sessions = "shared"\n', ["contract.provider_sessions", "pooled"]),
    ('[contract]\nmax_new_sessions_per_key = 0\n', ["contract.max_new_sessions_per_key", ">= 1"]),
    ('[contract]\nobserve = "maybe"\n', ["contract.observe", "best-effort"]),
    ('[target]\ncwd = "{workdir}"\n', ["target.cwd", "{workdir}", "{profile_dir}"]),
    ('[target]\ncommand = ["x"]\ncwd = "{profile_dir}/../nowhere"\n', ["target.cwd", "nowhere", "an existing folder"]),
    ('[invariants]\nx = "SELECT {tbl}"\n', ["invariants.x", "{tbl}"]),
], ids=["unknown-placeholder", "bad-jmespath", "create-without-session-id", "read-without-canaries",
        "custom-without-kind", "unknown-kind", "unknown-key", "relative-path", "bad-status", "bad-stream-format",
        "build-hook-import", "parse-hook-missing", "two-writes", "contract-request-id", "contract-sessions",
        "contract-max-new", "contract-observe", "cwd-placeholder", "cwd-missing", "sql-placeholder"])
def test_every_profile_mistake_is_one_line_exit_2(tmp_path, text, words):
    base = '[target]\nbase_url = "http://127.0.0.1:9"\n' if "[target]" not in text else ""
    fixed = text if "command" in text else text.replace("[target]\n", '[target]\nbase_url = "http://127.0.0.1:9"\n')
    path = write(tmp_path, base + fixed + '[auth]\nheader = ""\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SESSIONSTORM_")},
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, "-m", "sessionstorm.cli", "check-profile", str(path), "--offline"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sessionstorm: error:"), p.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert "fix" in lines[0] or "add" in lines[0] or "write" in lines[0] or "drop" in lines[0]


def test_a_profile_knows_nothing_of_processes():
    """No profile <-> launch cycle: importing the profile package loads neither the stack nor the workload."""
    code = "import sys, sessionstorm.profile; print(sorted(m for m in sys.modules if m.startswith('sessionstorm.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "stack" not in out and "workload" not in out and "sessionstorm.profile.load" in out


@pytest.mark.parametrize("command", ["run", "probe"])
def test_a_profile_mistake_stops_run_and_probe_before_anything_starts(tmp_path, command):
    services = Path(__file__).resolve().parents[1] / "services"
    bad = write(tmp_path, (services / "threads.toml").read_text().replace('canaries = "items[].text"',
                                                                         'canaries = "items[.text"'))
    args = (["run", "parallel_observe", "--target-profile", str(bad)] if command == "run"
            else ["check-profile", str(bad), "--probe"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSTORM_")}
    p = subprocess.run([sys.executable, "-m", "sessionstorm.cli", *args], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=60)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "ops.read_session.canaries=items[.text" in lines[0] and "JMESPath" in lines[0], p.stderr
    assert not (tmp_path / "reports").exists()  # no run folder, no stack


def test_identity_header_is_recorded_for_short_form_ops_too():
    from sessionstorm.profiles import REFERENCE
    p = load_profile(REFERENCE, {"target.identity_header": "X-Node"}, env={}, check=False)
    op = reply(observe.build_create(p), 200, b'{"session_id": "s1"}', {"X-Node": "node-b"})
    assert (op["server_id"], op["session_seen"]) == ("node-b", "s1")
    req = gateway.build_chat(p, PromptMaker(seed=4), key="k", model="m", stream=True)
    ex = Exchange(req)
    ex.begin(200, {"X-Node": "node-c"})
    ex.end_stream()
    assert ex.finish()["server_id"] == "node-c"
    plain = load_profile(REFERENCE, env={}, check=False)
    assert observe.build_create(plain).parse is None  # nothing declared: the kind's parser, untouched
