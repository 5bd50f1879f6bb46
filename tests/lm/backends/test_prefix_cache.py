"""Prefix KV-state reuse across roles, with the real SmolLM2-135M GGUF on CPU."""

from __future__ import annotations

import pytest

from autoresearch.lm.backends import ChatMessage, CompletionRequest, EmbeddedBackend
from autoresearch.lm.backends.embedded import DEFAULT_MODEL, _load
from autoresearch.lm.backends.prefix_cache import prefix_key

pytestmark = pytest.mark.embedded
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

# Each role's fixed prefix, long enough that reusing it shows in the prompt tokens computed.
SYSTEMS = {
    "planner": "You plan written answers. " + "Break the task into short numbered steps. " * 12,
    "producer": "You write the answer. " + "Follow the plan, be concrete and brief. " * 12,
    "evaluator": "You grade answers strictly. " + "Score relevance and clarity from 0 to 10. " * 12,
}
N_CTX = 1536  # no other test uses it: these tests get a Llama, and so a prefix cache, of their own


def call(backend: EmbeddedBackend, role: str, task: str, seed: int = 3):
    request = CompletionRequest(
        model=DEFAULT_MODEL, max_tokens=12, temperature=0.2, seed=seed,
        messages=(ChatMessage("system", SYSTEMS[role]), ChatMessage("user", task)),
    )
    return backend.complete(request)


def roles_in_turn(backend: EmbeddedBackend) -> list:
    """Two tasks through the three roles, as the pipeline calls them."""
    return [call(backend, role, f"Task {n}: explain {topic}.")
            for n, topic in enumerate(("git rebase", "unit tests")) for role in SYSTEMS]


def test_prefix_key_is_the_system_message():
    system = ChatMessage("system", "fixed")
    assert prefix_key((system, ChatMessage("user", "a"))) == prefix_key((system, ChatMessage("user", "b")))
    assert prefix_key((ChatMessage("system", "other"), ChatMessage("user", "a"))) != prefix_key((system,))
    assert prefix_key((ChatMessage("user", "no system"),)) is None


def test_a_roles_second_call_computes_only_what_follows_its_prefix():
    on, off = EmbeddedBackend(n_ctx=N_CTX, prefix_slots=4), EmbeddedBackend(n_ctx=N_CTX, prefix_slots=0)
    _load(DEFAULT_MODEL, N_CTX)[0].prefixes.clear()
    without = roles_in_turn(off)
    with_reuse = roles_in_turn(on)
    # The second task's calls: without reuse each recomputes its role's prefix (the previous role's call
    # overwrote it); with reuse only the task's own tokens are computed.
    for before, after in zip(without[3:], with_reuse[3:]):
        assert after.prompt_tokens == before.prompt_tokens
        assert before.timings["prompt_eval_tokens"] > before.prompt_tokens - 10
        assert after.timings["prompt_eval_tokens"] < before.timings["prompt_eval_tokens"] - 100
    # Reusing the computed prefix changes no reply: same seeds, same text.
    assert [c.text for c in with_reuse] == [c.text for c in without]


def test_kept_states_are_bounded_by_the_slots():
    backend = EmbeddedBackend(n_ctx=N_CTX, prefix_slots=2)
    cache = _load(DEFAULT_MODEL, N_CTX)[0].prefixes
    cache.clear()
    for role in SYSTEMS:  # three prefixes through two slots
        call(backend, role, "Explain branches.")
    call(backend, "planner", "Explain tags.")  # switching away keeps the evaluator's state, evicting one
    assert len(cache.saved) == 2
    assert prefix_key((ChatMessage("system", SYSTEMS["evaluator"]),)) in cache.saved
    # A state holds the KV of the tokens the context held: a few MB for ~150 tokens of SmolLM2-135M.
    assert 0 < cache.saved_bytes < 2 * 10 * 2**20


def test_no_slots_keeps_nothing_and_a_chat_without_system_message_is_not_kept():
    backend = EmbeddedBackend(n_ctx=N_CTX, prefix_slots=0)
    cache = _load(DEFAULT_MODEL, N_CTX)[0].prefixes
    cache.clear()
    for role in SYSTEMS:
        call(backend, role, "Explain merges.")
    assert not cache.saved and cache.live is None
    plain = EmbeddedBackend(n_ctx=N_CTX, prefix_slots=4)
    call(plain, "planner", "Explain merges.")
    plain.complete(CompletionRequest(model=DEFAULT_MODEL, messages=(ChatMessage("user", "Hi."),), max_tokens=4,
                                     seed=1))
    assert cache.live is None and len(cache.saved) == 1  # the planner's state was kept on the way out
