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

import base64
import os
import re
from dataclasses import dataclass

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_GROUP = "[0-9A-HJKMNP-TV-Z]{4}"
CANARY_RE = re.compile(rf"\bSSC-{_GROUP}-{_GROUP}-{_GROUP}-{_GROUP}\b")
ECHO_RE = re.compile(
    r"\[sstorm model=(?P<model>\S+) session=(?P<session>\S+) "
    r"request=(?P<request>\S+) canaries=(?P<canaries>[^\]\s]+)\]"
)
CHUNK_TAG_RE = re.compile(r"\[sstorm canaries=(?P<canaries>[^\]\s]+)\]")


_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())


def new_op_id() -> str:
    """16 Crockford base32 characters from 80 random bits (os.urandom: a CSPRNG, as secrets uses).

    base32 of 10 bytes is exactly 16 characters; one translate maps RFC 4648's alphabet to
    Crockford's. Called once per request, so it stays C-speed.
    """
    return base64.b32encode(os.urandom(10)).translate(_TO_CROCKFORD).decode()


def canary_for(op_id: str) -> str:
    """The canary of an operation id made by `new_op_id`."""
    return "SSC-" + "-".join(op_id[i : i + 4] for i in range(0, 16, 4))


def find_canaries(text: str) -> list[str]:
    """Every canary in `text`, first occurrence order, no repeats."""
    return list(dict.fromkeys(CANARY_RE.findall(text or "")))


@dataclass(frozen=True, slots=True)
class Echo:
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
    c = _unfield(m["canaries"])
    return Echo(_unfield(m["model"]), _unfield(m["session"]), _unfield(m["request"]), tuple(c.split(",")) if c else ())


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
