"""Lazy grammar sampling against llama-cpp-python's grammar-first sampling, with the real SmolLM2-135M."""

from __future__ import annotations

import json

import pytest

from autoresearch.lm.backends import ChatMessage, CompletionRequest, EmbeddedBackend
from autoresearch.lm.backends.embedded import DEFAULT_MODEL

pytestmark = pytest.mark.embedded
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

JUDGE = {
    "type": "object",
    "properties": {
        "relevance": {"enum": list(range(11))},
        "clarity": {"enum": list(range(11))},
        "critique": {"type": "string"},
    },
    "required": ["relevance", "clarity", "critique"],
}


def judge(backend: EmbeddedBackend, answer: str, seed: int, schema=JUDGE):
    return backend.complete(CompletionRequest(
        model=DEFAULT_MODEL, json_schema=schema, max_tokens=60, temperature=0.2, seed=seed,
        messages=(ChatMessage("system", "Grade the answer. Reply in JSON."), ChatMessage("user", answer)),
    ))


def test_lazy_sampling_gives_the_replies_of_grammar_first_sampling():
    lazy, full = EmbeddedBackend(grammar="lazy"), EmbeddedBackend(grammar="full")
    answers = ["Use git rebase -i to squash commits.", "Tests catch regressions early.", "hello"]
    for seed, answer in enumerate(answers, 1):
        assert judge(lazy, answer, seed).text == judge(full, answer, seed).text


def test_lazy_sampling_runs_for_grammars_only():
    backend = EmbeddedBackend(grammar="lazy")
    judge(backend, "Tests catch regressions early.", 1)
    sampler = backend.llama()._sampler.lazy_grammar
    assert sampler.tokens > 0  # it masked candidates token by token
    EmbeddedBackend(grammar="full").complete(CompletionRequest(
        model=DEFAULT_MODEL, json_schema=JUDGE, messages=(ChatMessage("user", "Hi."),), max_tokens=8, seed=1))
    assert not hasattr(backend.llama()._sampler, "lazy_grammar")  # "full": llama-cpp-python's own chain


def test_a_token_no_likely_candidate_allows_checks_the_whole_vocabulary():
    # The model never ranks this made-up word among its likeliest tokens, so the grammar can only be
    # met by checking every token: the reply must still follow the schema.
    schema = {"type": "object", "properties": {"verdict": {"enum": ["zqxjvk"]}}, "required": ["verdict"]}
    backend = EmbeddedBackend(grammar="lazy")
    completion = judge(backend, "Tests catch regressions early.", 1, schema)
    assert json.loads(completion.text) == {"verdict": "zqxjvk"}
    assert backend.llama()._sampler.lazy_grammar.full_checks > 0
