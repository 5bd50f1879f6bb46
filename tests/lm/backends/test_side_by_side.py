"""Side-by-side contexts on the real SmolLM2-135M GGUF: a suite's lanes each decode in a context of their own."""

from __future__ import annotations

import os
import threading
import time

import pytest

from autoresearch.lm.backends import (
    ChatMessage,
    CompletionRequest,
    EmbeddedBackend,
    embedded,
)
from autoresearch.lm.backends.embedded import DEFAULT_MODEL
from autoresearch.lm.calls import CallRecorder
from autoresearch.pipeline.parallel import in_order

pytestmark = pytest.mark.embedded
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

N_CTX = 1088  # a context size no other test loads, so the contexts seen below are this test's own
SCHEMA = {"type": "object", "properties": {"score": {"enum": list(range(11))}}, "required": ["score"]}


def requests() -> list[CompletionRequest]:
    """Four grading calls, two of them grammar-constrained, each with its own seed."""
    return [CompletionRequest(
        model=DEFAULT_MODEL, max_tokens=48, seed=5 + i, temperature=0.7,
        messages=(ChatMessage("system", "You grade short answers. Say what is wrong, then give a score."),
                  ChatMessage("user", f"Question: name {i + 2} prime numbers. Answer: 2, 4, 9.")),
        json_schema=SCHEMA if i % 2 else None,
    ) for i in range(4)]


def test_lanes_in_contexts_of_their_own_run_at_once_and_reply_as_one_context_does():
    batch = requests()
    expected = [EmbeddedBackend(n_ctx=N_CTX).complete(request).text for request in batch]

    side_by_side = EmbeddedBackend(n_ctx=N_CTX, contexts=2)
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def timed(request: CompletionRequest, own: CallRecorder):
        started = time.perf_counter()
        completion = side_by_side.complete(request)
        with lock:
            spans.append((started, time.perf_counter()))
        return completion

    got = list(in_order(timed, batch, CallRecorder(), 2))
    # Every reply is the one-context reply: a context's thread count does not change llama.cpp's arithmetic.
    assert [c.text for c in got] == expected
    # Each lane had a context of its own, with half the threads, and the two decoded at the same time.
    lanes = {key[3]: key[2] for key in embedded._MODELS if key[1] == N_CTX and key[3] is not None}
    assert lanes == {0: max(1, (os.cpu_count() or 1) // 2), 1: max(1, (os.cpu_count() or 1) // 2)}
    spans.sort()
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


def test_a_call_outside_any_lane_uses_the_shared_context():
    side_by_side = EmbeddedBackend(n_ctx=N_CTX + 64, contexts=2)
    side_by_side.complete(requests()[0])  # the proposer's calls: one thread, no lanes
    keys = [key for key in embedded._MODELS if key[1] == N_CTX + 64]
    assert [key[3] for key in keys] == [None]


def test_the_same_prompt_again_in_one_context_gets_the_reply_a_fresh_context_gives():
    # The context holds the whole prompt from the call before. llama-cpp-python would replay its last token
    # as a row alone, whose logits llama.cpp computes with other arithmetic (prefix_cache.replay_two_rows):
    # which lane ran a task would change its replies. Two tokens are replayed instead.
    backend = EmbeddedBackend(n_ctx=N_CTX + 128, prefix_slots=0)
    for request in requests():
        first, again = backend.complete(request), backend.complete(request)
        assert again.text == first.text
        assert again.timings["prompt_eval_tokens"] == 2  # the rest was reused, not recomputed
