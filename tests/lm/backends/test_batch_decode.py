"""Batched decoding on the real SmolLM2-135M GGUF: several lanes' calls in one llama.cpp batch."""

from __future__ import annotations

import json

import pytest

from autoresearch.errors import ContextLengthExceeded
from autoresearch.lm.backends import ChatMessage, CompletionRequest, EmbeddedBackend
from autoresearch.lm.backends.embedded import DEFAULT_MODEL
from autoresearch.lm.calls import CallRecorder
from autoresearch.pipeline.parallel import in_order

pytestmark = pytest.mark.embedded
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"enum": ["keep", "discard"]}, "score": {"enum": list(range(11))}},
    "required": ["verdict", "score"],
}
GRADER = "You grade answers to arithmetic questions. Reply in JSON with a verdict and a score from 0 to 10."


def requests(n: int) -> list[CompletionRequest]:
    """n grading calls sharing one system message, every other one grammar-constrained."""
    return [CompletionRequest(
        model=DEFAULT_MODEL, max_tokens=40, seed=11 + i, temperature=0.2,
        messages=(ChatMessage("system", GRADER), ChatMessage("user", f"What is {i} + {i}? The answer given: {2 * i + i % 2}.")),
        json_schema=SCHEMA if i % 2 == 0 else None,
    ) for i in range(n)]


def run_lanes(backend: EmbeddedBackend, batch: list[CompletionRequest], lanes: int):
    return list(in_order(lambda request, own: backend.complete(request), batch, CallRecorder(), lanes))


def test_one_call_at_a_time_through_the_batch_decoder_matches_llama_cpp_pythons_own_replies():
    # Prompt, grammar, stop strings and sampler chain come from llama-cpp-python's own chat path
    # (chat_plan.py): a call alone in the decoder must reply token for token as create_chat_completion does.
    alone, batched = EmbeddedBackend(n_ctx=1024), EmbeddedBackend(n_ctx=1024, batch=4)
    for request in requests(4):
        expected, got = alone.complete(request), batched.complete(request)
        assert got.text == expected.text
        assert (got.prompt_tokens, got.completion_tokens, got.finish_reason) == (
            expected.prompt_tokens, expected.completion_tokens, expected.finish_reason)
        assert got.timings["batch"] == 1.0


def test_lanes_are_decoded_together_and_the_same_seeds_give_the_same_replies():
    backend = EmbeddedBackend(n_ctx=1024, batch=3)
    batch = requests(6)
    first, second = run_lanes(backend, batch, 3), run_lanes(backend, batch, 3)
    assert [c.text for c in first] == [c.text for c in second]  # batches formed by lanes, not by timing
    assert max(c.timings["batch"] for c in first) == 3.0
    # Its replies depend on the calls beside them, so a run reuses none of them (lm/replies.py); one at a time does.
    assert backend.decodes_in_batches and not EmbeddedBackend(n_ctx=1024, draft=4).decodes_in_batches
    for request, completion in zip(batch, first):
        if request.json_schema is not None:  # each call sampled with its own grammar, in a shared batch
            data = json.loads(completion.text)
            assert data["verdict"] in ("keep", "discard") and data["score"] in range(11)


def test_calls_sharing_a_system_message_compute_it_once():
    backend = EmbeddedBackend(n_ctx=1152, batch=3, prefix_slots=4)  # an n_ctx of its own: no prefix kept yet
    batch = requests(3)
    completions = run_lanes(backend, batch, 3)
    computed = [int(c.timings["prompt_eval_tokens"]) for c in completions]
    # One computes its whole prompt; the other two wait a step and copy the shared instructions.
    whole = [n == c.prompt_tokens for n, c in zip(computed, completions)]
    assert whole.count(True) == 1
    assert all(n < c.prompt_tokens / 2 for n, c, w in zip(computed, completions, whole) if not w)
    later = run_lanes(backend, batch, 3)  # the kept prefix serves the next suite from its first call
    assert all(int(c.timings["prompt_eval_tokens"]) < c.prompt_tokens / 2 for c in later)


def test_a_prompt_over_n_ctx_is_refused_as_context_length_exceeded():
    long = CompletionRequest(model=DEFAULT_MODEL, messages=(ChatMessage("user", "word " * 400),), max_tokens=8)
    with pytest.raises(ContextLengthExceeded):
        EmbeddedBackend(n_ctx=256, batch=2).complete(long)


def test_drafted_tokens_are_kept_only_as_far_as_the_samples_agree_and_grammars_still_hold():
    drafting = EmbeddedBackend(n_ctx=1024, draft=16)
    looping = CompletionRequest(model=DEFAULT_MODEL, max_tokens=60, seed=3, temperature=0.2, messages=(
        ChatMessage("user", "Write the word banana twenty times, separated by commas."),))
    completion = drafting.complete(looping)
    assert drafting.complete(looping).text == completion.text  # drafts are a function of the call alone
    assert completion.completion_tokens <= 60
    assert 0 < completion.timings["draft_accepted"] <= completion.timings["draft_tokens"]
    for request in requests(4):
        got = drafting.complete(request)
        assert got.completion_tokens <= request.max_tokens
        if request.json_schema is not None:  # every token, drafted or not, was sampled under the grammar
            data = json.loads(got.text)
            assert data["verdict"] in ("keep", "discard") and data["score"] in range(11)


def test_the_same_prompt_again_recomputes_two_tokens_and_replies_the_same():
    # A kept prefix covering the whole prompt must not leave its last token to be decoded as a row alone.
    backend = EmbeddedBackend(n_ctx=1216, batch=2, prefix_slots=4)
    request = requests(1)[0]
    first, again = backend.complete(request), backend.complete(request)
    assert again.text == first.text
    assert again.timings["prompt_eval_tokens"] == 2
