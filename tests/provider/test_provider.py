"""The stub provider over real HTTP: both profiles, the crosstalk mechanism, faults, bad input."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import orjson
import pytest

from sessionstorm.canary import canary_for, find_canaries, new_op_id, parse_chunk_tag, parse_echo


@pytest.fixture
def provider(sessionstorm_stack):
    url = sessionstorm_stack.provider.url
    yield url
    httpx.post(url + "/admin/faults", json={"fault_500": 0, "fault_drop": 0, "fault_cut": 0, "delay_ms": 0,
                                            "session_ttl_s": 0})


def chat_body(canary: str, model: str = "llama-70b", stream: bool = False) -> dict:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": f"Topic with {canary} inside."}],
            **({"stream_options": {"include_usage": True}} if stream else {})}


def sse_events(text: str) -> list:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def test_models_and_openai_json(provider):
    assert [m["id"] for m in httpx.get(provider + "/v1/models").json()["data"]] == ["qwen3-235b", "llama-70b", "mistral-7b"]
    c = canary_for(new_op_id())
    r = httpx.post(provider + "/v1/chat/completions", json=chat_body(c), headers={"X-Request-ID": "rid-1"})
    doc = r.json()
    echo = parse_echo(doc["choices"][0]["message"]["content"])
    assert r.status_code == 200 and r.headers["x-request-id"] == "rid-1"
    assert echo.model == "llama-70b" and echo.canaries == (c,) and echo.request_id == "rid-1" and echo.session is None
    assert doc["usage"]["completion_tokens"] > 0 and r.headers["x-sessionstorm-server"].startswith("provider-")
    again = httpx.post(provider + "/v1/chat/completions", json=chat_body(c)).json()
    assert again["choices"][0]["message"]["content"].split("\n")[1] == doc["choices"][0]["message"]["content"].split("\n")[1]


def test_openai_stream(provider):
    c = canary_for(new_op_id())
    r = httpx.post(provider + "/v1/chat/completions", json=chat_body(c, stream=True))
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert "usage" in chunks[-1] and chunks[-1]["choices"] == []
    contents = [ch["choices"][0]["delta"].get("content") for ch in chunks[:-1] if ch["choices"][0]["delta"]]
    assert parse_echo(contents[0]).canaries == (c,)
    assert all(parse_chunk_tag(t) == (c,) for t in contents[1:])


def open_session(provider, model="qwen3-235b", duration=60):
    r = httpx.post(f"{provider}/blockchain/models/{model}/session", json={"sessionDuration": duration})
    assert r.status_code == 200
    sid = r.json()["sessionID"]
    assert sid.startswith("0x") and len(sid) == 66
    return sid


def test_session_router_serves_the_sessions_model_and_closes(provider):
    sid = open_session(provider)
    assert httpx.get(f"{provider}/blockchain/sessions/{sid}").json()["model"] == "qwen3-235b"
    c = canary_for(new_op_id())
    r = httpx.post(provider + "/v1/chat/completions", json=chat_body(c, model="llama-70b"), headers={"session_id": sid})
    echo = parse_echo(r.json()["choices"][0]["message"]["content"])
    assert echo.model == "qwen3-235b" and echo.session == sid and r.headers["x-session-id"] == sid
    r = httpx.post(provider + "/v1/chat/completions", json=chat_body(c), headers={"X-Session-ID": sid, "model_id": "llama-70b"})
    assert r.status_code == 409 and "does not match" in r.json()["error"]["message"]
    assert httpx.post(f"{provider}/blockchain/sessions/{sid}/close").json()["closed"] is True
    r = httpx.post(provider + "/v1/chat/completions", json=chat_body(c), headers={"session_id": sid})
    assert r.status_code == 410 and r.json() == {"error": {"message": "session expired", "type": "invalid_request_error",
                                                           "param": None, "code": "session_expired"}}


async def _burst(provider, sid, n, with_request_id, stream=False):
    canaries = [canary_for(new_op_id()) for _ in range(n)]
    async with httpx.AsyncClient(base_url=provider, timeout=30) as client:
        async def one(i):
            headers = {"session_id": sid, **({"X-Request-ID": f"r{i}"} if with_request_id else {})}
            return await client.post("/v1/chat/completions", json=chat_body(canaries[i], stream=stream), headers=headers)
        replies = await asyncio.gather(*(one(i) for i in range(n)))
    return canaries, replies


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_without_request_id_concurrent_replies_cross_and_with_it_they_do_not(provider, stream):
    def foreign(canaries, replies):
        return sum(1 for c, r in zip(canaries, replies) if set(find_canaries(r.text)) - {c})
    sid = open_session(provider)
    crossed = 0
    for _ in range(3):  # a race: a few tries at most
        crossed = foreign(*asyncio.run(_burst(provider, sid, 8, with_request_id=False, stream=stream)))
        if crossed:
            break
    assert crossed > 0
    canaries, replies = asyncio.run(_burst(provider, sid, 8, with_request_id=True, stream=stream))
    assert all(r.status_code == 200 for r in replies)
    assert foreign(canaries, replies) == 0 and all(c in r.text for c, r in zip(canaries, replies))


def set_faults(provider, **faults):
    r = httpx.post(provider + "/admin/faults", json=faults)
    assert r.status_code == 200, r.text
    return r.json()


def test_faults_switch_at_run_time(provider):
    c = canary_for(new_op_id())
    set_faults(provider, fault_500=1.0)
    assert httpx.post(provider + "/v1/chat/completions", json=chat_body(c)).status_code == 500
    set_faults(provider, fault_500=0.0, fault_drop=1.0)
    with pytest.raises(httpx.RemoteProtocolError):  # closed without sending a byte
        httpx.post(provider + "/v1/chat/completions", json=chat_body(c))
    set_faults(provider, fault_drop=0.0, fault_cut=1.0)
    with pytest.raises(httpx.RemoteProtocolError):  # the stream ends mid-way, never [DONE]
        httpx.post(provider + "/v1/chat/completions", json=chat_body(c, stream=True))
    set_faults(provider, fault_cut=0.0, delay_ms=300)
    t0 = time.monotonic()
    assert httpx.post(provider + "/v1/chat/completions", json=chat_body(c)).status_code == 200
    assert time.monotonic() - t0 >= 0.3  # the delay really is added (a lower bound, not a speed target)
    set_faults(provider, delay_ms=0, session_ttl_s=1)
    sid = open_session(provider, duration=3600)
    time.sleep(1.1)
    assert httpx.post(provider + "/v1/chat/completions", json=chat_body(c), headers={"session_id": sid}).status_code == 410


def test_bad_fault_settings_are_refused(provider):
    r = httpx.post(provider + "/admin/faults", json={"fault_500": 3})
    assert r.status_code == 422 and "fault-500=3" in r.json()["error"]
    r = httpx.post(provider + "/admin/faults", json={"nonsense": 1})
    assert r.status_code == 422 and "nonsense" in r.json()["error"]


@pytest.mark.parametrize(("body", "headers", "status", "words"), [
    (b"{not json", {}, 400, "malformed JSON"),
    (b'{"model": "llama-70b"}', {}, 400, "messages"),
    (b'{"model": "gpt-99", "messages": [{"role": "user", "content": "x"}]}', {}, 404, "unknown model"),
    (b'{"messages": [{"role": "user", "content": "x"}]}', {"session_id": "0xdead"}, 404, "unknown session"),
    (b'{"messages": [{"role": "user", "content": "x"}]}', {}, 400, "model"),
])
def test_bad_input_gets_a_clear_4xx(provider, body, headers, status, words):
    r = httpx.post(provider + "/v1/chat/completions", content=body, headers=headers)
    assert r.status_code == status and words in r.json()["error"]["message"]  # OpenAI's error object


def test_bad_start_setting_is_one_line_exit_2():
    p = subprocess.run([sys.executable, "-m", "sessionstorm.provider", "--port", "1", "--jitter-ms", "-5"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "jitter-ms=-5" in p.stderr
