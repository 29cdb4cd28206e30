"""A chat request spliced from precomputed pieces is byte for byte what encoding it whole gives,
and its prompt is the one ``PromptMaker.chat`` makes from the same draws."""
import dataclasses

import orjson
import pytest

from sessionstorm.canary import canary_for, new_op_id
from sessionstorm.profile import load_profile
from sessionstorm.profiles import REFERENCE
from sessionstorm.workload import gateway
from sessionstorm.workload.op import excerpt
from sessionstorm.workload.prompts import PromptMaker, _escaped

TRICKY = ['say "hi" \\ bye', "tab\there\nnewline", "ctrl \x01\x1f end", "é ü 日本語 🚀", "</script> / ''", ""]


@pytest.fixture(scope="module")
def profile():
    return load_profile(REFERENCE, check=False)


def tricky_maker(seed: int, llm: str = "stub") -> PromptMaker:
    pm = PromptMaker(llm=llm, seed=seed)
    pm._asks = [t or "x" for t in TRICKY]
    pm._contexts = TRICKY
    pm._asks_j = [(a, _escaped(a)) for a in pm._asks]
    pm._contexts_j = [(c, _escaped(c) + b"\\n\\n" if c else b"") for c in pm._contexts]
    return pm


@pytest.mark.parametrize("llm", ["stub", "real"])
def test_chat_parts_is_chat_and_its_escape(llm):
    a, b = tricky_maker(5, llm), tricky_maker(5, llm)
    for _ in range(300):
        c = canary_for(new_op_id())
        prompt, escaped = a.chat_parts(c)
        assert prompt == b.chat(c)  # the same draws, the same text
        assert b'"' + escaped + b'"' == orjson.dumps(prompt)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("max_tokens", [64, 7])
def test_chat_body_is_the_encoded_request(profile, stream, max_tokens):
    pm = tricky_maker(9)
    seen = set()
    for _ in range(200):
        req = gateway.build_chat(profile, pm, key="sk-1", model='llama "70b"', user="u", stream=stream,
                                 max_tokens=max_tokens)
        prompt = orjson.loads(req.body)["messages"][0]["content"]
        want = orjson.dumps({"model": 'llama "70b"', "messages": [{"role": "user", "content": prompt}],
                             "max_tokens": max_tokens, "stream": stream})
        assert req.body == want
        assert req.canary in prompt and req.op["prompt_excerpt"] == excerpt(prompt)
        seen.add(prompt)
    assert len(seen) > 50


def test_a_prompt_maker_without_chat_parts_is_encoded_here(profile):
    class Plain:
        def chat(self, canary):
            return f'"{canary}"\n'

    req = gateway.build_chat(profile, Plain(), key=None, model="m")
    assert orjson.loads(req.body)["messages"][0]["content"] == f'"{req.canary}"\n'
    assert "Authorization" not in req.headers


def test_the_template_follows_the_profile(profile):
    """A new profile object (another request-id header, say) gets its own template."""
    other = dataclasses.replace(profile, target=dataclasses.replace(profile.target, request_id_header="X-Other"))
    a = gateway.build_chat(profile, PromptMaker(seed=1), key="k", model="m")
    b = gateway.build_chat(other, PromptMaker(seed=1), key="k", model="m")
    assert a.headers["X-Request-ID"] == a.op["id"] and "X-Request-ID" not in b.headers
    assert b.headers["X-Other"] == b.op["id"] == b.op["request_id_sent"]
    assert a.headers is not b.headers and a.headers is not gateway.build_chat(profile, PromptMaker(seed=1), key="k",
                                                                               model="m").headers
