"""The canary scan without CANARY_RE's leading \\b finds what CANARY_RE finds; op ids from
batched random bits are base32 of those bits."""
from __future__ import annotations

import base64
import random

import sessionstorm.canary as canary
from sessionstorm.canary import CANARY_RE, canary_for, find_canaries, new_op_id


def test_find_canaries_matches_the_regex():
    """The scan without CANARY_RE's leading \\b finds exactly what CANARY_RE finds."""
    rng = random.Random(17)
    c = [canary_for(new_op_id()) for _ in range(3)]
    pieces = [*c, "SSC-", "-", "A", "0", "x", "_", " ", "é", "٣", "\n", '"', "SSC-AAAA-AAAA-AAAA", "I", "Ω"]
    hits = 0
    for _ in range(50000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        want = list(dict.fromkeys(CANARY_RE.findall(text)))
        assert find_canaries(text) == want, text
        hits += bool(want)
    assert hits > 1000
    assert find_canaries(f"x{c[0]} _{c[1]} ٣{c[2]}") == [] and find_canaries(f"({c[0]})-{c[1]}") == c[:2]


def test_op_ids_are_base32_of_80_random_bits(monkeypatch):
    raw = random.Random(7).randbytes(640)
    monkeypatch.setattr(canary.os, "urandom", lambda n: raw[:n])
    canary._IDS.clear()
    ids = [new_op_id() for _ in range(64)]
    table = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert sorted(ids) == sorted(base64.b32encode(raw[i:i + 10]).translate(table).decode() for i in range(0, 640, 10))
    canary._IDS.clear()
