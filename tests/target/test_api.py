"""Every endpoint of the clean reference target, and bad input: a clear 4xx, never a 500."""
from __future__ import annotations

import subprocess
import sys

import httpx
import orjson
import pytest
from pg_helpers import sql

from sessionstorm.canary import canary_for, new_op_id, parse_echo

from .conftest import new_key


def test_health_admin_and_key_storage(target, sessionstorm_stack):
    t = target()
    assert httpx.get(t.url + "/healthz").json() == {"ok": True, "bugs": []}
    assert httpx.post(t.url + "/admin/keys", json={"user": "x"}).status_code == 401
    key = new_key(t.url, "alice")
    hashes = [r["key_hash"] for r in sql(t.postgres.dsn, "SELECT key_hash FROM api_keys")]
    assert key not in hashes and len(hashes[-1]) == 64  # only a hash is kept


def test_gateway_json_and_stream_forward_request_id_and_session(target):
    t = target()
    h = {"Authorization": f"Bearer {new_key(t.url)}", "X-Request-ID": "req-1"}
    c = canary_for(new_op_id())
    body = {"model": "mistral-7b", "messages": [{"role": "user", "content": f"about {c}"}]}
    r = httpx.post(t.url + "/v1/chat/completions", json=body, headers=h)
    echo = parse_echo(r.json()["choices"][0]["message"]["content"])
    assert r.status_code == 200 and echo.canaries == (c,) and echo.request_id == "req-1" and echo.model == "mistral-7b"
    assert r.headers["x-session-id"] == echo.session and r.headers["x-sessionstorm-server"].startswith("target-")
    s = httpx.post(t.url + "/v1/chat/completions", json={**body, "stream": True}, headers=h)
    assert s.status_code == 200 and s.text.rstrip().endswith("data: [DONE]") and c in s.text
    assert s.headers["x-session-id"] == echo.session  # same key, same model: the session is reused


def test_observe_crud_and_the_two_kinds_of_404(target):
    t = target()
    sid = httpx.post(t.url + "/sessions").json()["session_id"]
    assert httpx.post(f"{t.url}/sessions/{sid}/observe", json={"observation": "a"}).json()["length"] == 1
    assert httpx.post(f"{t.url}/sessions/{sid}/observe", json={"observation": {"b": 2}}).json()["length"] == 2
    assert httpx.get(f"{t.url}/sessions/{sid}").json()["observations"] == ["a", {"b": 2}]
    assert httpx.delete(f"{t.url}/sessions/{sid}").status_code == 200
    gone = httpx.get(f"{t.url}/sessions/{sid}")
    assert gone.status_code == 404 and gone.json()["error"] == "SESSION_NOT_FOUND"
    routing = httpx.post(f"{t.url}/sessions/{sid}/observe/extra", json={})
    assert routing.status_code == 404 and routing.json() == {"detail": "Not Found"}


def test_conversation_keeps_context(target):
    t = target()
    url = t.url + "/v1/conversations/carol/messages"
    replies = [httpx.post(url, json={"content": f"m{i}"}).json() for i in range(3)]
    assert len({r["session_id"] for r in replies}) == 1
    assert [r["turn"] for r in replies] == [1, 2, 3] and replies[-1]["context"] == ["m0", "m1", "m2"]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "code"), [
    ("POST", "/v1/chat/completions", {"model": "llama-70b", "messages": [{"role": "user", "content": "x"}]}, {}, 401, "MISSING_API_KEY"),
    ("POST", "/v1/chat/completions", {"model": "llama-70b", "messages": [{"role": "user", "content": "x"}]},
     {"Authorization": "Bearer sk-wrong"}, 401, "INVALID_API_KEY"),
    ("POST", "/v1/chat/completions", {"model": "gpt-99", "messages": [{"role": "user", "content": "x"}]}, "KEY", 404, "UNKNOWN_MODEL"),
    ("POST", "/v1/chat/completions", b"{oops", "KEY", 400, "INVALID_JSON"),
    ("POST", "/v1/chat/completions", {"model": "llama-70b"}, "KEY", 400, "INVALID_REQUEST"),
    ("POST", "/v1/chat/completions", {"model": "llama-70b", "messages": [{"role": "user", "content": "x" * 40000}]},
     "KEY", 413, "PROMPT_TOO_LARGE"),
    ("POST", "/sessions/not-an-id/observe", {"observation": 1}, {}, 400, "INVALID_SESSION_ID"),
    ("POST", "/sessions/" + "0" * 32 + "/observe", {"nothing": 1}, {}, 400, "INVALID_REQUEST"),
    ("GET", "/sessions/" + "0" * 32, None, {}, 404, "SESSION_NOT_FOUND"),
    ("POST", "/v1/conversations/u/messages", {"content": 5}, {}, 400, "INVALID_REQUEST"),
    ("POST", "/admin/keys", {"user": "x"}, {"Authorization": "Bearer nope"}, 401, "INVALID_ADMIN_TOKEN"),
])
def test_bad_input_is_a_clear_4xx(target, method, path, body, headers, status, code):
    t = target()
    if headers == "KEY":
        headers = {"Authorization": f"Bearer {new_key(t.url)}"}
    content = body if isinstance(body, bytes) else (orjson.dumps(body) if body is not None else None)
    r = httpx.request(method, t.url + path, content=content, headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == status and r.json()["error"] == code and r.json()["message"]


def test_unknown_bug_flag_is_one_line_exit_2():
    p = subprocess.run([sys.executable, "-m", "sessionstorm.target", "serve", "--bugs", "no-such-bug"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no-request-id" in p.stderr
