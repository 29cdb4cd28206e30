"""The openai mode driven by the official `openai` client: what it parses is what we send."""
from __future__ import annotations

import httpx
import openai
import pytest

from sessionstorm.canary import canary_for, new_op_id, parse_chunk_tag, parse_echo


@pytest.fixture
def client(openai_stub):
    with openai.OpenAI(base_url=openai_stub.url + "/v1", api_key="unused", max_retries=0, timeout=30) as c:
        yield c


def ask(canary: str) -> list[dict]:
    return [{"role": "user", "content": f"Write about {canary} today."}]


def test_chat_completion_parses_with_usage_finish_reason_and_fingerprint(client):
    c = canary_for(new_op_id())
    r = client.chat.completions.create(model="llama-70b", messages=ask(c))
    choice = r.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert parse_echo(choice.message.content).canaries == (c,)
    assert r.system_fingerprint and r.model == "llama-70b" and r.object == "chat.completion"
    assert r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_with_include_usage_ends_with_a_usage_chunk(client):
    c = canary_for(new_op_id())
    chunks = list(client.chat.completions.create(model="qwen3-235b", messages=ask(c), stream=True,
                                                 stream_options={"include_usage": True}))
    *content, last = chunks
    assert last.choices == [] and last.usage.completion_tokens > 0
    assert all(ch.usage is None and ch.system_fingerprint for ch in content)
    assert [ch.choices[0].finish_reason for ch in content] == [None] * (len(content) - 1) + ["stop"]
    texts = [ch.choices[0].delta.content for ch in content if ch.choices[0].delta.content]
    assert parse_echo(texts[0]).canaries == (c,) and all(parse_chunk_tag(t) == (c,) for t in texts[1:])


def test_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = list(client.chat.completions.create(model="qwen3-235b", messages=ask(canary_for(new_op_id())), stream=True))
    assert all(ch.choices and ch.usage is None for ch in chunks)


@pytest.mark.parametrize(("kwargs", "error", "code"), [
    ({"model": "gpt-99"}, openai.NotFoundError, "not_found"),
    ({"model": "llama-70b", "messages": []}, openai.BadRequestError, "invalid_request"),
])
def test_bad_requests_raise_the_right_exception(client, kwargs, error, code):
    with pytest.raises(error) as e:
        client.chat.completions.create(**{"messages": ask("x"), **kwargs})
    assert e.value.code == code and e.value.type == "invalid_request_error" and e.value.message


def test_expired_session_is_an_api_error_with_its_code(client, openai_stub):
    r = httpx.post(openai_stub.url + "/blockchain/models/llama-70b/session", json={"sessionDuration": 60})
    sid = r.json()["sessionID"]
    httpx.post(f"{openai_stub.url}/blockchain/sessions/{sid}/close")
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="llama-70b", messages=ask("x"), extra_headers={"session_id": sid})
    assert e.value.status_code == 410 and e.value.code == "session_expired"
