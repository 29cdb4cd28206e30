"""The stub's models: names or a count from the command line, each with a 0x 32-byte hex id.

A gateway that validates blockchain ids (seed 000 sends `model_id` as a hash) needs ids of
that shape, so ``--models 8`` gives eight ids drawn from ``--seed`` (0 when unset: a count
is always reproducible) and uses each id as its name too. Named models get an id hashed
from the name, the same on every run.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sessionstorm.errors import ConfigError

MAX_MODELS = 1000
HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_COUNT = re.compile(r"^\s*\d+\s*$")
_EXPECTED = f"comma-separated model names without spaces (e.g. a,b,c) or a count from 1 to {MAX_MODELS} (e.g. 8)"


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    name: str


def hex_id(*parts: object) -> str:
    """A stable 0x-prefixed 32-byte hex id for `parts`."""
    return "0x" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def address(*parts: object) -> str:
    """A stable 20-byte address of decimal digits only: valid EIP-55 as it is (no letters to case)."""
    return "0x" + "".join(str(int(c, 16) % 10) for c in hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:40])


def parse_models(value: str, seed: int | None = None) -> tuple[Model, ...]:
    """``"a,b,c"`` → named models; ``"8"`` → eight generated ids. Bad input is a ConfigError."""
    if _COUNT.match(value):
        n = int(value)
        if not 1 <= n <= MAX_MODELS:
            raise ConfigError("models", value, _EXPECTED, f"pass --models N with N from 1 to {MAX_MODELS}")
        rng = random.Random(0 if seed is None else seed)
        ids = [f"0x{rng.getrandbits(256):064x}" for _ in range(n)]
        return tuple(Model(i, i) for i in ids)
    names = [n.strip() for n in value.split(",")]
    if not all(names) or any(re.search(r"\s", n) for n in names):
        raise ConfigError("models", value, _EXPECTED, "pass --models qwen3-235b,llama-70b or --models 8")
    if len(set(names)) != len(names):
        raise ConfigError("models", value, "each model name once", "pass --models with each name once")
    return as_models(names)


def as_models(models: Iterable[str | Model]) -> tuple[Model, ...]:
    return tuple(m if isinstance(m, Model) else Model(hex_id("model", m), m) for m in models)
