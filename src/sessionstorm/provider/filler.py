"""Deterministic filler text of realistic length, seeded by the prompt."""
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


def rng_for(prompt: str, salt: int = 0) -> random.Random:
    return random.Random(zlib.crc32(prompt.encode()) ^ salt)


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(_WORDS) for _ in range(n)]
