"""A call in flight to a llama-server that stopped and started again under it: given up in seconds, not after
its timeout; a server busy with it, one that cannot say, or another kind of server is waited for as before."""

from __future__ import annotations

import threading
import time

import pytest

from autoresearch.errors import BackendUnreachable
from autoresearch.lm.backends import (
    ChatMessage,
    CompletionRequest,
    OpenAICompatBackend,
    in_flight,
)

MODEL = "local-model"
IDLE = [{"id": 0, "is_processing": False}, {"id": 1, "is_processing": False}]
BUSY = [{"id": 0, "is_processing": True}, {"id": 1, "is_processing": False}]


@pytest.fixture
def quick_watch(monkeypatch):
    monkeypatch.setattr(in_flight, "WATCH_S", 0.1)
    monkeypatch.setattr(in_flight, "CONFIRM_S", 0.05)


def _ask(backend: OpenAICompatBackend) -> tuple[str | Exception, float]:
    started = time.perf_counter()
    try:
        text = backend.complete(CompletionRequest(model=MODEL, messages=(ChatMessage("user", "Hi"),))).text
    except Exception as exc:  # noqa: BLE001 - the test looks at which
        text = exc
    return text, time.perf_counter() - started


def _llama_server(openai_stub) -> OpenAICompatBackend:
    """A backend that has seen llama-server's "timings" in a reply (so it watches its calls)."""
    openai_stub.timings = {"prompt_ms": 1.0, "predicted_ms": 1.0}
    backend = OpenAICompatBackend(openai_stub.base_url, MODEL, timeout_s=30, api_key_env="")
    assert _ask(backend)[0] == "Hello." and backend.llama_server
    return backend


def test_a_call_the_restarted_server_is_not_serving_is_given_up_in_moments(openai_stub, quick_watch):
    backend = _llama_server(openai_stub)
    openai_stub.delay_s, openai_stub.slots = 20, IDLE  # the old process holds the call; the new one is idle
    outcome, took = _ask(backend)
    assert isinstance(outcome, BackendUnreachable) and outcome.retryable
    assert "serves no request, so not this call" in str(outcome)
    assert took < 5  # not the 20 s the old server would have held it (the real one: the 300 s timeout)
    assert [r.path for r in openai_stub.requests if r.method == "GET"].count("/slots") >= 2  # looked twice


def test_a_server_behind_an_api_key_is_asked_with_it(openai_stub, quick_watch, monkeypatch):
    backend = _llama_server(openai_stub)
    monkeypatch.setenv("STUB_KEY", "sk-local")
    backend.api_key_env = "STUB_KEY"
    openai_stub.delay_s, openai_stub.slots, openai_stub.slots_key = 20, IDLE, "sk-local"
    outcome, took = _ask(backend)
    assert isinstance(outcome, BackendUnreachable) and took < 5  # the key opened /slots: it said idle


@pytest.mark.parametrize("slots", [BUSY, None], ids=["busy with it", "no /slots endpoint"])
def test_a_server_busy_with_the_call_or_that_cannot_say_is_waited_for(openai_stub, quick_watch, slots):
    backend = _llama_server(openai_stub)
    openai_stub.delay_s, openai_stub.slots = 1.0, slots
    outcome, took = _ask(backend)
    assert outcome == "Hello." and took >= 1.0


def test_another_kind_of_server_is_not_watched(openai_stub, quick_watch):
    backend = OpenAICompatBackend(openai_stub.base_url, MODEL, timeout_s=30, api_key_env="")  # no "timings"
    openai_stub.delay_s, openai_stub.slots = 0.5, IDLE
    assert _ask(backend)[0] == "Hello."
    assert not backend.llama_server and all(r.path != "/slots" for r in openai_stub.requests)


def test_a_reply_that_comes_between_the_two_looks_is_kept():
    arrived = threading.Event()
    looks = []

    def send():
        arrived.wait(5)
        return "the reply"

    def orphaned():  # idle at the first look, because the reply was just sent; by the second, it has arrived
        looks.append(1)
        arrived.set()
        return True

    assert in_flight.watched(send, orphaned, lambda: AssertionError("given up"), watch_s=0.05, confirm_s=0.5) == \
        "the reply"
    assert len(looks) == 1


def test_a_llama_server_is_known_by_its_model_list_before_its_first_reply(openai_stub, monkeypatch):
    monkeypatch.setattr(openai_stub, "list_models", lambda: {"object": "list", "data": [
        {"id": MODEL, "object": "model", "owned_by": "llamacpp", "meta": {"size": 1}}]})
    backend = OpenAICompatBackend(openai_stub.base_url, MODEL, timeout_s=30, api_key_env="")
    assert not backend.llama_server
    backend.list_models()  # the preflight; model_identity reads the same list
    assert backend.llama_server
    other = OpenAICompatBackend(openai_stub.base_url, MODEL, timeout_s=30, api_key_env="")
    other.model_identity()
    assert other.llama_server
