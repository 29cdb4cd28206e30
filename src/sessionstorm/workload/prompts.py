"""Realistic prompts and payloads, each carrying one canary.

Faker makes the topics and the length varies, so a target never sees one repeated
string (caches, dedup and batching behave as in production). The canary sits at a
varying place in the text; ``llm="real"`` adds an instruction asking the model to
repeat it verbatim, since a real model only echoes what it is asked to.
"""
from __future__ import annotations

import random

from faker import Faker

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


class PromptMaker:
    """Makes prompts and payloads; one per driver or user (Faker is not shared across threads)."""

    def __init__(self, llm: str = "stub", seed: int | None = None, locale: str | list[str] = "en_US") -> None:
        self.llm = llm
        self.fake = Faker(locale)
        self.rng = random.Random(seed)
        if seed is not None:
            self.fake.seed_instance(seed)

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

    def _place(self, text: str, canary: str) -> str:
        where = self.rng.randrange(3)
        if where == 0:
            return f"[{canary}] {text}"
        if where == 1:
            return f"{text}\n\nReference: {canary}"
        return f"{text} (ticket {canary})"

    def chat(self, canary: str) -> str:
        ask = self._fill(self.rng.choice(_ASKS))
        context = self._context()
        body = f"{context}\n\n{ask}" if context else ask
        if self.llm == "real":
            return f"Start your answer with the token {canary} copied exactly, then answer.\n\n{body}"
        return self._place(body, canary)

    def observation(self, canary: str) -> str:
        return self._place(self._fill(self.rng.choice(_NOTES)), canary)

    def message(self, canary: str) -> str:
        return self.chat(canary)
