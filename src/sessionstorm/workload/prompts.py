"""Realistic prompts and payloads, each carrying one canary.

Faker makes the topics and the length varies, so a target never sees one repeated
string (caches, dedup and batching behave as in production). Faker is slow (about half a
millisecond a prompt), more than a load generator can spend per request, so each maker
draws a pool of Faker texts once and composes prompts from it: with POOL asks and POOL
contexts, the combinations run into the tens of thousands before any canary is added. The canary sits at a
varying place in the text; ``llm="real"`` adds an instruction asking the model to
repeat it verbatim, since a real model only echoes what it is asked to.
"""
from __future__ import annotations

import random

import orjson
from faker import Faker

POOL = 256

_ASKS = (
    "Summarise {topic} in {n} bullet points for a {job}.",
    "Explain {topic} to a new colleague who works as a {job}.",
    "Write a short status update about {topic} for the {company} team.",
    "List {n} risks of {topic} and one mitigation for each.",
    "Draft an email to {name} about {topic}.",
    "What are the trade-offs of {topic}? Answer in {n} sentences.",
    "Review this plan for {topic}: {sentence}",
    "Give {n} questions a {job} should ask about {topic}.",
)
_NOTES = (
    "{sentence}",
    "{name} noted: {sentence}",
    "Reading at {time}: {number} units, {sentence}",
    "Step {n} of the {topic} checklist done. {sentence}",
)


# llm = "real": a real model echoes only what it is asked to. Asked first and again after the
# task, SmolLM2-135M copied its canary in 29 of 30 replies at temperature 0; asked first only, 1.
REAL_INSTRUCTION = "Start your answer with the token {canary} copied exactly, then answer.\n\n"
REAL_FIRST_LINE = "\n\nFirst line of your reply: {canary}"


class PromptMaker:
    """Makes prompts and payloads; one per driver or user (Faker is not shared across threads)."""

    def __init__(self, llm: str = "stub", seed: int | None = None, locale: str | list[str] = "en_US") -> None:
        self.llm = llm
        self.fake = Faker(locale)
        self.rng = random.Random(seed)
        if seed is not None:
            self.fake.seed_instance(seed)
        self._asks = [self._fill(self.rng.choice(_ASKS)) for _ in range(POOL)]
        self._notes = [self._fill(self.rng.choice(_NOTES)) for _ in range(POOL)]
        self._contexts = [self._context() for _ in range(POOL)]
        # The same pools as (text, its JSON string escape): a request body is spliced from them,
        # never encoded per request. JSON escapes character by character, so the escape of a
        # concatenation is the concatenation of the escapes.
        self._asks_j = [(a, _escaped(a)) for a in self._asks]
        self._contexts_j = [(c, _escaped(c) + b"\\n\\n" if c else b"") for c in self._contexts]

    def _fill(self, template: str) -> str:
        f = self.fake
        return template.format(
            topic=f.bs(), n=self.rng.randint(2, 7), job=f.job().lower(), company=f.company(),
            name=f.first_name(), sentence=f.sentence(nb_words=self.rng.randint(6, 18)),
            time=f.time(), number=self.rng.randint(1, 9999),
        )

    def _context(self) -> str:
        """Zero to a few paragraphs of background: prompt length varies by ~20x."""
        k = self.rng.choice((0, 0, 1, 1, 2, 4))
        return "\n\n".join(self.fake.paragraph(nb_sentences=self.rng.randint(2, 8)) for _ in range(k))

    def _place(self, text: str, canary: str, where: int | None = None) -> str:
        if where is None:
            where = self.rng.randrange(3)
        if where == 0:
            return f"[{canary}] {text}"
        if where == 1:
            return f"{text}\n\nReference: {canary}"
        return f"{text} (ticket {canary})"

    def _draw(self) -> tuple[int, int, int]:
        """An ask, a context and a canary place from one draw of random bits (three draws cost a
        microsecond of a Locust request); 16 bits each, so the pools' sizes bias them by < 0.5 %."""
        r = self.rng.getrandbits(48)
        return (r & 0xFFFF) % len(self._asks), (r >> 16 & 0xFFFF) % len(self._contexts), (r >> 32) % 3

    def chat(self, canary: str) -> str:
        a, c, where = self._draw()
        ask, context = self._asks[a], self._contexts[c]
        body = f"{context}\n\n{ask}" if context else ask
        if self.llm == "real":  # the wording a small model copied its canary with most (docs/llm-rehearsal.md)
            return self._real(body, canary)
        return self._place(body, canary, where)

    def chat_parts(self, canary: str) -> tuple[str, bytes]:
        """``chat(canary)`` and its JSON string escape (without the quotes), from the same draws."""
        if self.llm == "real":
            prompt = self.chat(canary)
            return prompt, _escaped(prompt)
        a, c, where = self._draw()
        ask, ask_j = self._asks_j[a]
        context, context_j = self._contexts_j[c]
        text = self._place(f"{context}\n\n{ask}" if context else ask, canary, where)
        e = _escaped(canary)
        if where == 0:  # the escape of _place's wording
            return text, b"".join((b"[", e, b"] ", context_j, ask_j))
        if where == 1:
            return text, b"".join((context_j, ask_j, b"\\n\\nReference: ", e))
        return text, b"".join((context_j, ask_j, b" (ticket ", e, b")"))

    @staticmethod
    def _real(body: str, canary: str) -> str:
        return REAL_INSTRUCTION.format(canary=canary) + body + REAL_FIRST_LINE.format(canary=canary)

    def observation(self, canary: str) -> str:
        return self._place(self.rng.choice(self._notes), canary)

    def message(self, canary: str) -> str:
        return self.chat(canary)


def _escaped(text: str) -> bytes:
    """``text`` as the inside of a JSON string, as orjson writes it."""
    return orjson.dumps(text)[1:-1]
