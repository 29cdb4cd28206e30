"""Canary tokens and the stub provider's echo line: the one place both are defined.

A canary is ``SSC-XXXX-XXXX-XXXX-XXXX`` in Crockford base32 (80 random bits): no
collisions in any realistic run, plain ASCII that survives JSON escaping and
tokenisation, and a shape free text never has by accident.

The stub provider answers with an echo line naming what it saw, then filler text::

    [sstorm model=llama-70b session=0xab… request=3f2a… canaries=SSC-…,SSC-…]

Fields with no value are ``-``. In a stream the first content chunk is the echo line
and every later content chunk starts with ``[sstorm canaries=…]``, so a stream whose
chunks belong to different requests is visible chunk by chunk.
"""
from __future__ import annotations

import os
import re
from typing import NamedTuple

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_GROUP = "[0-9A-HJKMNP-TV-Z]{4}"
CANARY_RE = re.compile(rf"\bSSC-{_GROUP}-{_GROUP}-{_GROUP}-{_GROUP}\b")
ECHO_RE = re.compile(
    r"\[sstorm model=(?P<model>\S+) session=(?P<session>\S+) "
    r"request=(?P<request>\S+) canaries=(?P<canaries>[^\]\s]+)\]"
)
CHUNK_TAG_RE = re.compile(r"\[sstorm canaries=(?P<canaries>[^\]\s]+)\]")


_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)  # every 10-bit value as two characters


_IDS: list[str] = []  # ids made 64 at a time from one os.urandom call, popped one per request
_IDS_PER_DRAW = 64
os.register_at_fork(after_in_child=_IDS.clear)  # a forked worker must not reuse its parent's ids


def _id_of(n: int, p: tuple[str, ...] = _PAIRS) -> str:
    return (p[n >> 70] + p[n >> 60 & 1023] + p[n >> 50 & 1023] + p[n >> 40 & 1023]
            + p[n >> 30 & 1023] + p[n >> 20 & 1023] + p[n >> 10 & 1023] + p[n & 1023])


def new_op_id() -> str:
    """16 Crockford base32 characters from 80 random bits (os.urandom: a CSPRNG, as secrets uses).

    The same string as ``base64.b32encode(bits).translate(_TO_CROCKFORD)`` (base32 of 10 bytes
    is exactly 16 characters, most significant bits first), made from 10-bit pairs. Called
    once per request: ids are made 64 at a time from one os.urandom call (a syscall per id,
    and the encoding between other work, cost 3 µs of a Locust user's request); list.pop is
    atomic, so two threads never get the same id.
    """
    try:
        return _IDS.pop()
    except IndexError:
        raw = os.urandom(10 * _IDS_PER_DRAW)
        _IDS.extend([_id_of(int.from_bytes(raw[i : i + 10], "big")) for i in range(0, len(raw), 10)])
        return _IDS.pop()


def miscopy_of(own: str, seen: str) -> bool:
    """``seen`` is ``own`` copied with mistakes (a real model garbling its canary): at least half
    of the 16 code characters in place. Two independent canaries agree that much with
    probability ~1e-8, so such a canary is never another request's."""
    a, b = own[4:].replace("-", ""), seen[4:].replace("-", "")
    return len(a) == len(b) == 16 and a != b and sum(x == y for x, y in zip(a, b)) >= 8


def canary_for(op_id: str) -> str:
    """The canary of an operation id made by `new_op_id`."""
    return f"SSC-{op_id[0:4]}-{op_id[4:8]}-{op_id[8:12]}-{op_id[12:16]}"


# CANARY_RE without its leading \b: a pattern that starts with a literal is searched for that
# literal at C speed, one that starts with \b is tried at every position (20x slower on a
# 600-character reply). The left boundary is checked on the few hits instead.
_CANARY_TAIL_RE = re.compile(rf"SSC-{_GROUP}-{_GROUP}-{_GROUP}-{_GROUP}\b")


def find_canaries(text: str) -> list[str]:
    """Every canary in `text`, first occurrence order, no repeats (what ``CANARY_RE`` finds)."""
    if not text:
        return []
    i = text.find("SSC-")
    if i < 0:
        return []
    if text.find("SSC-", i + 4) < 0:  # one candidate (a reply with its own canary): no loop, no dict
        m = _CANARY_TAIL_RE.match(text, i)
        if m is None or (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            return []
        return [m.group()]
    found: dict[str, None] = {}
    for m in _CANARY_TAIL_RE.finditer(text):
        start = m.start()
        if start:
            before = text[start - 1]
            if before.isalnum() or before == "_":  # \w before it: inside a word, not a canary
                continue
        found[m.group()] = None
    return list(found)


class Echo(NamedTuple):  # a tuple: made once per reply, 4x cheaper than a frozen dataclass
    model: str | None
    session: str | None
    request_id: str | None
    canaries: tuple[str, ...]


def _field(value: str | None) -> str:
    return value if value else "-"


def _unfield(value: str) -> str | None:
    return None if value == "-" else value


def format_echo(model: str | None, session: str | None, request_id: str | None, canaries: list[str] | tuple[str, ...]) -> str:
    return (
        f"[sstorm model={_field(model)} session={_field(session)} "
        f"request={_field(request_id)} canaries={_field(','.join(canaries))}]"
    )


def format_chunk_tag(canaries: list[str] | tuple[str, ...]) -> str:
    return f"[sstorm canaries={_field(','.join(canaries))}]"


def parse_echo(text: str) -> Echo | None:
    """The first echo line in `text`, or None when the reply carries none."""
    m = ECHO_RE.search(text or "")
    if m is None:
        return None
    model, session, request, c = m.groups()
    return Echo(None if model == "-" else model, None if session == "-" else session,
                None if request == "-" else request, () if c == "-" else tuple(c.split(",")))


def parse_chunk_tag(text: str) -> tuple[str, ...] | None:
    """Canaries named by a stream chunk's tag (or echo line); None when untagged."""
    echo = parse_echo(text)
    if echo is not None:
        return echo.canaries
    m = CHUNK_TAG_RE.search(text or "")
    if m is None:
        return None
    c = _unfield(m["canaries"])
    return tuple(c.split(",")) if c else ()
