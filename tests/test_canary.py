import json

from sessionstorm.canary import (
    CANARY_RE, canary_for, find_canaries, format_chunk_tag, format_echo, new_op_id, parse_chunk_tag, parse_echo,
)


def test_canary_shape_and_uniqueness():
    ids = {new_op_id() for _ in range(20000)}
    assert len(ids) == 20000
    for op in list(ids)[:100]:
        c = canary_for(op)
        assert CANARY_RE.fullmatch(c), c
        assert c.startswith("SSC-") and len(c) == 23


def test_find_canaries_in_free_text_survives_json_escaping():
    a, b = canary_for(new_op_id()), canary_for(new_op_id())
    text = f'Please repeat "{a}" verbatim.\nAlso\t({b}), and {a} again.'
    escaped = json.dumps(text)  # what a JSON body carries
    assert find_canaries(text) == [a, b]
    assert find_canaries(escaped) == [a, b]
    assert find_canaries("SSC-1234 not a canary, nor xSSC-AAAA-AAAA-AAAA-AAAAx") == []


def test_echo_round_trip_and_absent_fields():
    a = canary_for(new_op_id())
    line = format_echo("llama-70b", "0x" + "ab" * 32, None, [a])
    e = parse_echo("some prefix " + line + "\nfiller words")
    assert e is not None
    assert (e.model, e.session, e.request_id, e.canaries) == ("llama-70b", "0x" + "ab" * 32, None, (a,))
    empty = parse_echo(format_echo(None, None, "rid-1", []))
    assert empty is not None and empty.canaries == () and empty.model is None and empty.request_id == "rid-1"
    assert parse_echo("a reply a real model wrote") is None


def test_chunk_tags():
    a, b = canary_for(new_op_id()), canary_for(new_op_id())
    assert parse_chunk_tag(format_chunk_tag([a, b]) + " lorem") == (a, b)
    assert parse_chunk_tag(format_echo("m", "s", "r", [a])) == (a,)
    assert parse_chunk_tag("untagged chunk") is None
