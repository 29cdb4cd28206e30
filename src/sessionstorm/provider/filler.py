"""Deterministic filler text of realistic length, chosen by the prompt.

A pool of words is drawn once; a reply is a slice of it starting where the prompt's hash
points, so the same prompt always gets the same words and the hot path draws nothing.
"""
from __future__ import annotations

import random
import zlib

_WORDS = (
    "the session gateway forwards each request to a provider node which answers with tokens "
    "streamed back over the same connection while the client waits for the final usage event "
    "latency depends on the model the prompt length and the load on the node operators watch "
    "throughput error rates and the reuse ratio of sessions across requests from one key teams "
    "share keys models switch quickly and every answer must reach the request that asked for it"
).split()
_POOL_SIZE = 1 << 14
_RNG = random.Random(7)
POOL = [_RNG.choice(_WORDS) for _ in range(_POOL_SIZE)]


def prompt_hash(prompt: str) -> int:
    return zlib.crc32(prompt.encode())


def words(h: int, n: int) -> list[str]:
    start = h % (_POOL_SIZE - n)
    return POOL[start:start + n]
