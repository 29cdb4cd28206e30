"""Builders and parsers of each flavor: pure data in, op record fields out."""
import orjson
import pytest

from sessionstorm.canary import canary_for, find_canaries, format_echo, new_op_id
from sessionstorm.workload import conversation, gateway, observe
from sessionstorm.workload.op import transport_error
from sessionstorm.profiles import REFERENCE
from sessionstorm.profile import load_profile
from sessionstorm.workload.prompts import PromptMaker



@pytest.fixture(scope="module")
def profile():
    return load_profile(REFERENCE, check=False)


@pytest.fixture
def prompts():
    return PromptMaker(seed=3, locale=["en_US", "de_DE", "ja_JP"])


def test_chat_request_carries_canary_auth_and_request_id(profile, prompts):
    req = gateway.build_chat(profile, prompts, key="sk-1", model="llama-70b", user="u")
    body = orjson.loads(req.body)
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["Authorization"] == "Bearer sk-1" and req.headers["X-Request-ID"] == req.op["id"]
    assert find_canaries(body["messages"][0]["content"]) == [req.canary] == req.op["canaries_sent"]
    assert req.canary == canary_for(req.op["id"]) and body["model"] == "llama-70b" and body["stream"] is False
    assert req.op["key"].startswith("fp_") and "sk-1" not in orjson.dumps(req.op).decode()


def test_chat_reply_with_json_escapes(profile, prompts):
    req = gateway.build_chat(profile, prompts, key="k", model="llama-70b")
    content = format_echo("llama-70b", "0xabc", req.op["id"], [req.canary]) + '\n"quoted" \\ café 日本 \u2028'
    body = orjson.dumps({"model": "gateway-alias", "choices": [{"message": {"content": content}}]})
    assert b"\\\\" in body  # the JSON really is escaped
    op = gateway.parse_chat(req.op, 200, [("X-Session-ID", "0xabc"), ("X-Sessionstorm-Server", "gw-h-1")], body)
    assert op["canaries_seen"] == [req.canary] and op["outcome"] == "ok"
    assert op["model_served"] == "llama-70b"  # the echo (what served) wins over the JSON alias
    assert (op["session_seen"], op["request_id_seen"], op["server_id"]) == ("0xabc", req.op["id"], "gw-h-1")


def test_chat_reply_from_a_real_llm_without_echo(profile):
    req = gateway.build_chat(profile, PromptMaker("real", seed=1), key="k", model="m")
    assert "copied exactly" in orjson.loads(req.body)["messages"][0]["content"]
    body = orjson.dumps({"model": "m", "choices": [{"message": {"content": "Sure! Here is a summary."}}]})
    op = gateway.parse_chat(req.op, 200, {"X-Request-ID": "gw-7"}, body)
    assert op["canaries_seen"] == [] and op["outcome"] == "ok" and op["model_served"] == "m"
    assert op["request_id_seen"] == "gw-7"


def test_chat_reply_carrying_another_ops_canary(profile, prompts):
    req = gateway.build_chat(profile, prompts, key="k", model="m")
    other = canary_for(new_op_id())
    body = orjson.dumps({"choices": [{"message": {"content": format_echo("m", "0x1", None, [other])}}]})
    op = gateway.parse_chat(req.op, 200, {}, body)
    assert op["canaries_seen"] == [other] != op["canaries_sent"]


@pytest.mark.parametrize("status,body,outcome,error", [
    (500, b'{"detail": "deadlock detected"}', "fail", "deadlock detected"),
    (504, b"upstream timed out", "info", "upstream timed out"),
    (401, b'{"error": {"message": "no", "code": "invalid_api_key"}}', "fail", "invalid_api_key"),
    (502, b"", "fail", "empty body"),
])
def test_chat_error_replies(profile, prompts, status, body, outcome, error):
    op = gateway.parse_chat(gateway.build_chat(profile, prompts, key="k", model="m").op, status, {}, body)
    assert (op["status"], op["outcome"], op["error"]) == (status, outcome, error)


def test_ok_status_with_a_non_openai_body(profile, prompts):
    req = gateway.build_chat(profile, prompts, key="k", model="m")
    op = gateway.parse_chat(req.op, 200, {}, f"plain text {req.canary}".encode())
    assert op["canaries_seen"] == [req.canary] and "choices" in op["error"]


def test_transport_errors(profile, prompts):
    op = gateway.build_chat(profile, prompts, key="k", model="m").op
    assert transport_error(op, TimeoutError("read"), sent=True)["outcome"] == "info"
    assert transport_error(op, ConnectionRefusedError(), sent=False) == op | {"outcome": "fail", "error": "ConnectionRefusedError"}


def test_observe_flavor(profile, prompts):
    req = observe.build_observe(profile, prompts, "0x/weird", key="k", user="u")
    assert req.path == "/sessions/0x%2Fweird/observe"
    assert find_canaries(orjson.loads(req.body)["observation"]) == [req.canary] == [req.op["value"]]
    ok = observe.parse(req.op, 200, {}, b'{"length": 3}')
    assert ok["outcome"] == "ok" and ok["session_seen"] == "0x/weird"
    a, b = canary_for(new_op_id()), canary_for(new_op_id())
    read = observe.build_read(profile, "s1")
    assert (read.method, read.path, read.body) == ("GET", "/sessions/s1", None)
    doc = {"session_id": "s1", "observations": [f"x {a}", {"text": f"y {b}"}, "no canary"]}
    op = observe.parse(read.op, 200, {}, orjson.dumps(doc))
    assert op["values"] == [a, b, None] and op["session_seen"] == "s1"
    nf = observe.parse(observe.build_read(profile, "s2").op, 404, {}, b'{"error": "SESSION_NOT_FOUND"}')
    routing = observe.parse(observe.build_read(profile, "s2").op, 404, {}, b'{"detail": "Not Found"}')
    assert (nf["error"], routing["error"]) == ("SESSION_NOT_FOUND", "Not Found")
    created = observe.parse(observe.build_create(profile).op, 201, {}, b'{"session_id": "s9", "ttl_seconds": 60}')
    assert created["session_seen"] == "s9" and created["outcome"] == "ok"


def test_conversation_flavor(profile, prompts):
    req = conversation.build_message(profile, prompts, "alice", key="k")
    assert req.path == "/v1/conversations/alice/messages" and req.op["user"] == "alice"
    earlier = canary_for(new_op_id())
    doc = {"session_id": "c1", "turn": 2, "context": [{"role": "user", "content": f"hi {earlier}"},
                                                        {"role": "user", "content": f"next {req.canary}"}]}
    op = conversation.parse(req.op, 200, {}, orjson.dumps(doc))
    assert (op["turn"], op["session_seen"], op["values"]) == (2, "c1", [earlier, req.canary])


def test_prompts_vary_and_carry_their_canary():
    pm = PromptMaker(seed=11)
    canaries = [canary_for(new_op_id()) for _ in range(50)]
    texts = [pm.chat(c) for c in canaries]
    assert len(set(texts)) == 50 and all(find_canaries(t) == [c] for t, c in zip(texts, canaries))
    lengths = sorted(len(t) for t in texts)
    assert lengths[-1] > 4 * lengths[0]  # varied lengths, not one template size
    assert all(find_canaries(pm.observation(c)) == [c] for c in canaries[:10])
