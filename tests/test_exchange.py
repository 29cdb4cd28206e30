"""The exchange model: every transport event and reply shape to its outcome (pure logic, no I/O)."""
from __future__ import annotations

import asyncio
import socket
import ssl

import httpx
import orjson
import pytest

from sessionstorm.exchange import TRANSPORT, Exchange, classify
from sessionstorm.profiles import REFERENCE
from sessionstorm.redact import Redactor
from sessionstorm.workload import gateway, observe
from sessionstorm.profile import load_profile
from sessionstorm.workload.prompts import PromptMaker


@pytest.fixture(scope="module")
def profile():
    return load_profile(REFERENCE, check=False, env={})


def chat(profile, stream=False):
    return gateway.build_chat(profile, PromptMaker("stub", seed=1), key="sk-secret-key-1", model="qwen3-235b",
                              stream=stream)


def wrapped(outer: type[BaseException], inner: BaseException) -> BaseException:
    """An exception as httpx raises it: the OS error as its cause."""
    try:
        try:
            raise inner
        except BaseException as e:
            raise outer("wrapped") from e
    except BaseException as e:
        return e


class HTTPConnectionClosed(Exception):  # geventhttpclient's name; classify reads names, not types
    pass


class Timeout(BaseException):  # gevent.Timeout's name: the op's own deadline
    pass


class GreenletExit(BaseException):
    pass


# exception, whether a connection was known to be made, the event, the outcome
CASES = [
    (wrapped(httpx.ConnectError, ConnectionRefusedError(111, "refused")), None, "refused", "fail"),
    (wrapped(httpx.ConnectError, socket.gaierror(-2, "Name or service not known")), None, "dns", "fail"),
    (wrapped(httpx.ConnectError, ssl.SSLError(1, "bad handshake")), None, "tls", "fail"),
    (wrapped(httpx.ConnectError, OSError(101, "Network is unreachable")), None, "unreachable", "fail"),
    (httpx.ConnectTimeout("connect"), None, "connect_timeout", "fail"),
    (httpx.PoolTimeout("pool"), None, "pool_timeout", "fail"),
    (ConnectionRefusedError(111, "refused"), False, "refused", "fail"),
    (TimeoutError("timed out"), False, "connect_timeout", "fail"),   # geventhttpclient: no socket yet
    (TimeoutError("timed out"), True, "read_timeout", "info"),       # ... connected: may be processed
    (TimeoutError("timed out"), None, "read_timeout", "info"),       # unknown: never claim "not sent"
    (httpx.ReadTimeout("read"), None, "read_timeout", "info"),
    (httpx.WriteError("write"), None, "write", "info"),
    (httpx.ReadError("reset"), None, "reset", "info"),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), None, "eof", "info"),
    (ConnectionResetError(104, "reset by peer"), True, "reset", "info"),
    (BrokenPipeError(32, "broken pipe"), True, "reset", "info"),
    (HTTPConnectionClosed("connection closed"), True, "eof", "info"),
    (Timeout(), True, "deadline", "info"),
    (Timeout(), False, "connect_timeout", "fail"),
    (GreenletExit(), True, "cancelled", "info"),
    (asyncio.CancelledError(), None, "cancelled", "info"),
    (KeyboardInterrupt(), None, "cancelled", "info"),
    (RuntimeError("something else"), None, "unknown", "info"),
]


@pytest.mark.parametrize(("exc", "connected", "event", "outcome"), CASES,
                         ids=[f"{type(c[0]).__name__}-{c[1]}-{c[2]}" for c in CASES])
def test_every_transport_event_has_one_outcome(profile, exc, connected, event, outcome):
    assert classify(exc, connected) == event
    assert TRANSPORT[event] == outcome
    ex = Exchange(chat(profile))
    ex.transport(exc, connected=connected)
    op = ex.finish()
    assert (op["transport"], op["outcome"]) == (event, outcome)
    assert op["invoke_mono"] <= op["complete_mono"] and op["error"]


def test_every_event_of_the_table_is_named_by_an_outcome():
    assert set(TRANSPORT.values()) == {"fail", "info"}
    never_sent = {e for e, o in TRANSPORT.items() if o == "fail"}
    assert never_sent == {"dns", "refused", "unreachable", "connect_timeout", "tls", "pool_timeout"}


def _reply(text: str, status: int = 200, **extra) -> bytes:
    return orjson.dumps({"model": "qwen3-235b", "choices": [{"message": {"content": text}}], **extra})


@pytest.mark.parametrize(("status", "outcome"), [(200, "ok"), (401, "fail"), (404, "fail"), (500, "fail"),
                                                  (503, "fail"), (504, "info")])
def test_a_complete_reply_is_judged_by_its_status(profile, status, outcome):
    req = chat(profile)
    ex = Exchange(req, in_flight=3)
    ex.connected("127.0.0.1:9")
    body = _reply(f"answer {req.canary}") if status == 200 else b'{"error": "boom"}'
    ex.reply(status, {"content-type": "application/json"}, body)
    op = ex.finish()
    assert op["outcome"] == outcome and op["status"] == status and op["peer"] == "127.0.0.1:9"
    assert op["in_flight"] == 3 and "transport" not in op
    assert ("error_body" in op) == (status >= 500)


def test_a_stream_cut_after_data_keeps_its_chunks_and_is_unknown(profile):
    req = chat(profile, stream=True)
    ex = Exchange(req)
    ex.begin(200, {"content-type": "text/event-stream"})
    chunk = orjson.dumps({"choices": [{"delta": {"content": f"part {req.canary}"}}]})
    ex.feed(b"data: " + chunk + b"\n\n", 1.0)
    ex.transport(httpx.ReadError("connection reset"))
    op = ex.finish()
    assert op["outcome"] == "info" and op["transport"] == "truncated" and op["chunks"] == 1


def test_a_stream_without_its_end_marker_is_unknown(profile):
    ex = Exchange(chat(profile, stream=True))
    ex.begin(200, {})
    ex.feed(b'data: {"choices": [{"delta": {"content": "x"}}]}\n\n', 1.0)
    ex.end_stream()
    assert ex.finish()["outcome"] == "info"


def test_an_exchange_that_never_ended_is_unknown_never_ok(profile):
    op = Exchange(chat(profile)).finish()
    assert op["outcome"] == "info" and op["transport"] == "unknown"


def test_an_unknown_op_kind_is_an_error_not_a_silent_pass(profile):
    req = observe.build_create(profile)
    req.op["kind"] = "no_such_kind"
    with pytest.raises(KeyError, match="no_such_kind"):
        Exchange(req).reply(200, {}, b"{}")


def test_secrets_a_reply_echoes_never_reach_the_record(profile):
    ex = Exchange(chat(profile), redact=Redactor(["sk-secret-key-1"]))
    ex.reply(401, {}, b'{"error": "invalid key sk-secret-key-1"}')
    op = ex.finish()
    assert "sk-secret-key-1" not in orjson.dumps(op).decode() and "<redacted:" in op["error"]
