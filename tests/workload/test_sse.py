"""SSE decoding at every read boundary, and per-chunk canaries of a stream."""
import orjson
import pytest

from sessionstorm.canary import canary_for, format_chunk_tag, format_echo, new_op_id
from sessionstorm.workload.gateway import parse_chat_stream
from sessionstorm.workload.op import new_op
from sessionstorm.workload.sse import SSEDecoder

STREAM = (b"data: one\n\n: keep-alive comment\n\ndata: two\r\ndata: lines\r\n\r\n"
          b"event: x\nid: 3\ndata:three\r\rdata: [DONE]\n\n")


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(STREAM)])
def test_decoder_is_independent_of_read_boundaries(step):
    d = SSEDecoder()
    events = [e for i in range(0, len(STREAM), step) for e in d.feed(STREAM[i:i + step])]
    assert events + d.close() == ["one", "two\nlines", "three", "[DONE]"]


def test_decoder_close_flushes_an_unterminated_event():
    d = SSEDecoder()
    assert d.feed(b"data: tail") == []
    assert d.close() == ["tail"]


def _chunk(text, model="m"):
    return b"data: " + orjson.dumps({"model": model, "choices": [{"delta": {"content": text}}]}) + b"\n\n"


def _stream_op():
    return new_op("chat_stream", "gateway", key="k", model_asked="m")


def test_stream_per_chunk_canaries_ttft_gaps():
    op = _stream_op()
    mine, other = op["canaries_sent"][0], canary_for(new_op_id())
    pieces = [(_chunk(format_echo("m", "0xs", op["id"], [mine])), 10.5),
              (_chunk(format_chunk_tag([mine]) + " a"), 10.7),
              (_chunk(format_chunk_tag([other]) + " b"), 11.0),  # another request's chunk
              (b'data: {"choices": [], "usage": {"total_tokens": 3}}\n\n', 11.1),
              (b"data: [DONE]\n\n", 11.2)]
    parse_chat_stream(op, 200, {"X-Session-ID": "0xs"}, pieces, t0=10.0)
    assert op["outcome"] == "ok" and op.get("error") is None
    assert op["chunks"] == 3 and op["chunk_canaries"] == [[mine], [mine], [other]]
    assert op["canaries_seen"] == [mine, other]
    assert op["ttft"] == pytest.approx(0.5) and op["chunk_gaps"] == pytest.approx([0.2, 0.3])
    assert (op["model_served"], op["session_seen"], op["request_id_seen"]) == ("m", "0xs", op["id"])


def test_stream_cut_before_done_is_info_and_keeps_chunks():
    op = _stream_op()
    parse_chat_stream(op, 200, {}, [(_chunk("partial " + op["canaries_sent"][0]), 1.0)], t0=0.0)
    assert op["outcome"] == "info" and "DONE" in op["error"] and op["chunks"] == 1
    assert op["chunk_canaries"] == [op["canaries_sent"]]  # untagged chunk: canaries found in its text


def test_stream_error_status_reads_the_error_body():
    op = _stream_op()
    parse_chat_stream(op, 409, {}, [(b'{"error": "model_id x does not match session model y"}', 1.0)])
    assert op["outcome"] == "fail" and op["status"] == 409 and op["error"].startswith("model_id x")
    assert "chunks" not in op
